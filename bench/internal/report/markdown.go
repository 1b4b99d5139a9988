package report

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/invoicesync/invoicesync/bench/internal/linechart"
)

// Processes in the order the CPU columns show them.
var cpuOrder = []string{"relay", "forwarder", "receiver", "broker", "postgres", "generator", "sender_api"}

// Markdown renders the report: headline, ratios, the steps, bulk, method.
func (r *Result) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# invoicesync benchmark (%s, %s write path, %d writers on %d connections)\n\n", r.Profile, r.Mode, r.Writers, r.WriterConns)
	w("Generated %s in %.0f s on %d cores / %.1f GiB (%s), %s, PostgreSQL %s, broker: %s.\n\n",
		r.GeneratedAt.Format("2006-01-02 15:04:05 MST"), r.DurationS, r.Machine.Cores,
		float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.CPUModel, r.Machine.GoVersion,
		r.Machine.PostgresVersion, r.Machine.BrokerKind)
	if r.Machine.LoadAvgAtStart != "" {
		w("Load average at start: %s. Numbers from a shared or busy machine are noisy.\n\n", r.Machine.LoadAvgAtStart)
	}
	w("## Headline\n\n| metric | value | vs limit | vs peer |\n|---|---:|---:|---:|\n")
	w("| PostgreSQL limit (sender transactions/s, nothing else running) | %s | 1 | |\n", f0(r.LimitEPS))
	w("| the same without the outbox NOTIFY trigger (diagnostic) | %s | %s | |\n", f0(r.LimitNoNotifyEPS), fx(ratio(r.LimitNoNotifyEPS, r.LimitEPS)))
	w("| sustained live rate (events/s) | %s | %s | %s |\n", f0(r.SustainedEPS), fx(r.Ratios.SustainedVsLimit), fx(r.Ratios.SustainedVsPeer))
	w("| peer (watermill) sustained rate (events/s) | %s | %s | 1 |\n", f0(r.PeerSustainedEPS), fx(r.Ratios.PeerSustainedVsLimit))
	w("| live p99 at 1000/s (ms) | %s | | peer p99 / ours: %s |\n", f1(r.P99MsAt1000EPS), fx(r.Ratios.PeerP99VsOursAt1000))
	w("| live p99 at 3000/s (ms) | %s | | |\n", f1(r.P99MsAt3000EPS))
	w("| peer p99 at 1000/s (ms) | %s | | |\n", f1(r.PeerP99MsAt1000EPS))
	w("| bulk (backfill) applied at the receiver (histories/s) | %s | %s | |\n", f0(r.BulkEPS), fx(r.Ratios.BulkVsLimit))
	w("| live p99 during bulk (ms) | %s | | |\n", f1(r.LiveP99MsDuringBulk))
	w("| events undelivered at the end | %d | | |\n\n", r.Undelivered)

	for _, series := range []string{SeriesLive, SeriesPeer} {
		rows := stepsOf(r.Steps, series)
		if len(rows) == 0 {
			continue
		}
		w("## %s steps\n\n", series)
		w("| offered/s | achieved/s | written/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | source p99 | pipeline p99 | max lag | max backlog | undelivered (after drain) / never written | CPU s/1k events (%s) | sustained |\n",
			strings.Join(cpuOrder, "/"))
		w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, s := range rows {
			verdict := "yes"
			if !s.Sustained {
				verdict = "no: " + strings.Join(s.Reasons, "; ")
			}
			w("| %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %d | %d (%d) / %d | %s | %s |\n",
				s.OfferedEPS, s.AchievedEPS, s.WriteEPS, s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.P999,
				s.Latency.Max, s.SourceLatency.P99, s.PipelineLatency.P99, s.MaxLag, s.MaxBacklog,
				s.Undelivered, s.UndeliveredAfterDrain, s.NotWritten, cpu(s.CPUSPer1k), verdict)
		}
		w("\n")
	}
	if l := r.Limit; l != nil {
		w("## Limit\n\n%d writers on %d connections, closed loop, %.0f s, relay and receiver not running: %d commits (%.0f/s), %d errors; "+
			"transaction p50 %.1f ms, p99 %.1f ms. CPU s/1k: %s. Without the outbox's NOTIFY trigger (diagnostic): %.0f/s, "+
			"transaction p50 %.1f ms, p99 %.1f ms.\n\n",
			l.Writers, r.WriterConns, l.DurationS, l.Commits, l.EPS, l.Errors, l.CommitLatency.P50, l.CommitLatency.P99, cpu(l.CPUSPer1k),
			l.NoNotifyEPS, l.NoNotifyCommitLatency.P50, l.NoNotifyCommitLatency.P99)
	}
	if bk := r.Bulk; bk != nil {
		w("## Bulk\n\n%s. %d histories; backfill ran %.1f s; all applied at the receiver after %.1f s (%.0f/s); "+
			"%d applied. Live at %.0f/s meanwhile: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, %d undelivered. CPU s/1k bulk histories: %s.\n\n",
			bk.Method, bk.Histories, bk.EnqueueS, bk.AppliedS, bk.EPS, bk.Applied, bk.LiveOfferedEPS,
			bk.Live.Latency.P50, bk.Live.Latency.P99, bk.Live.Latency.P999, bk.Live.Undelivered, cpu(bk.CPUSPer1k))
	}
	w("## Method\n\n")
	for _, m := range r.Method {
		w("- %s\n", m)
	}
	if len(r.Errors) > 0 {
		w("\n## Errors\n\n")
		for _, e := range r.Errors {
			w("- %s\n", e)
		}
	}
	w("\n![latency against offered rate](latest.svg)\n")
	return b.String()
}

