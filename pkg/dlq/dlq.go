// Package dlq is the dead-letter contract: how a message that cannot be
// applied is written to the dead-letter topic (its original key, value and
// headers, plus headers that say why, where it came from and how often it
// failed), how such an entry is read back, and how it is replayed to its
// original topic so it goes through the normal path again.
package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names added to a dead-lettered message. The original headers are
// kept as they were.
const (
	HeaderReason            = "dlq-reason"
	HeaderErrorClass        = "dlq-error-class"
	HeaderOriginalTopic     = "dlq-original-topic"
	HeaderOriginalPartition = "dlq-original-partition"
	HeaderOriginalOffset    = "dlq-original-offset"
	HeaderAttempt           = "dlq-attempt"
	HeaderFailedAt          = "dlq-failed-at"
	HeaderConsumerGroup     = "dlq-consumer-group"
	// HeaderReplayAttempt is set on a replayed message: the attempt count of
	// the entry it came from, so a second failure is dead-lettered with
	// attempt+1 instead of starting again at 1.
	HeaderReplayAttempt = "dlq-replay-attempt"
)

// Error classes of permanent failures.
const (
	ClassDecode      = "decode"             // bytes are not a valid envelope or payload
	ClassSchema      = "schema"             // the event breaks the contract (a field, a type)
	ClassUnsupported = "unsupported_schema" // a newer major schema version this build cannot read
	ClassTransform   = "transform"          // valid event that cannot be mapped to the receiver's schema
	ClassConstraint  = "constraint"         // the database refused it for good (a constraint no retry fixes)
)

// Suffix is appended to a topic name to form its default dead-letter topic.
const Suffix = ".dlq"

// Topic returns the default dead-letter topic of topic.
func Topic(topic string) string { return topic + Suffix }

// Failure describes why a message is dead-lettered.
type Failure struct {
	// Class is one of the Class constants.
	Class string
	// Reason is the error text, naming what is wrong.
	Reason string
	// Group is the consumer group that gave up on the message.
	Group string
	// At is when it failed.
	At time.Time
}

// Build returns the dead-letter message for orig: same key, value and
// headers (minus earlier dlq-* headers), plus the dlq-* headers. The
// attempt is one more than the replay attempt orig carries.
func Build(orig *kgo.Record, f Failure) *kgo.Record {
	attempt := ReplayAttempt(orig) + 1
	hs := make([]kgo.RecordHeader, 0, len(orig.Headers)+8)
	for _, h := range orig.Headers {
		if !strings.HasPrefix(h.Key, "dlq-") {
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(f.Reason)},
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(f.Class)},
		kgo.RecordHeader{Key: HeaderOriginalTopic, Value: []byte(orig.Topic)},
		kgo.RecordHeader{Key: HeaderOriginalPartition, Value: []byte(strconv.Itoa(int(orig.Partition)))},
		kgo.RecordHeader{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(orig.Offset, 10))},
		kgo.RecordHeader{Key: HeaderAttempt, Value: []byte(strconv.Itoa(attempt))},
		kgo.RecordHeader{Key: HeaderFailedAt, Value: []byte(f.At.UTC().Format(time.RFC3339Nano))},
		kgo.RecordHeader{Key: HeaderConsumerGroup, Value: []byte(f.Group)},
	)
	return &kgo.Record{Key: orig.Key, Value: orig.Value, Headers: hs}
}

// ReplayAttempt is the attempt count a replayed message carries (0 when it
// was never dead-lettered).
func ReplayAttempt(m *kgo.Record) int {
	n, _ := strconv.Atoi(header(m, HeaderReplayAttempt))
	return n
}

// Entry is one message read from a dead-letter topic.
type Entry struct {
	// ID is "partition:offset" in the dead-letter topic.
	ID string
	// Partition and Offset locate the entry in the dead-letter topic.
	Partition int
	Offset    int64
	// Key, Value and Headers are the original message's, Headers without the dlq-* ones.
	Key, Value []byte
	Headers    []kgo.RecordHeader
	// Failure fields, from the dlq-* headers.
	Class, Reason, Group string
	FailedAt             time.Time
	Attempt              int
	// Where the original message was.
	OriginalTopic     string
	OriginalPartition int
	OriginalOffset    int64
}

// ErrNotDeadLetter marks a message that lacks the dlq-* headers.
var ErrNotDeadLetter = errors.New("not a dead-letter message")

// Parse reads an entry from a message of the dead-letter topic.
func Parse(m *kgo.Record) (Entry, error) {
	e := Entry{
		ID: FormatID(int(m.Partition), m.Offset), Partition: int(m.Partition), Offset: m.Offset,
		Key: m.Key, Value: m.Value,
		Class: header(m, HeaderErrorClass), Reason: header(m, HeaderReason), Group: header(m, HeaderConsumerGroup),
		OriginalTopic: header(m, HeaderOriginalTopic),
	}
	if e.OriginalTopic == "" {
		return Entry{}, fmt.Errorf("%w: %s has no %s header", ErrNotDeadLetter, e.ID, HeaderOriginalTopic)
	}
	var err error
	if e.Attempt, err = strconv.Atoi(header(m, HeaderAttempt)); err != nil {
		return Entry{}, fmt.Errorf("%w: %s: header %s: %v", ErrNotDeadLetter, e.ID, HeaderAttempt, err)
	}
	e.OriginalPartition, _ = strconv.Atoi(header(m, HeaderOriginalPartition))
	e.OriginalOffset, _ = strconv.ParseInt(header(m, HeaderOriginalOffset), 10, 64)
	e.FailedAt, _ = time.Parse(time.RFC3339Nano, header(m, HeaderFailedAt))
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "dlq-") {
			e.Headers = append(e.Headers, h)
		}
	}
	return e, nil
}

// Header returns the value of an original header of the entry, or "".
func (e Entry) Header(key string) string {
	for _, h := range e.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ReplayMessage is the message that replays e to its original topic: the
// original key, value and headers, plus the attempt count so far.
func (e Entry) ReplayMessage() *kgo.Record {
	hs := append(append([]kgo.RecordHeader(nil), e.Headers...),
		kgo.RecordHeader{Key: HeaderReplayAttempt, Value: []byte(strconv.Itoa(e.Attempt))})
	return &kgo.Record{Topic: e.OriginalTopic, Key: e.Key, Value: e.Value, Headers: hs}
}

// FormatID formats an entry id.
func FormatID(partition int, offset int64) string {
	return strconv.Itoa(partition) + ":" + strconv.FormatInt(offset, 10)
}

// ParseID parses an entry id "partition:offset".
func ParseID(id string) (partition int, offset int64, err error) {
	p, o, ok := strings.Cut(id, ":")
	if ok {
		partition, err = strconv.Atoi(p)
		if err == nil {
			offset, err = strconv.ParseInt(o, 10, 64)
		}
	}
	if !ok || err != nil || partition < 0 || offset < 0 {
		return 0, 0, fmt.Errorf("dead-letter id %q: want partition:offset, e.g. 0:42", id)
	}
	return partition, offset, nil
}

func header(m *kgo.Record, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
