// Package peer is the comparison point: the same workload through
// watermill's outbox, the watermill-sql publisher writing a message row in
// the writer's transaction and watermill's forwarder publishing those rows
// to Kafka (watermill-kafka, Sarama, SASL/SCRAM), consumed by the same
// `receiver serve`.
//
// The sender database is migrated as usual, then the trigger that writes
// our outbox row (aggregate_history_form_enqueue) is disabled, so only
// watermill publishes. The history is still written by the project's own
// SQL function, record_send_invoice_history (the one history.Record calls),
// through bench_peer_record, which also returns the aggregate row in event
// shape, so the watermill message carries exactly the envelope our relay
// would have sent. Watermill needs the payload in Go, so the peer pays one
// more round trip per transaction (the message INSERT) than our trigger.
package peer

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/contract"
)

// KeyMetadata is the watermill metadata field that becomes the Kafka key.
const KeyMetadata = "aggregate_id"

// DefaultForwarderTopic is the watermill-sql topic (table
// watermill_<topic>) the writers publish into and the forwarder drains.
const DefaultForwarderTopic = "invoicesync_forwarder"

const recordFunction = `
CREATE OR REPLACE FUNCTION bench_peer_record(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v    jsonb;
BEGIN
    v_id := record_send_invoice_history(p);
    SELECT jsonb_build_object('id', a.history_id, 'version', a.version, 'occurredAt', a.updated_at,
               'payload', jsonb_build_object(
                   'historyId', a.history_id, 'emailStatus', a.email_status, 'sentAt', a.sent_at,
                   'senderOfficeName', a.sender_office_name, 'destinationCode', a.destination_code,
                   'senderCustomerId', a.sender_customer_id, 'senderOfficeId', a.sender_office_id,
                   'forms', a.forms))
      INTO v
      FROM aggregate_history_form a
     WHERE a.history_id = v_id;
    RETURN v;
END;
$$`

// Prepare readies a migrated sender database for the peer: our outbox
// trigger off, the record function, watermill's tables for fwdTopic.
func Prepare(ctx context.Context, pool *pgxpool.Pool, fwdTopic string) error {
	stmts := []string{
		`ALTER TABLE aggregate_history_form DISABLE TRIGGER aggregate_history_form_enqueue`,
		recordFunction,
	}
	for _, q := range (wmsql.DefaultPostgreSQLSchema{}).SchemaInitializingQueries(fwdTopic) {
		stmts = append(stmts, q.Query)
	}
	for _, q := range (wmsql.DefaultPostgreSQLOffsetsAdapter{}).SchemaInitializingQueries(fwdTopic) {
		stmts = append(stmts, q.Query)
	}
	for _, q := range stmts {
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("prepare peer database: %w", err)
		}
	}
	return nil
}

// Backlog counts the messages the forwarder's consumer group has not acked.
func Backlog(ctx context.Context, pool *pgxpool.Pool, fwdTopic, group string) (int64, error) {
	msgs := wmsql.DefaultPostgreSQLSchema{}.MessagesTable(fwdTopic)
	offs := wmsql.DefaultPostgreSQLOffsetsAdapter{}.MessagesOffsetsTable(fwdTopic)
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM `+msgs+` m
	  LEFT JOIN `+offs+` o ON o.consumer_group = $1
	 WHERE o.consumer_group IS NULL
	    OR m.transaction_id > o.last_processed_transaction_id
	    OR (m.transaction_id = o.last_processed_transaction_id AND m."offset" > coalesce(o.offset_acked, 0))`,
		group).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("peer backlog: %w", err)
	}
	return n, nil
}

// Writer records a history and its watermill message in one database/sql
// transaction (watermill-sql works on database/sql; pgx's stdlib driver).
type Writer struct {
	// DB is the sender database.
	DB *sql.DB
	// Topic is the Kafka topic the forwarder publishes the message to.
	Topic string
	// ForwarderTopic is the watermill-sql topic the forwarder drains.
	ForwarderTopic string
}

type recorded struct {
	ID         int64           `json:"id"`
	Version    int64           `json:"version"`
	OccurredAt time.Time       `json:"occurredAt"`
	Payload    json.RawMessage `json:"payload"`
}

// Write implements workload.Writer.
func (w Writer) Write(ctx context.Context, h contract.History) (id int64, err error) {
	if err := h.ValidateDraft(); err != nil { // what history.Record checks first
		return 0, err
	}
	draft, err := json.Marshal(h)
	if err != nil {
		return 0, fmt.Errorf("peer write: encode: %w", err)
	}
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("peer write: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var raw []byte
	if err := tx.QueryRowContext(ctx, `SELECT bench_peer_record($1::jsonb)`, draft).Scan(&raw); err != nil {
		return 0, fmt.Errorf("peer write: record: %w", err)
	}
	var rec recorded
	if err := json.Unmarshal(raw, &rec); err != nil {
		return 0, fmt.Errorf("peer write: decode: %w", err)
	}
	env := contract.Envelope{EventID: uuid.NewString(), EventType: contract.EventTypeHistoryChanged,
		AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(rec.ID),
		Version: rec.Version, OccurredAt: rec.OccurredAt.UTC(), Payload: rec.Payload}
	value, err := env.Marshal()
	if err != nil {
		return 0, fmt.Errorf("peer write: envelope: %w", err)
	}
	pub, err := wmsql.NewPublisher(tx, wmsql.PublisherConfig{SchemaAdapter: wmsql.DefaultPostgreSQLSchema{}}, nil)
	if err != nil {
		return 0, fmt.Errorf("peer write: publisher: %w", err)
	}
	msg := message.NewMessage(watermill.NewUUID(), value)
	msg.Metadata.Set(KeyMetadata, env.AggregateID)
	fwd := forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: w.ForwarderTopic})
	if err := fwd.Publish(w.Topic, msg); err != nil {
		return 0, fmt.Errorf("peer write: publish: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("peer write: commit: %w", err)
	}
	return rec.ID, nil
}
