// Package metrics holds what every process shares for Prometheus: a
// registry with the Go runtime and process collectors, the HTTP handler that
// exposes it, and the buckets used for latencies. Each component declares
// its own series in its own package and registers them on the registry it is
// given (constructor injection, no global registry).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every series of this project.
const Namespace = "invoicesync"

// LatencyBuckets spans 1 ms to about 65 s in powers of two: end-to-end and
// publish latencies from an idle system to a badly lagging one.
var LatencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)

// SizeBuckets are for batch sizes: 1 to 4096.
var SizeBuckets = prometheus.ExponentialBuckets(1, 2, 13)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}
