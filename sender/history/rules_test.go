package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// ruleCase is one history of the shared corpus, as event-shaped JSON.
type ruleCase struct {
	name    string
	payload []byte
}

// badUTF8 stands for invalid UTF-8 in a mutation: json.Marshal would
// replace the bytes themselves with U+FFFD, so they are put in afterwards.
const badUTF8 = "<<BAD-UTF8>>"

func baseEvent() map[string]any {
	return map[string]any{
		"historyId": 7, "emailStatus": "SENT", "sentAt": 1686110218,
		"senderOfficeName": "MFV-HN", "destinationCode": "CUST-001", "senderCustomerId": "001",
		"senderOfficeId": "MFV-HN-01", "forms": []any{baseForm(1)},
	}
}

func baseForm(id int) map[string]any {
	return map[string]any{
		"fileName": "abcd.pdf", "filePath": "file://sci/", "size": 1, "invoiceNumber": "INVC-001",
		"issueDate": int64(1686110218222), "totalAmount": json.Number("1500"), "senderFormId": id,
	}
}

func forms(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = baseForm(i + 1)
	}
	return out
}

// ruleCorpus is valid and invalid histories at the edges of every rule:
// text at its limit in one- to four-byte scripts and one character past
// it, NUL, invalid UTF-8, the first and last plausible instants, the
// largest amounts, form counts, ids.
func ruleCorpus(t *testing.T) []ruleCase {
	t.Helper()
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	form := func(i int, k string, v any) func(map[string]any) {
		return func(m map[string]any) {
			fs := m["forms"].([]any)
			for len(fs) <= i {
				fs = append(fs, baseForm(len(fs)+1))
			}
			m["forms"] = fs
			if v == nil {
				delete(fs[i].(map[string]any), k)
			} else {
				fs[i].(map[string]any)[k] = v
			}
		}
	}
	rep := strings.Repeat
	var cases []ruleCase
	add := func(name string, mutations ...func(map[string]any)) {
		m := baseEvent()
		for _, mut := range mutations {
			mut(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), badUTF8, "a\xff\xfeb"))
		cases = append(cases, ruleCase{name: name, payload: b})
	}
	add("valid")
	add("an unknown field", set("note", "x"))
	add("DELIVERED", set("emailStatus", "DELIVERED"))
	add("ERROR", set("emailStatus", "ERROR"))
	for _, text := range []string{"senderOfficeName", "destinationCode", "senderCustomerId", "senderOfficeId"} {
		for _, s := range []string{"x", "ệ", "日", "𝄞"} {
			add(text+" 255 of "+s, set(text, rep(s, 255)))
			add(text+" 256 of "+s, set(text, rep(s, 256)))
		}
		add(text+" empty", set(text, ""))
		add(text+" missing", del(text))
		add(text+" NUL", set(text, "a\x00b"))
		add(text+" invalid UTF-8", set(text, badUTF8))
	}
	add("combining marks count as characters", set("senderOfficeName", rep("e\u0301", 128)))
	add("fileName 255 of 日", form(0, "fileName", rep("日", 255)))
	add("fileName 256 of 日", form(0, "fileName", rep("日", 256)))
	add("fileName 300 of x", form(0, "fileName", rep("x", 300)))
	add("fileName NUL", form(0, "fileName", "\x00"))
	add("fileName invalid UTF-8", form(0, "fileName", badUTF8))
	add("filePath 1024 of ệ", form(0, "filePath", rep("ệ", 1024)))
	add("filePath 1025 of ệ", form(0, "filePath", rep("ệ", 1025)))
	add("filePath empty", form(0, "filePath", ""))
	add("filePath missing", form(0, "filePath", nil))
	add("filePath NUL", form(0, "filePath", "\x00"))
	add("invoiceNumber 255 of 𝄞", form(0, "invoiceNumber", rep("𝄞", 255)))
	add("invoiceNumber 256 of 𝄞", form(0, "invoiceNumber", rep("𝄞", 256)))
	add("invoiceNumber empty", form(0, "invoiceNumber", ""))
	add("historyId 0", set("historyId", 0))
	add("historyId -1", set("historyId", -1))
	add("historyId missing", del("historyId"))
	add("emailStatus LOST", set("emailStatus", "LOST"))
	add("emailStatus lower case", set("emailStatus", "error"))
	add("emailStatus empty", set("emailStatus", ""))
	add("emailStatus missing", del("emailStatus"))
	for _, v := range []int64{0, 631151999, 631152000, 7258118400, 7258118401, 1686110218222, -1, 1<<63 - 1, -1 << 63} {
		add(fmt.Sprintf("sentAt %d", v), set("sentAt", v))
	}
	add("sentAt missing", del("sentAt"))
	for _, v := range []int64{0, 1686110218, 631151999999, 631152000000, 7258118400000, 7258118400001, 1<<63 - 1, -1 << 63} {
		add(fmt.Sprintf("issueDate %d", v), form(0, "issueDate", v))
	}
	add("issueDate missing", form(0, "issueDate", nil))
	for _, v := range []int64{0, -1, 1e18, 1<<63 - 1} {
		add(fmt.Sprintf("size %d", v), form(0, "size", v))
	}
	add("size missing", form(0, "size", nil))
	for _, v := range []string{"0", "-0", "0.0001", "1.5000", "9999999999999999.9999", "-9999999999999999.9999",
		"10000000000000000", "-10000000000000000", "1.00001", "-0.00001", "123456789012345678901234567890"} {
		add("totalAmount "+v, form(0, "totalAmount", json.Number(v)))
	}
	add("totalAmount missing", form(0, "totalAmount", nil))
	add("senderFormId 0", form(0, "senderFormId", 0))
	add("senderFormId -5", form(0, "senderFormId", -5))
	add("senderFormId missing", form(0, "senderFormId", nil))
	add("senderFormId repeated", form(1, "senderFormId", 1))
	add("forms empty", set("forms", []any{}))
	add("forms missing", del("forms"))
	add("500 forms", set("forms", forms(500)))
	add("501 forms", set("forms", forms(501)))
	add("second form without fileName", form(1, "fileName", nil))
	add("several problems", set("sentAt", 1), set("destinationCode", ""), form(0, "size", -1))
	add("a later form's problem after an earlier one's", form(0, "issueDate", 5), form(2, "fileName", ""))
	add("ERROR with zero forms", set("emailStatus", "ERROR"), set("forms", []any{}))
	add("ERROR with a 300-character fileName", set("emailStatus", "ERROR"), form(0, "fileName", rep("f", 300)))
	add("ERROR before 1990", set("emailStatus", "ERROR"), set("sentAt", 1), form(0, "issueDate", 5))
	add("ERROR without historyId", set("emailStatus", "ERROR"), del("historyId"))
	return cases
}

