package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInstrumentHTTPLabelsByRoutePattern(t *testing.T) {
	reg := NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/histories/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "0" {
			http.NotFound(w, r)
		}
	})
	h := InstrumentHTTP(reg, mux)
	for _, p := range []string{"/v1/histories/1", "/v1/histories/2", "/v1/histories/0", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := `
# HELP invoicesync_http_requests_total HTTP requests by route and status code.
# TYPE invoicesync_http_requests_total counter
invoicesync_http_requests_total{code="200",route="GET /v1/histories/{id}"} 2
invoicesync_http_requests_total{code="404",route="GET /v1/histories/{id}"} 1
invoicesync_http_requests_total{code="404",route="unmatched"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "invoicesync_http_requests_total"); err != nil {
		t.Fatal(err)
	}
}
