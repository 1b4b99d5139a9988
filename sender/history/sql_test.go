package history

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// TestSQLFunctionsRejectBadInputNamingTheField calls the database functions
// directly, as an app in another language would, bypassing the Go checks:
// the database must refuse bad input itself, name the field, and this
// package must translate that into a *ValidationError for the same field.
func TestSQLFunctionsRejectBadInputNamingTheField(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	const head = `"sentAt":1686110218,"senderOfficeName":"MFV-HN","destinationCode":"CUST-001",` +
		`"senderCustomerId":"001","senderOfficeId":"MFV-HN-01"`
	const form = `{"fileName":"a.pdf","filePath":"file://sci/","size":1,"invoiceNumber":"INVC-001",` +
		`"issueDate":1686110218222,"totalAmount":1500}`
	tests := []struct {
		name, payload, field string
	}{
		{"not an object", `[]`, "history"},
		{"no forms", `{` + head + `}`, "forms"},
		{"empty forms", `{` + head + `,"forms":[]}`, "forms"},
		{"unknown status", `{` + head + `,"emailStatus":"LOST","forms":[` + form + `]}`, "emailStatus"},
		{"no sentAt", `{"senderOfficeName":"x","forms":[` + form + `]}`, "sentAt"},
		{"sentAt a string", `{` + head + `,"sentAt":"1686110218","forms":[` + form + `]}`, "sentAt"},
		{"blank destination", `{` + head + `,"destinationCode":"","forms":[` + form + `]}`, "destinationCode"},
		{"second form without fileName", `{` + head + `,"forms":[` + form + `,{"size":1}]}`, "forms[1].fileName"},
		{"amount a string", `{` + head + `,"forms":[{"fileName":"a","size":1,"invoiceNumber":"i","issueDate":1686110218222,"totalAmount":"9"}]}`,
			"forms[0].totalAmount"},
		{"fractional issueDate", `{` + head + `,"forms":[{"fileName":"a","size":1,"invoiceNumber":"i","issueDate":1.5,"totalAmount":9}]}`,
			"forms[0].issueDate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var id int64
			err := pool.QueryRow(ctx, recordSQL, tt.payload).Scan(&id)
			checkSQLRejection(t, err, tt.field)
		})
	}
	t.Run("unknown status update", func(t *testing.T) {
		var v int64
		err := pool.QueryRow(ctx, setStatusSQL, int64(1), "LOST").Scan(&v)
		checkSQLRejection(t, err, "emailStatus")
	})
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM send_invoice_history) + (SELECT count(*) FROM transaction_outbox)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows written by rejected input (%v), want 0", n, err)
	}
}

func checkSQLRejection(t *testing.T, err error, field string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != codeInvalidParameter {
		t.Fatalf("database answered %v, want SQLSTATE %s", err, codeInvalidParameter)
	}
	var verr *ValidationError
	if !errors.As(translate("test", 0, err), &verr) || len(verr.Fields) != 1 || verr.Fields[0].Field != field {
		t.Fatalf("translated %q to %v, want one problem with field %s", pgErr.Message, translate("test", 0, err), field)
	}
}