// verdict is a validator's answer: ok, or the first field at fault and
// its problem; refusedBy is set when PostgreSQL refused the value itself
// (NUL, invalid UTF-8), before a function could name the field.
type verdict struct {
	ok             bool
	field, problem string
	refusedBy      string
}

func (v verdict) String() string {
	switch {
	case v.ok:
		return "accepted"
	case v.refusedBy != "":
		return "refused by PostgreSQL (SQLSTATE " + v.refusedBy + ")"
	}
	return "refused: " + v.field + ": " + v.problem
}

func goVerdict(err error) verdict {
	if err == nil {
		return verdict{ok: true}
	}
	p := fromContract(err)[0]
	return verdict{field: p.Field, problem: p.Problem}
}

// goDraft is the Go write path's check of a new history.
func goDraft(b []byte) error {
	if path, bad := contract.InvalidUTF8Path(b); bad {
		return fmt.Errorf("%w: %s: is not valid UTF-8", contract.ErrInvalid, path)
	}
	var h contract.History
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	return h.ValidateDraft()
}

func sqlVerdict(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, fn string, b []byte) verdict {
	t.Helper()
	var problem *string
	err := q.QueryRow(context.Background(), "SELECT "+fn+"($1::text::jsonb)", string(b)).Scan(&problem)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "22P05" || pgErr.Code == "22021"):
		return verdict{refusedBy: pgErr.Code}
	case err != nil:
		t.Fatalf("%s: %v", fn, err)
	case problem == nil:
		return verdict{ok: true}
	}
	p := splitProblem(*problem)
	return verdict{field: p.Field, problem: p.Problem}
}

