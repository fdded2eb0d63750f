package metrics

import (
	"encoding/json"
	"math"
	"time"
)

// StatsMessage is the JSON published on {gateway}/stats (see StatsJSON and
// docs/metrics.md). Its field names are stable: fields may be added, never
// renamed or removed.
type StatsMessage struct {
	// Time is when the message was made, UTC, millisecond precision.
	Time string `json:"time"`
	// Gateway is the gateway id.
	Gateway string `json:"gateway"`
	// UptimeS is the seconds since the gateway started.
	UptimeS int64 `json:"uptime_s"`
	// Frames is the frames taken from the bus since start (the sum of
	// FramesByAdapter).
	Frames uint64 `json:"frames"`
	// FramesByAdapter is the frames per adapter since start (since the
	// adapter was added, for one added by a reload).
	FramesByAdapter map[string]uint64 `json:"frames_by_adapter"`
	// Errors is, per adapter, the input that did not become a good reading
	// (causeway_frame_errors_total) plus, for Modbus, the failed requests
	// (timeouts, exceptions, CRC errors, malformed answers, connection
	// errors), since the adapter was created.
	Errors map[string]uint64 `json:"errors"`
	// Adapters is the supervisor's view of each adapter.
	Adapters map[string]StatsAdapter `json:"adapters"`
	// Queue is the offline queue (zeros without an uplink).
	Queue StatsQueue `json:"queue"`
	// Uplink is absent without an uplink.
	Uplink *StatsUplink `json:"uplink,omitempty"`
	// Broker is absent when the built-in broker is disabled.
	Broker *StatsBroker `json:"broker,omitempty"`
	// LatencyMS is the end-to-end publish latency since the previous
	// message.
	LatencyMS StatsLatency `json:"latency_ms"`
}

// StatsAdapter is one adapter in StatsMessage.
type StatsAdapter struct {
	Up       bool   `json:"up"`
	Restarts uint64 `json:"restarts"`
}

// StatsQueue is the offline queue in StatsMessage.
type StatsQueue struct {
	Messages   int     `json:"messages"`
	Bytes      int64   `json:"bytes"`
	OldestAgeS float64 `json:"oldest_age_s"`
	// Dropped is the messages dropped or refused since start, every
	// reason together (causeway_queue_dropped_total).
	Dropped uint64 `json:"dropped"`
}

// StatsUplink is the uplink in StatsMessage.
type StatsUplink struct {
	Connected  bool   `json:"connected"`
	Reconnects uint64 `json:"reconnects"`
}

// StatsBroker is the built-in broker in StatsMessage.
type StatsBroker struct {
	Clients int64 `json:"clients"`
	Dropped int64 `json:"dropped"`
}

// StatsLatency is the publish latency over the interval since the previous
// stats message: Count publishes, and the median and 99th percentile in
// milliseconds, estimated from the causeway_publish_latency_seconds buckets
// (linear interpolation inside a bucket, as PromQL's histogram_quantile
// does). P50 and P99 are absent when Count is 0; a value beyond the last
// bucket is reported as 10000 (at least 10 s).
type StatsLatency struct {
	Count uint64   `json:"count"`
	P50   *float64 `json:"p50,omitempty"`
	P99   *float64 `json:"p99,omitempty"`
}

// Stats returns the key figures for {gateway}/stats, made at now. Each call
// starts a new latency interval: one publisher should call it, every
// stats_interval.
func (m *Metrics) Stats(now time.Time) StatsMessage {
	s := m.source()
	_, ads := m.frameCounts(false)

	msg := StatsMessage{
		Time:            now.UTC().Format("2006-01-02T15:04:05.000Z"),
		Gateway:         s.Gateway,
		UptimeS:         max(int64(now.Sub(m.start)/time.Second), 0),
		FramesByAdapter: make(map[string]uint64, len(ads)),
		Errors:          make(map[string]uint64, len(s.CoAP)+len(s.Modbus)+len(s.UART)),
		Adapters:        make(map[string]StatsAdapter, len(s.Adapters)),
	}
	for _, a := range s.Adapters {
		msg.Adapters[a.Name] = StatsAdapter{Up: a.Running, Restarts: a.Restarts}
		msg.FramesByAdapter[a.Name] += 0 // listed even before its first frame
	}
	for _, a := range ads {
		msg.FramesByAdapter[a.adapter] += a.total
		msg.Frames += a.total
	}
	for i := range s.CoAP {
		a := &s.CoAP[i]
		for _, r := range coapErrors(&a.Stats) {
			msg.Errors[a.Name] += r.n
		}
	}
	for i := range s.Modbus {
		a := &s.Modbus[i]
		for _, r := range modbusErrors(&a.Stats) {
			msg.Errors[a.Name] += r.n
		}
		msg.Errors[a.Name] += modbusRequestErrors(&a.Stats)
	}
	for i := range s.UART {
		a := &s.UART[i]
		for _, r := range uartErrors(&a.Stats) {
			msg.Errors[a.Name] += r.n
		}
	}

	q := s.queue()
	msg.Queue = StatsQueue{
		Messages:   q.messages,
		Bytes:      q.bytes,
		OldestAgeS: math.Round(q.oldestSeconds*1000) / 1000,
		Dropped:    q.drops.Total(),
	}
	if u := s.Uplink; u != nil {
		msg.Uplink = &StatsUplink{Connected: u.Connected, Reconnects: u.Reconnects}
	}
	if b := s.Broker; b != nil {
		msg.Broker = &StatsBroker{Clients: b.ClientsConnected, Dropped: b.MessagesDropped}
	}

	m.statsMu.Lock()
	counts, _ := m.lat.snapshot()
	var delta [numBuckets]uint64
	for i := range counts {
		delta[i] = counts[i] - m.prevLat[i]
		msg.LatencyMS.Count += delta[i]
	}
	m.prevLat = counts
	m.statsMu.Unlock()
	if d, ok := quantile(0.5, &delta); ok {
		msg.LatencyMS.P50 = ms(d)
	}
	if d, ok := quantile(0.99, &delta); ok {
		msg.LatencyMS.P99 = ms(d)
	}
	return msg
}

// StatsJSON returns Stats(now) as compact JSON, for {gateway}/stats
// (retained).
func (m *Metrics) StatsJSON(now time.Time) []byte {
	b, err := json.Marshal(m.Stats(now))
	if err != nil {
		// Only maps of strings, numbers and bools: cannot happen.
		panic("metrics: stats message: " + err.Error())
	}
	return b
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) *float64 {
	v := math.Round(float64(d)/1e3) / 1e3
	return &v
}
