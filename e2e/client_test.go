package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sentForm and sentHistory are what a test sent through the sender API.
type sentForm struct {
	FileName      string      `json:"fileName"`
	FilePath      string      `json:"filePath"`
	Size          int64       `json:"size"`
	InvoiceNumber string      `json:"invoiceNumber"`
	IssueDate     int64       `json:"issueDate"`
	TotalAmount   json.Number `json:"totalAmount"`
}

type sentHistory struct {
	SentAt           int64      `json:"sentAt"`
	SenderOfficeName string     `json:"senderOfficeName"`
	DestinationCode  string     `json:"destinationCode"`
	SenderCustomerID string     `json:"senderCustomerId"`
	SenderOfficeID   string     `json:"senderOfficeId"`
	Forms            []sentForm `json:"forms"`
}

// receivedHistory is the receiver's GET /v1/histories/{id} answer.
type receivedHistory struct {
	HistoryID        int64     `json:"historyId"`
	DestinationCode  string    `json:"destinationCode"`
	SenderCustomerID string    `json:"senderCustomerId"`
	SenderOfficeID   string    `json:"senderOfficeId"`
	SenderOfficeName string    `json:"senderOfficeName"`
	EmailStatus      string    `json:"emailStatus"`
	SentAt           time.Time `json:"sentAt"`
	FormCount        int       `json:"formCount"`
	TotalAmount      string    `json:"totalAmount"`
	SourceVersion    int64     `json:"sourceVersion"`
	Forms            []struct {
		FileName      string    `json:"fileName"`
		FilePath      string    `json:"filePath"`
		SizeBytes     int64     `json:"sizeBytes"`
		InvoiceNumber string    `json:"invoiceNumber"`
		IssuedAt      time.Time `json:"issuedAt"`
		IssueDate     string    `json:"issueDate"`
		TotalAmount   string    `json:"totalAmount"`
	} `json:"forms"`
}

// randomHistory makes a realistic history with 1 to 5 forms.
func randomHistory(r *rand.Rand, dest string, n int) sentHistory {
	sentAt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(300*24*3600)) * time.Second)
	h := sentHistory{SentAt: sentAt.Unix(), SenderOfficeName: "MFV-HN", DestinationCode: dest,
		SenderCustomerID: fmt.Sprintf("%03d", r.IntN(1000)), SenderOfficeID: "MFV-HN-01"}
	for i := range 1 + r.IntN(5) {
		cents := r.Int64N(10_000_000) - 100_000 // credit notes included
		h.Forms = append(h.Forms, sentForm{
			FileName: fmt.Sprintf("inv-%d-%d.pdf", n, i), FilePath: "file://sci/" + dest + "/", Size: r.Int64N(1 << 20),
			InvoiceNumber: fmt.Sprintf("INVC-%d-%d", n, i),
			IssueDate:     sentAt.Add(-time.Duration(r.IntN(1e6)) * time.Millisecond).UnixMilli(),
			TotalAmount:   json.Number(big.NewRat(cents, 100).FloatString(2)),
		})
	}
	return h
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func call(method, url string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

func (s *stack) record(h sentHistory) (int64, error) {
	var out struct {
		HistoryID int64 `json:"historyId"`
	}
	code, err := call(http.MethodPost, s.senderURL+"/v1/histories", h, &out)
	if err == nil && code != http.StatusCreated {
		err = fmt.Errorf("POST /v1/histories: HTTP %d", code)
	}
	return out.HistoryID, err
}

func (s *stack) setStatus(t *testing.T, id int64, status string) int64 {
	t.Helper()
	var out struct {
		Version int64 `json:"version"`
	}
	code, err := call(http.MethodPut, fmt.Sprintf("%s/v1/histories/%d/status", s.senderURL, id),
		map[string]string{"emailStatus": status}, &out)
	if err != nil || code != http.StatusOK {
		t.Fatalf("PUT status %s on %d: HTTP %d, %v", status, id, code, err)
	}
	return out.Version
}

// received returns the receiver's copy of id, or nil when it has none.
func (s *stack) received(t *testing.T, id int64) *receivedHistory {
	t.Helper()
	var out receivedHistory
	code, err := call(http.MethodGet, fmt.Sprintf("%s/v1/histories/%d", s.receiverURL, id), nil, &out)
	switch {
	case err != nil:
		t.Fatalf("GET receiver history %d: %v", id, err)
	case code == http.StatusNotFound:
		return nil
	case code != http.StatusOK:
		t.Fatalf("GET receiver history %d: HTTP %d", id, code)
	}
	return &out
}

// waitCaughtUp waits until the receiver's consumer group has committed
// every message now in the topic. The relay writes in transactions, so a
// partition's end offset lies past its last message (the commit marker
// takes an offset, and an aborted transaction's records do too): a group is
// caught up on a partition when nothing but markers and aborted records
// lies between its committed offset and the last stable offset.
func (s *stack) waitCaughtUp(t *testing.T) {
	t.Helper()
	adm, err := s.kafka.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the receiver group to commit up to the end of the topic", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListCommittedOffsets(ctx, s.topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, s.group)
		if err != nil || committed.Error() != nil {
			return false
		}
		behind := map[int32]kgo.Offset{}
		stops := map[int32]int64{}
		ends.Each(func(e kadm.ListedOffset) {
			c, ok := committed.Lookup(s.topic, e.Partition)
			switch {
			case !ok && e.Offset > 0:
				behind[e.Partition], stops[e.Partition] = kgo.NewOffset().AtStart(), e.Offset
			case ok && c.At < e.Offset:
				behind[e.Partition], stops[e.Partition] = kgo.NewOffset().At(c.At), e.Offset
			}
		})
		return len(behind) == 0 || s.onlyMarkersLeft(ctx, behind, stops)
	})
}

// onlyMarkersLeft reads each partition from its offset in from up to its
// offset in stops (exclusive) with read_committed, and reports whether no
// message lies there: only transaction markers, or nothing committed.
func (s *stack) onlyMarkersLeft(ctx context.Context, from map[int32]kgo.Offset, stops map[int32]int64) bool {
	cl, err := s.kafka.Conn.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return false
	}
	defer cl.Close()
	left := len(stops)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return false
		}
		message := false
		fs.EachRecord(func(r *kgo.Record) {
			stop, ok := stops[r.Partition]
			if !ok || r.Offset >= stop {
				return
			}
			if !r.Attrs.IsControl() {
				message = true
			}
			if r.Offset+1 >= stop {
				delete(stops, r.Partition)
				left--
			}
		})
		if message {
			return false
		}
	}
	return true
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

func newRand() *rand.Rand { return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)) }
