package consume_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// topicAuthorizationFailed is Kafka's TOPIC_AUTHORIZATION_FAILED error code.
const topicAuthorizationFailed = 29

// topicID is the broker's id of topic: recent requests name topics by id.
func topicID(t *testing.T, k *testsupport.Kafka, topic string) [16]byte {
	t.Helper()
	adm, err := k.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topic)
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	return td[topic].ID
}

// refuseProduce makes the embedded broker refuse every produce request to
// topic, as a broker that does not authorise the writer would, until
// allow() is called. It counts the refusals.
func refuseProduce(t *testing.T, k *testsupport.Kafka, topic string) (refused *atomic.Int32, allow func()) {
	t.Helper()
	if k.Embedded == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	refused = &atomic.Int32{}
	id := topicID(t, k, topic)
	var allowed atomic.Bool
	cl := k.Embedded.Cluster()
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		if allowed.Load() || !slices.ContainsFunc(pr.Topics, func(rt kmsg.ProduceRequestTopic) bool { return rt.Topic == topic || rt.TopicID == id }) {
			return nil, nil, false
		}
		cl.KeepControl()
		refused.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, topicAuthorizationFailed
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return refused, func() { allowed.Store(true) }
}

// While the dead-letter topic refuses writes, the poison message's offset
// is not committed and the messages after it wait; the publish is retried
// and, once the broker accepts it, the message is dead-lettered once and
// the partition moves on.
func TestDeadLetterPublishFailureHoldsTheOffsetUntilItSucceeds(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "dlqfail", 1)
	group := testsupport.Name("g")
	refused, allow := refuseProduce(t, k, dlq.Topic(topic))
	produce(t, k, topic, 0, 0, 2) // message 0 is the poison

	var applied recorder
	c := newConsumer(t, k, testConfig(topic, group), poisonHandler("0", &applied), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "three refused dead-letter publishes (or a commit)", func() bool {
		return refused.Load() >= 3 && c.Stats().DeadLetterRetries >= 3 || committed(t, k, group, topic, 0) >= 0
	})
	if off := committed(t, k, group, topic, 0); off >= 0 {
		t.Fatalf("committed offset %d while the poison message is not dead-lettered", off)
	}
	if got := applied.all(); len(got) != 0 {
		t.Fatalf("applied %v past a message that is neither applied nor dead-lettered", got)
	}
	allow()
	waitFor(t, "both committed", func() bool { return committed(t, k, group, topic, 0) == 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	dead := k.ReadAll(t, dlq.Topic(topic), 1, 30*time.Second)
	if len(dead) != 1 {
		t.Fatalf("dead-letter topic holds %d messages, want exactly 1", len(dead))
	}
	assertDeadLetter(t, dead[0], message(0), topic, 0, dlq.ClassSchema, "fileName", group)
	if got := slices.Concat(applied.all()...); !slices.Equal(got, []int64{1}) {
		t.Fatalf("applied %v, want [1]", got)
	}
}

// slowFetches makes the embedded broker hold every fetch request for topic
// for delay before answering it, as a busy broker building a large response
// would. It counts the held requests.
func slowFetches(t *testing.T, k *testsupport.Kafka, topic string, delay time.Duration) *atomic.Int32 {
	t.Helper()
	if k.Embedded == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	held := &atomic.Int32{}
	id := topicID(t, k, topic)
	var mu sync.Mutex
	seen := map[kmsg.Request]bool{}
	cl := k.Embedded.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		fr := req.(*kmsg.FetchRequest)
		if !slices.ContainsFunc(fr.Topics, func(ft kmsg.FetchRequestTopic) bool { return ft.Topic == topic || ft.TopicID == id }) {
			return nil, nil, false
		}
		mu.Lock()
		again := seen[req]
		seen[req] = true
		mu.Unlock()
		if !again {
			held.Add(1)
			cl.SleepControl(func() { time.Sleep(delay) })
		}
		return nil, nil, false
	})
	return held
}

