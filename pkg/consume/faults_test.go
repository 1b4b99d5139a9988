package consume_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// topicAuthorizationFailed is Kafka's TOPIC_AUTHORIZATION_FAILED error code.
const topicAuthorizationFailed = 29

// refuseProduce makes the embedded broker refuse every produce request to
// topic, as a broker that does not authorise the writer would, until
// allow() is called. It counts the refusals.
func refuseProduce(t *testing.T, k *testsupport.Kafka, topic string) (refused *atomic.Int32, allow func()) {
	t.Helper()
	if k.Embedded == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	refused = &atomic.Int32{}
	var allowed atomic.Bool
	cl := k.Embedded.Cluster()
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		if allowed.Load() || !slices.ContainsFunc(pr.Topics, func(rt kmsg.ProduceRequestTopic) bool { return rt.Topic == topic }) {
			return nil, nil, false
		}
		cl.KeepControl()
		refused.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
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