// TestRulesAgree runs the shared corpus through the Go validators and
// their SQL twins against a real PostgreSQL: a new history through
// ValidateDraft and history_problem (what record_send_invoice_history
// checks), an event through contract.DecodeForApply (what the receiver
// applies) and history_event_problem (what sync_history_aggregate, the
// backfill and verify check). Both must give the same verdict, the same
// first field and the same problem. Text PostgreSQL cannot hold (NUL,
// invalid UTF-8) is refused by PostgreSQL itself, before any function:
// there Go must refuse too, naming the field. And every history the SQL
// path records must publish an event the receiver accepts.
func TestRulesAgree(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	for _, tc := range ruleCorpus(t) {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []struct {
				name, sqlFn string
				goCheck     func([]byte) error
			}{
				{"new history", "history_problem", goDraft},
				{"event", "history_event_problem", func(b []byte) error { _, err := contract.DecodeForApply(b); return err }},
			} {
				g, s := goVerdict(mode.goCheck(tc.payload)), sqlVerdict(t, pool, mode.sqlFn, tc.payload)
				switch {
				case s.refusedBy != "":
					if g.ok || !strings.Contains(g.problem, "NUL") && !strings.Contains(g.problem, "UTF-8") {
						t.Errorf("%s: Go %v, SQL %v; want Go to refuse the text PostgreSQL cannot hold", mode.name, g, s)
					}
				case g != s:
					t.Errorf("%s: Go %v, SQL %s %v", mode.name, g, mode.sqlFn, s)
				}
			}
			recordedEventApplies(t, ctx, pool, tc.payload)
		})
	}
}

// recordedEventApplies records payload through the SQL function, when it
// accepts it, and checks that the event it enqueued passes the receiver's
// decoding.
func recordedEventApplies(t *testing.T, ctx context.Context, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, payload []byte) {
	t.Helper()
	var id int64
	err := pool.QueryRow(ctx, recordSQL, string(payload)).Scan(&id)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		return // refused: nothing recorded
	}
	if err != nil {
		t.Fatalf("record_send_invoice_history: %v", err)
	}
	var event []byte
	if err := pool.QueryRow(ctx, `SELECT payload FROM transaction_outbox WHERE aggregate_id = $1`,
		contract.AggregateID(id)).Scan(&event); err != nil {
		t.Fatal(err)
	}
	if _, err := contract.DecodeForApply(event); err != nil {
		t.Errorf("record_send_invoice_history accepted it, the receiver refuses its event: %v", err)
	}
}

// A history whose rows were edited outside the API so that it can no longer
// form a valid event is not published by a status change: the change is
// refused naming the field (the receiver would dead-letter the event for
// good). Setting ERROR still works: a deletion needs only the id.
func TestSetStatusDoesNotPublishAnInvalidStoredHistory(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	var id int64
	if err := pool.QueryRow(ctx, recordSQL, string(mustJSON(t, baseEvent()))).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE send_invoice_history_form SET file_name = repeat('f', 300) WHERE history_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	_, err := SetStatus(ctx, pool, id, contract.StatusDelivered)
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Fields[0].Field != "forms[0].fileName" {
		t.Fatalf("SetStatus(DELIVERED) = %v, want a ValidationError naming forms[0].fileName", err)
	}
	if v, err := SetStatus(ctx, pool, id, contract.StatusError); err != nil || v != 2 {
		t.Fatalf("SetStatus(ERROR) = %d, %v; want version 2", v, err)
	}
	var event []byte
	if err := pool.QueryRow(ctx, `SELECT payload FROM transaction_outbox WHERE aggregate_id = $1 AND version = 2`,
		contract.AggregateID(id)).Scan(&event); err != nil {
		t.Fatal(err)
	}
	if h, err := contract.DecodeForApply(event); err != nil || h.EmailStatus != contract.StatusError {
		t.Fatalf("the ERROR event decodes as %+v, %v; want a deletion", h, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
