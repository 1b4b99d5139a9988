package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/api"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

var sent = time.Date(2024, 2, 29, 23, 30, 0, 0, time.UTC)

// newServer serves the API over a store seeded with histories 1..n of
// destination "D-1", history i sent i minutes after sent, plus history 100
// of destination "D-2".
func newServer(t testing.TB, n int) *httptest.Server {
	t.Helper()
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	seed := func(id int64, dest string, at time.Time) {
		h := store.History{HistoryID: id, DestinationCode: dest, SenderCustomerID: "C", SenderOfficeID: "O",
			SenderOfficeName: "Office", EmailStatus: contract.StatusSent, SentAt: at, FormCount: 2,
			TotalAmount: "0.3000", SourceVersion: 3, SourceEventID: fmt.Sprintf("3f0e4a52-7c1e-4b0a-9d51-%012d", id), // one event per history
			SourceOccurredAt: at.Add(time.Second),
			Forms: []store.Form{
				{SenderFormID: 2, FileName: "b.pdf", FilePath: "/b.pdf", SizeBytes: 20, InvoiceNumber: "INV-2",
					IssuedAt: at, IssueDate: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), TotalAmount: "0.2000"},
				{SenderFormID: 1, FileName: "a.pdf", FilePath: "/a.pdf", SizeBytes: 10, InvoiceNumber: "INV-1",
					IssuedAt: at, IssueDate: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), TotalAmount: "0.1000"},
			}}
		if _, err := s.Apply(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		seed(int64(i), "D-1", sent.Add(time.Duration(i)*time.Minute))
	}
	seed(100, "D-2", sent)
	srv := httptest.NewServer(api.New(api.Config{}, s, zerolog.Nop()))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches path and decodes the JSON body into a generic value.
func get(t *testing.T, srv *httptest.Server, path string) (int, map[string]any) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, body %s", path, ct, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return resp.StatusCode, v
}

func TestGetHistoryReturnsItWithItsForms(t *testing.T) {
	srv := newServer(t, 1)
	resp, err := srv.Client().Get(srv.URL + "/v1/histories/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, decode %v", resp.StatusCode, err)
	}
	want := map[string]string{
		"historyId": `1`, "destinationCode": `"D-1"`, "emailStatus": `"SENT"`, "senderOfficeName": `"Office"`,
		"sentAt": `"2024-02-29T23:31:00Z"`, "formCount": `2`, "totalAmount": `"0.3000"`, "sourceVersion": `3`,
	}
	for k, w := range want {
		if string(got[k]) != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
	var forms []map[string]any
	if err := json.Unmarshal(got["forms"], &forms); err != nil || len(forms) != 2 {
		t.Fatalf("forms = %s (%v)", got["forms"], err)
	}
	first := forms[0] // ordered by senderFormId
	if first["senderFormId"] != 1.0 || first["totalAmount"] != "0.1000" || first["issueDate"] != "2024-02-29" ||
		first["issuedAt"] != "2024-02-29T23:31:00Z" || first["sizeBytes"] != 10.0 || first["invoiceNumber"] != "INV-1" {
		t.Errorf("forms[0] = %v", first)
	}
}

func TestGetHistoryErrors(t *testing.T) {
	srv := newServer(t, 0)
	for path, want := range map[string]struct {
		status int
		names  string
	}{
		"/v1/histories/42":  {http.StatusNotFound, "history 42 not found"},
		"/v1/histories/abc": {http.StatusBadRequest, "historyId"},
		"/v1/histories/-1":  {http.StatusBadRequest, "historyId"},
	} {
		status, body := get(t, srv, path)
		if msg, _ := body["error"].(string); status != want.status || !strings.Contains(msg, want.names) {
			t.Errorf("GET %s = %d %v, want %d naming %q", path, status, body, want.status, want.names)
		}
	}
}

func TestListHistoriesPagesNewestFirst(t *testing.T) {
	srv := newServer(t, 5)
	var ids []float64
	cursor, pages := "", 0
	for {
		status, body := get(t, srv, "/v1/destinations/D-1/histories?limit=2&cursor="+url.QueryEscape(cursor))
		if status != http.StatusOK {
			t.Fatalf("status %d: %v", status, body)
		}
		pages++
		for _, it := range body["items"].([]any) {
			item := it.(map[string]any)
			if _, has := item["forms"]; has || item["totalAmount"] != "0.3000" {
				t.Fatalf("list item %v: want a summary with an exact total and no forms", item)
			}
			ids = append(ids, item["historyId"].(float64))
		}
		if cursor = body["nextCursor"].(string); cursor == "" {
			break
		}
	}
	if want := []float64{5, 4, 3, 2, 1}; !slices.Equal(ids, want) || pages != 3 {
		t.Fatalf("ids %v in %d pages, want %v in 3", ids, pages, want)
	}
	status, body := get(t, srv, "/v1/destinations/D-1/histories")
	if status != http.StatusOK || len(body["items"].([]any)) != 5 || body["nextCursor"] != "" {
		t.Fatalf("default limit: %d %v", status, body)
	}
	status, body = get(t, srv, "/v1/destinations/NOBODY/histories")
	if status != http.StatusOK || fmt.Sprint(body["items"]) != "[]" {
		t.Fatalf("unknown destination: %d %v, want an empty list", status, body)
	}
}

func TestListHistoriesRejectsBadParameters(t *testing.T) {
	srv := newServer(t, 0)
	for query, names := range map[string]string{
		"limit=0": "limit", "limit=501": "limit", "limit=ten": "limit", "cursor=bogus": "cursor",
	} {
		status, body := get(t, srv, "/v1/destinations/D-1/histories?"+query)
		if msg, _ := body["error"].(string); status != http.StatusBadRequest || !strings.HasPrefix(msg, names+":") {
			t.Errorf("?%s = %d %v, want 400 naming %s", query, status, body, names)
		}
	}
	if status, _ := get(t, srv, "/v1/destinations/D-1/histories?limit=500"); status != http.StatusOK {
		t.Errorf("limit=500 = %d, want 200", status)
	}
}

func TestHealthz(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{}, nil, zerolog.Nop()))
	defer srv.Close()
	if status, body := get(t, srv, "/healthz"); status != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("GET /healthz = %d %v", status, body)
	}
}

func TestServerStopsWhenCancelled(t *testing.T) {
	s, err := api.Listen("127.0.0.1:0", api.New(api.Config{}, nil, zerolog.Nop()), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("port not released after Run returned: %v", err)
	}
	ln.Close()
}
