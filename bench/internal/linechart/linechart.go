// Package linechart writes a small self-contained SVG line chart: linear x,
// linear or logarithmic y, a legend, and solid or dashed series.
package linechart

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"
)

// Point is one (x, y) value.
type Point struct{ X, Y float64 }

// Series is one line.
type Series struct {
	// Name is shown in the legend.
	Name string
	// Color is an SVG color, e.g. "#1f77b4".
	Color string
	// Dashed draws the line dashed.
	Dashed bool
	// Points are drawn in x order; points with y <= 0 are skipped on a log axis.
	Points []Point
}

// Chart is the whole figure.
type Chart struct {
	Title, XLabel, YLabel string
	// LogY draws the y axis in powers of ten.
	LogY bool
	// Width and Height in pixels; defaults 900x520.
	Width, Height int
	Series        []Series
	// Note is a line of small text under the chart (e.g. a caveat).
	Note string
}

const (
	marginLeft, marginRight, marginTop, marginBottom = 80, 220, 50, 70
)

// Write renders c as SVG to w.
func (c Chart) Write(w io.Writer) error {
	if c.Width == 0 {
		c.Width = 900
	}
	if c.Height == 0 {
		c.Height = 520
	}
	xmin, xmax, ymin, ymax := c.bounds()
	pw := float64(c.Width - marginLeft - marginRight)
	ph := float64(c.Height - marginTop - marginBottom)
	fy := func(y float64) float64 { return y }
	if c.LogY {
		fy = math.Log10
	}
	px := func(x float64) float64 { return marginLeft + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return marginTop + ph - (fy(y)-fy(ymin))/(fy(ymax)-fy(ymin))*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		c.Width, c.Height, c.Width, c.Height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, esc(c.Title))
	// Grid and ticks.
	for _, t := range xTicks(xmin, xmax) {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x, marginTop, x, marginTop+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, marginTop+ph+18, num(t))
	}
	for _, t := range yTicks(ymin, ymax, c.LogY) {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", marginLeft, y, marginLeft+pw, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginLeft-6, y+4, num(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", marginLeft, marginTop, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", marginLeft+pw/2, c.Height-30, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(20,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", marginTop+ph/2, esc(c.YLabel))
	// Lines and the legend.
	for i, s := range c.Series {
		pts := append([]Point(nil), s.Points...)
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		var coords []string
		for _, p := range pts {
			if c.LogY && p.Y <= 0 || math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
				continue
			}
			coords = append(coords, fmt.Sprintf("%.1f,%.1f", px(p.X), py(p.Y)))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6,4"`
		}
		if len(coords) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.Color, dash, strings.Join(coords, " "))
			for _, xy := range coords {
				x, y, _ := strings.Cut(xy, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, s.Color)
			}
		}
		ly := marginTop + 10 + i*20
		lx := c.Width - marginRight + 16
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+28, ly, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+34, ly+4, esc(s.Name))
	}
	if c.Note != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#555">%s</text>`+"\n", marginLeft, c.Height-10, esc(c.Note))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// bounds returns the axis ranges, padded, never empty.
func (c Chart) bounds() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if c.LogY && p.Y <= 0 || math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
			ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
		}
	}
	if math.IsInf(xmin, 0) { // no points
		xmin, xmax, ymin, ymax = 0, 1, 1, 10
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	xmin = math.Min(0, xmin)
	if c.LogY {
		ymin = math.Pow(10, math.Floor(math.Log10(ymin)))
		ymax = math.Pow(10, math.Ceil(math.Log10(ymax)))
		if ymax == ymin {
			ymax = ymin * 10
		}
		return
	}
	ymin = math.Min(0, ymin)
	if ymax == ymin {
		ymax = ymin + 1
	}
	ymax *= 1.05
	return
}

// xTicks returns about six round ticks in [lo, hi].
func xTicks(lo, hi float64) []float64 {
	step := niceStep((hi - lo) / 6)
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func yTicks(lo, hi float64, logY bool) []float64 {
	if !logY {
		return xTicks(lo, hi)
	}
	var out []float64
	for e := math.Round(math.Log10(lo)); e <= math.Round(math.Log10(hi)); e++ {
		out = append(out, math.Pow(10, e))
	}
	return out
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 0.01:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	default:
		return fmt.Sprintf("%g", v)
	}
}

func esc(s string) string { return html.EscapeString(s) }