// SVG plots latency percentiles against offered rate, ours and the peer's.
func (r *Result) SVG() ([]byte, error) {
	colors := map[string]string{"p50": "#1f77b4", "p99": "#d62728", "p99.9": "#9467bd"}
	var series []linechart.Series
	for _, sr := range []struct {
		name   string
		label  string
		dashed bool
	}{{SeriesLive, "invoicesync", false}, {SeriesPeer, "watermill peer", true}} {
		rows := stepsOf(r.Steps, sr.name)
		if len(rows) == 0 {
			continue
		}
		for _, q := range []string{"p50", "p99", "p99.9"} {
			s := linechart.Series{Name: sr.label + " " + q, Color: colors[q], Dashed: sr.dashed}
			for _, st := range rows {
				v := map[string]float64{"p50": st.Latency.P50, "p99": st.Latency.P99, "p99.9": st.Latency.P999}[q]
				s.Points = append(s.Points, linechart.Point{X: st.OfferedEPS, Y: v})
			}
			series = append(series, s)
		}
	}
	c := linechart.Chart{
		Title:  fmt.Sprintf("End-to-end latency (intended send → receiver commit), %s run", r.Profile),
		XLabel: "offered rate (events/s)", YLabel: "latency (ms, log scale)", LogY: true, Series: series,
		Note: fmt.Sprintf("%d cores, PostgreSQL %s, %s write path, %d writers on %d connections, dashed: watermill peer; broker: %s",
			r.Machine.Cores, strings.Fields(r.Machine.PostgresVersion + " ?")[0], r.Mode, r.Writers, r.WriterConns, r.Machine.BrokerKind),
	}
	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		return nil, fmt.Errorf("write report: svg: %w", err)
	}
	return buf.Bytes(), nil
}

func stepsOf(steps []Step, series string) []Step {
	var out []Step
	for _, s := range steps {
		if s.Series == series {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].OfferedEPS < out[j].OfferedEPS })
	return out
}

func cpu(m map[string]float64) string {
	var parts []string
	for _, k := range cpuOrder {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, v))
		}
	}
	if len(parts) == 0 {
		return "n/a"
	}
	return strings.Join(parts, ", ")
}

func f0(v *float64) string { return fmtp(v, "%.0f") }
func f1(v *float64) string { return fmtp(v, "%.1f") }
func fx(v *float64) string { return fmtp(v, "%.2f") }

func fmtp(v *float64, f string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(f, *v)
}
