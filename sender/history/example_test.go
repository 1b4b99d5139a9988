package history_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/sender/history"
)

// Record a history inside the application's own transaction, next to the
// application's other writes: the history and its event are committed
// together, or, when anything in the transaction fails, neither is.
func ExampleRecord() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_sender")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	h := contract.History{
		SentAt: 1686110218, SenderOfficeName: "MFV-HN", DestinationCode: "CUST-001",
		SenderCustomerID: "001", SenderOfficeID: "MFV-HN-01",
		Forms: []contract.Form{{
			FileName: "abcd.pdf", FilePath: "file://sci/", Size: 1, InvoiceNumber: "INVC-001",
			IssueDate: 1686110218222, TotalAmount: "1500",
		}},
	}
	var rec history.Recorded
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... the application's own writes in tx ...
		rec, err = history.Record(ctx, tx, h)
		return err // an error rolls back: nothing recorded, nothing published
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded history", rec.HistoryID, "at version", rec.Version)
}

// Set the final status a mail provider reported. ERROR removes the history
// downstream.
func ExampleSetStatus() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_sender")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	var version int64
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		version, err = history.SetStatus(ctx, tx, 42, contract.StatusError)
		return err
	})
	if err != nil {
		log.Fatal(err) // errors.Is(err, history.ErrNotFound) when history 42 does not exist
	}
	fmt.Println("history 42 is now at version", version)
}