// A broker that takes much longer than MaxWait to answer a fetch still
// delivers: MaxWait is how long the broker may wait for data, not how long
// the answer may take. (kafka-go's Reader once used it for both: with a
// large backlog on a busy broker every fetch timed out, was asked again,
// and the partition never moved.)
func TestFetchAnsweredSlowerThanMaxWaitStillDelivers(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "slowfetch", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 50)
	cfg := testConfig(topic, group)
	cfg.MaxWait = 20 * time.Millisecond
	held := slowFetches(t, k, topic, 10*cfg.MaxWait)

	var applied recorder
	logs := &syncBuffer{}
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		applied.add(msgs)
		return nil
	}), zerolog.New(logs))
	stop := run(t, c)
	waitFor(t, "all 50 committed", func() bool { return committed(t, k, group, topic, 0) == 50 })
	produce(t, k, topic, 0, 50, 10)
	waitFor(t, "all 60 committed", func() bool { return committed(t, k, group, topic, 0) == 60 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if held.Load() < 2 {
		t.Fatalf("only %d fetches were held: the fault was not injected", held.Load())
	}
	want := make([]int64, 60)
	for i := range want {
		want[i] = int64(i)
	}
	if got := slices.Concat(applied.all()...); !slices.Equal(got, want) {
		t.Fatalf("applied %v, want offsets 0..59 once each, in order", got)
	}
	if strings.Contains(logs.String(), "kafka request failed") {
		t.Fatalf("a held fetch was counted as failed:\n%s", logs.String())
	}
}

// When the broker drops the fetch connection, the client reconnects and
// resumes after the last message it handed over: nothing is skipped or
// handed over twice, and the failures are logged.
func TestDroppedFetchConnectionIsReconnected(t *testing.T) {
	k := testsupport.NewKafka(t)
	if k.Embedded == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := topics(t, k, "dropfetch", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 20)
	var fetches, dropped atomic.Int32
	id := topicID(t, k, topic)
	cl := k.Embedded.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		fr := req.(*kmsg.FetchRequest)
		// Drop every other fetch of the topic, ten times in all.
		if !slices.ContainsFunc(fr.Topics, func(ft kmsg.FetchRequestTopic) bool { return ft.Topic == topic || ft.TopicID == id }) ||
			fetches.Add(1)%2 == 1 || dropped.Load() >= 10 {
			return nil, nil, false
		}
		dropped.Add(1)
		return nil, errors.New("injected fetch failure"), true // closes the connection
	})

	var applied recorder
	logs := &syncBuffer{}
	cfg := testConfig(topic, group)
	cfg.BatchSize = 3
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		applied.add(msgs)
		return nil
	}), zerolog.New(logs))
	stop := run(t, c)
	waitFor(t, "the first 20 committed", func() bool { return committed(t, k, group, topic, 0) == 20 })
	for i := 20; i < 40; i++ {
		produce(t, k, topic, 0, i, 1)
	}
	waitFor(t, "all 40 committed", func() bool { return committed(t, k, group, topic, 0) == 40 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if dropped.Load() == 0 {
		t.Fatal("no fetch was dropped: the fault was not injected")
	}
	if got := slices.Concat(applied.all()...); !slices.Equal(got, upTo(40)) {
		t.Fatalf("applied %v, want offsets 0..39 once each, in order", got)
	}
	if !strings.Contains(logs.String(), "kafka request failed") {
		t.Fatalf("the dropped fetches were not logged:\n%s", logs.String())
	}
}

// When every connection of a member drops for a moment (a network blip,
// here through a proxy that is cut and restored), the client reconnects and
// resumes after the last record it handed over: nothing is skipped or
// handed over twice, and the failures are logged.
func TestCutConnectionsAreReconnected(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "cutconn", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 20)
	proxy := testsupport.NewProxy(t, k.Config.Brokers[0])

	var applied recorder
	logs := &syncBuffer{}
	c := newConsumer(t, k, testConfig(topic, group), consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		applied.add(recs)
		return nil
	}), zerolog.New(logs))
	consume.WithClientOpts(c, kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, proxy.Addr()) // every broker of this one-broker cluster
	}))
	stop := run(t, c)
	waitFor(t, "the first 20 committed", func() bool { return committed(t, k, group, topic, 0) == 20 })
	proxy.Cut()
	time.Sleep(500 * time.Millisecond) // well within the session timeout
	proxy.Restore()
	produce(t, k, topic, 0, 20, 20)
	waitFor(t, "all 40 committed", func() bool { return committed(t, k, group, topic, 0) == 40 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := slices.Concat(applied.all()...); !slices.Equal(got, upTo(40)) {
		t.Fatalf("applied %v, want offsets 0..39 once each, in order", got)
	}
	if !strings.Contains(logs.String(), "kafka request failed") {
		t.Fatalf("the dropped connections were not logged:\n%s", logs.String())
	}
}
