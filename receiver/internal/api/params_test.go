package api_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A path parameter PostgreSQL cannot hold (NUL, invalid UTF-8) or longer
// than any stored value is the client's mistake: a 400 naming it, not a 500.
func TestDestinationCodeParameterIsChecked(t *testing.T) {
	srv := newServer(t, 1)
	for name, raw := range map[string]string{
		"NUL":             "%00",
		"NUL inside":      "D%00-1",
		"invalid UTF-8":   "D-%FF",
		"truncated UTF-8": "%E6%97",
		"256 characters":  strings.Repeat("%E6%97%A5", 256),
	} {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, srv, "/v1/destinations/"+raw+"/histories")
			if msg, _ := body["error"].(string); code != 400 || !strings.HasPrefix(msg, "destinationCode: ") {
				t.Fatalf("status %d, body %v; want 400 naming destinationCode", code, body)
			}
		})
	}
	if code, body := get(t, srv, "/v1/destinations/"+strings.Repeat("%E6%97%A5", 255)+"/histories"); code != 200 {
		t.Fatalf("255 characters: status %d, body %v; want 200", code, body)
	}
}

// FuzzReadAPI drives the read API, down to a real PostgreSQL, with
// arbitrary path parameters, limits and cursors: no input may produce a
// 5xx or panic.
func FuzzReadAPI(f *testing.F) {
	f.Add(uint8(0), "D-1", "", "")
	f.Add(uint8(0), "D-1", "1", "")
	f.Add(uint8(0), "\x00", "", "")
	f.Add(uint8(0), "D-\xff", "", "")
	f.Add(uint8(0), "D-1", "500", "eyJ0IjoiMjAyNC0wMi0yOVQyMzozMTowMFoiLCJpIjoxfQ")
	f.Add(uint8(0), "D-1", "-1", "\x00")
	f.Add(uint8(0), "D-1", "1e3", "%%%")
	f.Add(uint8(1), "1", "", "")
	f.Add(uint8(1), "9223372036854775808", "", "")
	f.Add(uint8(1), "\x00", "", "")
	f.Add(uint8(2), "", "", "")
	h := newServer(f, 3).Config.Handler
	f.Fuzz(func(t *testing.T, route uint8, param, limit, cursor string) {
		path := "/v1/destinations/" + param + "/histories"
		switch route % 3 {
		case 1:
			path = "/v1/histories/" + param
		case 2:
			path = "/healthz"
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = path
		q := url.Values{}
		if limit != "" {
			q.Set("limit", limit)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r.URL.RawQuery = q.Encode()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("GET %q ?%s answered %d: %s", path, r.URL.RawQuery, w.Code, w.Body)
		}
	})
}
