// Package metrics exposes the gateway's counters: /metrics in the
// Prometheus text format (github.com/prometheus/client_golang), /healthz and
// /readyz for supervisors and load balancers, and a small JSON summary of
// the key figures that the app publishes, retained, on {gateway}/stats.
//
// There is no global state: a [Metrics] owns its own prometheus.Registry.
// Two kinds of values are exported:
//
//   - values the components already count (adapters, bus, offline queue,
//     uplink, built-in broker): the app hands them over as a [Snapshot]
//     taken once per scrape (and once per StatsJSON call) from their Stats
//     methods; a custom collector turns the snapshot into constant metrics;
//   - values only the pipeline sees, counted here: frames per adapter and
//     device ([Metrics.Frame]), end-to-end publish latency
//     ([Metrics.ObserveLatency]), command results ([Metrics.CommandResult])
//     and configuration reloads ([Metrics.Reload]).
//
// Every metric is documented, with its labels and meaning, in
// docs/metrics.md.
package metrics
