package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandler drives the whole API, down to a real PostgreSQL, with
// arbitrary routes, path ids, Idempotency-Keys and bodies: no input may
// produce a 5xx (every refusal is the client's 4xx), and no input may panic.
func FuzzHandler(f *testing.F) {
	f.Add(uint8(0), "", seedBody, "")
	f.Add(uint8(0), "", seedBody, "key-1")
	f.Add(uint8(0), "", strings.Replace(seedBody, `"MFV-HN"`, `"MFV\u0000HN"`, 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `"MFV-HN"`, "\"MFV\xffHN\"", 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `"size":1`, `"size":1000000000000000000`, 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `"size":1`, `"size":10000000000000000000`, 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `1686110218222`, `-9223372036854775808`, 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `1500`, `1e400000`, 1), "")
	f.Add(uint8(0), "", strings.Replace(seedBody, `"abcd.pdf"`, `"\ud800"`, 1), "k\x00")
	f.Add(uint8(1), "1", `{"emailStatus":"ERROR"}`, "")
	f.Add(uint8(1), "9223372036854775807", `{"emailStatus":"DELIVERED"}`, "")
	f.Add(uint8(1), "1", "{\"emailStatus\":\"ERR\xffOR\"}", "")
	f.Add(uint8(1), "\x00", `{"emailStatus":"ERROR\u0000"}`, "")
	f.Add(uint8(2), "1", "", "")
	f.Add(uint8(2), "%00", "", "")
	f.Add(uint8(3), "", "", "")
	h, _ := newTestHandler(f)
	f.Fuzz(func(t *testing.T, route uint8, id, body, key string) {
		method, path := "POST", "/v1/histories"
		switch route % 4 {
		case 1:
			method, path = "PUT", "/v1/histories/"+id+"/status"
		case 2:
			method, path = "GET", "/v1/histories/"+id
		case 3:
			method, path = "GET", "/healthz"
		}
		r := httptest.NewRequest(method, "/", strings.NewReader(body))
		r.URL.Path = path
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set(headerIdempotencyKey, key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q with body %q answered %d: %s", method, path, body, w.Code, w.Body)
		}
	})
}
