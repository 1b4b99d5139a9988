package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// scanIDs scans src and returns the ids of what it handed over.
func scanIDs(t *testing.T, src Source) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []string
	start := time.Now()
	if err := src.Scan(ctx, func(r *kgo.Record) error {
		got = append(got, idOf(int(r.Partition), r.Offset))
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	t.Logf("scan took %v", time.Since(start).Round(time.Millisecond))
	return got
}

// inTxn writes recs to the dead-letter topic's partition 0 in one
// transaction, committed or aborted.
func (f *fixture) inTxn(t *testing.T, commit bool, recs ...*kgo.Record) {
	t.Helper()
	cl := f.k.Client(t, kgo.TransactionalID(testsupport.Name("dlq-txn")), kgo.DefaultProduceTopic(f.dlq),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		r.Partition = 0
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce in a transaction: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction: %v", err)
	}
}

// entry is the dead-letter record of event n with key key.
func (f *fixture) entry(t *testing.T, n int, key string) *kgo.Record {
	t.Helper()
	return dlq.Build(f.event(t, n, dead{key: key}), dlq.Failure{Class: dlq.ClassSchema, Reason: "r", Group: "g",
		At: t0.Add(time.Duration(n) * time.Minute)})
}

// A dead-letter topic written by transactions (committed and aborted) and
// plainly: the scan hands over the committed entries only and ends at the
// end offset even when a transaction marker is the last thing before it;
// a marker's offset and an aborted entry's are named as no entry.
func TestKafkaSourceSkipsAbortedRecordsAndMarkers(t *testing.T) {
	f := newFixture(t)
	f.inTxn(t, true, f.entry(t, 1, "1"))
	f.inTxn(t, false, f.entry(t, 2, "aborted"))
	f.write(t, f.dlq, f.entry(t, 3, "3")) // partition 0
	f.inTxn(t, true, f.entry(t, 4, "4"))
	f.inTxn(t, false, f.entry(t, 5, "aborted")) // its marker ends the partition

	// A broker writes the markers after it answered the commit or abort,
	// so where they land is read back, not assumed.
	var committed, aborted, markers []string
	raw := f.k.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{f.dlq: {0: kgo.NewOffset().At(0)}}),
		kgo.KeepControlRecords())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n := 0; n < 9 && ctx.Err() == nil; {
		raw.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n++
			id := idOf(0, r.Offset)
			switch {
			case r.Attrs.IsControl():
				markers = append(markers, id)
			case string(r.Key) == "aborted":
				aborted = append(aborted, id)
			default:
				committed = append(committed, id)
			}
		})
	}
	if len(committed) != 3 || len(aborted) != 2 || len(markers) != 4 || markers[3] != "0:8" {
		t.Fatalf("topic holds entries %v, aborted %v, markers %v; want 3, 2 and 4 ending at 0:8", committed, aborted, markers)
	}

	src := NewKafkaSource(f.k.Conn, f.dlq)
	if got := scanIDs(t, src); !slices.Equal(got, committed) {
		t.Fatalf("Scan = %v, want the committed entries %v", got, committed)
	}
	want := map[string]string{"0:9": "holds offsets 0 to 8"}
	for _, id := range markers {
		want[id] = "transaction marker"
	}
	for _, id := range aborted {
		want[id] = "no message at that offset"
	}
	for id, why := range want {
		p, o, _ := dlq.ParseID(id)
		if _, err := src.Fetch(ctx, p, o); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), why) {
			t.Errorf("Fetch(%s) = %v, want ErrNotFound saying %q", id, err, why)
		}
	}
	p, o, _ := dlq.ParseID(committed[2])
	if r, err := src.Fetch(ctx, p, o); err != nil || string(r.Key) != "4" {
		t.Fatalf("Fetch(%s) = %v, %v; want entry 4", committed[2], r, err)
	}
}

// Records deleted (by retention) after the offsets were listed are
// skipped: the read resumes at the new log start, and a partition emptied
// meanwhile ends the read instead of waiting.
func TestKafkaSourceResumesAfterRecordsDeletedSinceListing(t *testing.T) {
	f := newFixture(t)
	var recs []*kgo.Record
	for n := 1; n <= 4; n++ {
		recs = append(recs, f.entry(t, n, fmt.Sprint(n)))
	}
	f.write(t, f.dlq, recs...)
	src := NewKafkaSource(f.k.Conn, f.dlq)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spans, err := src.spans(ctx)
	if err != nil || spans[0].first != 0 || spans[0].end != 4 {
		t.Fatalf("spans = %+v, %v; want partition 0 at [0, 4)", spans, err)
	}
	deleteBefore := func(off int64) {
		t.Helper()
		adm, err := f.k.Conn.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: f.dlq, Partition: 0, At: off})
		resp, err := adm.DeleteRecords(ctx, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("delete records before %d: %v", off, err)
		}
	}
	read := func() []int64 {
		t.Helper()
		var got []int64
		start := time.Now()
		if err := src.scanPartition(ctx, spans[0], func(r *kgo.Record) error { got = append(got, r.Offset); return nil }); err != nil {
			t.Fatalf("scanPartition: %v", err)
		}
		t.Logf("read %v in %v", got, time.Since(start).Round(time.Millisecond))
		return got
	}
	deleteBefore(2)
	if got := read(); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("read after deleting 0 and 1 = %v, want [2 3]", got)
	}
	if _, err := src.Fetch(ctx, 0, 1); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "holds offsets 2 to 3") {
		t.Errorf("Fetch(0:1) = %v, want ErrNotFound naming offsets 2 to 3", err)
	}
	deleteBefore(4)
	if got := read(); len(got) != 0 {
		t.Fatalf("read after deleting everything = %v, want nothing", got)
	}
}

// A topic that does not exist is named as such.
func TestKafkaSourceMissingTopic(t *testing.T) {
	k := testsupport.NewKafka(t)
	src := NewKafkaSource(k.Conn, "no-such-dlq-topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := src.Scan(ctx, func(*kgo.Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no-such-dlq-topic does not exist") {
		t.Fatalf("Scan of a missing topic = %v", err)
	}
}

// The publisher puts a keyed record on the partition the Java client
// chooses: murmur2 of the key, sign bit cleared, modulo the partitions.
// The hashes are the Java client's own test vectors (UtilsTest.testMurmur2).
func TestKafkaPublisherPartitionsKeysAsJava(t *testing.T) {
	k := testsupport.NewKafka(t)
	const parts = 7
	topic := k.Topic(t, "murmur", parts)
	pub, err := NewKafkaPublisher(k.Conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	javaMurmur2 := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]int32{}
	for key, h := range javaMurmur2 {
		want[key] = int32((uint32(h) & 0x7fffffff) % parts) //nolint:gosec // the Java arithmetic
		if err := pub.Publish(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte("v")}); err != nil {
			t.Fatalf("Publish(%s): %v", key, err)
		}
	}
	for _, r := range k.ReadAll(t, topic, len(javaMurmur2), 30*time.Second) {
		if w := want[string(r.Key)]; r.Partition != w {
			t.Errorf("key %q went to partition %d, the Java client puts it on %d", r.Key, r.Partition, w)
		}
	}
}
