package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a verification. Id lists are sorted.
type Report struct {
	// Timezone is the receiver time zone the issue dates were taken in;
	// Grace the wait before differences were checked again.
	Timezone, Grace string
	// Chunks counts the id ranges compared; ChunksDiffering those whose
	// checksums differed on the first pass.
	Chunks, ChunksDiffering int
	// ShouldBeAtReceiver counts the sender's non-ERROR histories,
	// AtReceiver the receiver's rows (first pass).
	ShouldBeAtReceiver, AtReceiver int64
	// FirstPass counts the histories that differed before the recheck.
	FirstPass int
	// Missing should be at the receiver and are not; Extra are at the
	// receiver and should not be (their sender status is ERROR, or the
	// sender does not know them); Differing are at both with other values.
	Missing, Extra, Differing []int64
	// Unrepairable are the extras unknown to the sender: repair cannot
	// publish their removal.
	Unrepairable []int64
	// Invalid are the differences (missing, differing or extra) whose rows
	// at the sender cannot form a valid event (edited outside the API): a
	// repair would publish what the receiver dead-letters, so it leaves
	// them alone; correct their rows, or set ERROR. Sorted by id.
	Invalid []InvalidHistory
	// InFlight still differed after the grace period but have events in
	// the sender's outbox: not counted as differences.
	InFlight []int64
	// Repaired counts the histories re-enqueued by a repair.
	Repaired int64
	// Elapsed is how long the run took.
	Elapsed string
}

// InvalidHistory is a history whose rows at the sender cannot form a valid
// event, with the first field at fault.
type InvalidHistory struct {
	HistoryID int64  `json:"historyId"`
	Field     string `json:"field"`
	Problem   string `json:"problem"`
}

// Differences counts the histories found different.
func (r *Report) Differences() int { return len(r.Missing) + len(r.Extra) + len(r.Differing) }

// idList is an id list in the JSON report: its full count and at most the
// first limit ids.
type idList struct {
	Count     int     `json:"count"`
	IDs       []int64 `json:"ids"`
	Truncated bool    `json:"truncated,omitempty"`
}

func listOf(ids []int64, limit int) idList {
	l := idList{Count: len(ids), IDs: ids}
	if l.IDs == nil {
		l.IDs = []int64{}
	}
	if limit > 0 && len(ids) > limit {
		l.IDs, l.Truncated = ids[:limit], true
	}
	return l
}

// invalidList is the invalid histories in the JSON report: their full
// count and at most the first limit.
type invalidList struct {
	Count     int              `json:"count"`
	Histories []InvalidHistory `json:"histories"`
	Truncated bool             `json:"truncated,omitempty"`
}

func invalidListOf(hs []InvalidHistory, limit int) invalidList {
	l := invalidList{Count: len(hs), Histories: hs}
	if l.Histories == nil {
		l.Histories = []InvalidHistory{}
	}
	if limit > 0 && len(hs) > limit {
		l.Histories, l.Truncated = hs[:limit], true
	}
	return l
}

// WriteJSON writes the report as one JSON object; each id list shows at
// most limit ids (0: all) and always its full count.
func (r *Report) WriteJSON(w io.Writer, limit int) error {
	out := struct {
		OK                 bool        `json:"ok"`
		Differences        int         `json:"differences"`
		Timezone           string      `json:"timezone"`
		Grace              string      `json:"grace"`
		Chunks             int         `json:"chunks"`
		ChunksDiffering    int         `json:"chunksDiffering"`
		ShouldBeAtReceiver int64       `json:"shouldBeAtReceiver"`
		AtReceiver         int64       `json:"atReceiver"`
		FirstPass          int         `json:"firstPassDifferences"`
		Missing            idList      `json:"missing"`
		Extra              idList      `json:"extra"`
		Differing          idList      `json:"differing"`
		Unrepairable       idList      `json:"unrepairable"`
		Invalid            invalidList `json:"invalid"`
		InFlight           idList      `json:"inFlight"`
		Repaired           int64       `json:"repaired"`
		Elapsed            string      `json:"elapsed"`
	}{
		r.Differences() == 0, r.Differences(), r.Timezone, r.Grace, r.Chunks, r.ChunksDiffering,
		r.ShouldBeAtReceiver, r.AtReceiver, r.FirstPass,
		listOf(r.Missing, limit), listOf(r.Extra, limit), listOf(r.Differing, limit),
		listOf(r.Unrepairable, limit), invalidListOf(r.Invalid, limit), listOf(r.InFlight, limit), r.Repaired, r.Elapsed,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteText writes the report for a person; each id list shows at most
// limit ids (0: all).
func (r *Report) WriteText(w io.Writer, limit int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: %d histories should be at the receiver, %d are; %d chunks compared, %d differed\n",
		r.ShouldBeAtReceiver, r.AtReceiver, r.Chunks, r.ChunksDiffering)
	line := func(name string, ids []int64, note string) {
		fmt.Fprintf(&b, "  %-13s %d", name, len(ids))
		if len(ids) > 0 {
			shown := ids
			if limit > 0 && len(ids) > limit {
				shown = ids[:limit]
			}
			fmt.Fprintf(&b, "  %s", strings.Trim(fmt.Sprint(shown), "[]"))
			if len(shown) < len(ids) {
				fmt.Fprintf(&b, " … (%d more)", len(ids)-len(shown))
			}
			b.WriteString(note)
		}
		b.WriteString("\n")
	}
	line("missing:", r.Missing, "")
	line("extra:", r.Extra, "")
	line("differing:", r.Differing, "")
	line("unrepairable:", r.Unrepairable, "  (extra, unknown to the sender)")
	invalid := make([]int64, len(r.Invalid))
	for i, h := range r.Invalid {
		invalid[i] = h.HistoryID
	}
	line("invalid:", invalid, "  (rows that cannot form a valid event: not repaired; correct them or set ERROR)")
	for i, h := range r.Invalid {
		if limit > 0 && i == limit {
			break
		}
		fmt.Fprintf(&b, "    %d  %s: %s\n", h.HistoryID, h.Field, h.Problem)
	}
	line("in flight:", r.InFlight, "  (events not yet published: not differences)")
	switch {
	case r.Differences() == 0:
		b.WriteString("OK: the receiver holds exactly what it should\n")
	case r.Repaired > 0:
		fmt.Fprintf(&b, "DIFFERENT: %d histories; %d re-enqueued by the repair: run verify again once they are delivered\n",
			r.Differences(), r.Repaired)
	default:
		fmt.Fprintf(&b, "DIFFERENT: %d histories (run with --repair to re-enqueue them)\n", r.Differences())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
