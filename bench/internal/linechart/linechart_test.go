package linechart

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestWriteIsWellFormedSVG(t *testing.T) {
	c := Chart{Title: "latency <p99> & rate", XLabel: "offered events/s", YLabel: "ms", LogY: true,
		Series: []Series{
			{Name: "ours p99", Color: "#d62728", Points: []Point{{1000, 40}, {500, 20}, {3000, 900}}},
			{Name: "peer p99", Color: "#d62728", Dashed: true, Points: []Point{{500, 300}, {1000, 0}}},
			{Name: "empty", Color: "#000"},
		}}
	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
	}
	if n := strings.Count(out, "<polyline"); n != 2 {
		t.Errorf("%d polylines, want 2 (an empty series draws none)", n)
	}
	for _, want := range []string{"stroke-dasharray", "ours p99", "&lt;p99&gt; &amp; rate", ">1000<"} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestNoPointsStillRenders(t *testing.T) {
	var buf bytes.Buffer
	if err := (Chart{Title: "empty", LogY: true}).Write(&buf); err != nil || !strings.HasSuffix(buf.String(), "</svg>\n") {
		t.Fatalf("err=%v out=%q", err, buf.String())
	}
}

func TestNiceTicks(t *testing.T) {
	got := xTicks(0, 6000)
	if len(got) < 4 || got[0] != 0 || got[len(got)-1] != 6000 {
		t.Errorf("xTicks(0, 6000) = %v", got)
	}
	if got := yTicks(1, 1000, true); len(got) != 4 || got[3] != 1000 {
		t.Errorf("yTicks log = %v", got)
	}
}
