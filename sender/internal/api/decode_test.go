package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeHistory feeds arbitrary bodies to the request decoder: it must
// never panic, and must either produce a history or refuse with a
// *requestError carrying a 4xx status and a message.
func FuzzDecodeHistory(f *testing.F) {
	f.Add(seedBody)
	f.Add(`{"forms":[null,5,{"totalAmount":"1"}]}`)
	f.Add(`{"sentAt":1e3}`)
	f.Add("{\n\"forms\": [{\"x\":1}]\n} trailing")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/histories", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		_, err := decodeHistory(httptest.NewRecorder(), r, DefaultMaxBodyBytes)
		if err == nil {
			return
		}
		var reqErr *requestError
		if !errors.As(err, &reqErr) || reqErr.status < 400 || reqErr.status > 499 || reqErr.msg == "" {
			t.Fatalf("decodeHistory(%q) = %v, want a 4xx *requestError", body, err)
		}
	})
}
