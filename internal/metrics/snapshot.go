package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/adapters/coap"
	"github.com/causeway/causeway/adapters/modbus"
	"github.com/causeway/causeway/adapters/uart"
	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mqttcore"
)

// Snapshot is everything the collector reads at scrape time; the app fills
// it from the components' Stats methods. One Snapshot is taken per scrape,
// so the values of one scrape are consistent with each other.
//
// The counters in it are cumulative since the component was created: a
// configuration reload that recreates an adapter (or the uplink) starts its
// counters from zero again, which Prometheus's rate() and increase() treat
// as a counter reset.
type Snapshot struct {
	// Gateway is the gateway id ([gateway] id), exported in
	// causeway_gateway_info and StatsJSON.
	Gateway string
	// Adapters is the supervisor's view (bridge.Supervisor.States).
	Adapters []bridge.AdapterState
	// CoAP, Modbus and UART hold each adapter's own counters.
	CoAP   []CoAP
	Modbus []Modbus
	UART   []UART
	// Bus is the bus between the adapters and the pipeline.
	Bus bridge.BusStats
	// Queue is the offline queue's Stats(); its zero value (no uplink) is
	// exported as zeros. When it is entirely zero and Uplink is set, the
	// queue figures of UplinkStats (Queued, QueuedBytes, OldestAge) are used.
	Queue mqttcore.QueueStats
	// Uplink is nil when no uplink is configured: the causeway_uplink_*
	// series are then absent.
	Uplink *mqttcore.UplinkStats
	// Broker is nil when the built-in broker is disabled: the
	// causeway_broker_* series are then absent.
	Broker *mqttcore.BrokerStats
}

// CoAP is the counters of one CoAP adapter.
type CoAP struct {
	Name  string
	Stats coap.Stats
}

// Modbus is the counters of one Modbus adapter.
type Modbus struct {
	Name  string
	Stats modbus.Stats
}

// UART is the counters of one serial (UART) adapter.
type UART struct {
	Name  string
	Stats uart.Stats
}

// Adapter kinds, as the kind label of causeway_frame_errors_total.
const (
	kindCoAP   = "coap"
	kindModbus = "modbus"
	kindUART   = "uart"
)

// reasonCount is one frame-error reason of an adapter.
type reasonCount struct {
	reason string
	n      uint64
}

// The frame-error reasons of each kind, always exported (zero included) so
// that rate() and alerts see every series from the start.
func coapErrors(s *coap.Stats) [4]reasonCount {
	return [...]reasonCount{
		{"bad_payload", s.BadPayloads},
		{"rate_limited", s.RateLimited},
		{"overloaded", s.Overloaded},
		{"backpressure", s.Backpressure},
	}
}

func modbusErrors(s *modbus.Stats) [2]reasonCount {
	return [...]reasonCount{
		{"decode", s.DecodeErrors},
		{"backpressure", s.FrameErrors},
	}
}

func uartErrors(s *uart.Stats) [5]reasonCount {
	return [...]reasonCount{
		{"bad_checksum", s.BadChecksum},
		{"parse", s.ParseErrors},
		{"oversize", s.Framer.Oversize},
		{"invalid_framing", s.Framer.Invalid},
		{"backpressure", s.FrameErrors},
	}
}

// modbusRequestErrors is the failed Modbus requests (each attempt).
func modbusRequestErrors(s *modbus.Stats) uint64 {
	return s.Timeouts + s.Exceptions + s.CRCErrors + s.Malformed + s.ConnErrors
}

// queueFigures is what the metrics and StatsJSON report of the offline
// queue.
type queueFigures struct {
	messages      int
	bytes         int64
	oldestSeconds float64
	appended      uint64
	acked         uint64
	drops         mqttcore.Drops
}

// queue returns the offline queue's figures: from Queue, or from Uplink
// when Queue was left zero; zeros without either.
func (s *Snapshot) queue() queueFigures {
	q := s.Queue
	if q == (mqttcore.QueueStats{}) && s.Uplink != nil {
		q.Len, q.Bytes, q.OldestAge, q.Acked = s.Uplink.Queued, s.Uplink.QueuedBytes, s.Uplink.OldestAge, s.Uplink.Acked
	}
	f := queueFigures{
		messages: q.Len, bytes: q.Bytes, oldestSeconds: q.OldestAge.Seconds(),
		appended: q.Appended, acked: q.Acked, drops: q.Dropped,
	}
	if s.Uplink != nil {
		// The uplink's drops include the queue's and add its own
		// (refused by the broker, too large, invalid, closed).
		f.drops = s.Uplink.Dropped
	}
	return f
}

func dropReasons(d mqttcore.Drops) [6]reasonCount {
	return [...]reasonCount{
		{"full", d.Full},
		{"expired", d.Expired},
		{"too_large", d.TooLarge},
		{"rejected", d.Rejected},
		{"invalid", d.Invalid},
		{"closed", d.Closed},
	}
}

// desc is shorthand for prometheus.NewDesc without constant labels.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// Counted here.
	descFrames = desc("causeway_frames_total",
		"Frames taken from the bus by the pipeline, by adapter and device (devices beyond the per-adapter cap under device=\"_other\").", "adapter", "device")
	descFramesOverflow = desc("causeway_frames_overflow_total",
		"Frames counted under device=\"_other\" because their adapter already had the maximum number of device series.", "adapter")
	descFrameDevices = desc("causeway_frame_devices",
		"Distinct devices with their own causeway_frames_total series, by adapter.", "adapter")
	descLatency = desc("causeway_publish_latency_seconds",
		"End-to-end publish latency: from a frame's arrival on the bus to its messages published on the built-in broker and accepted by the offline queue.")
	descCommands = desc("causeway_commands_total",
		"Commands executed, by adapter and result (ok, error).", "adapter", "result")
	descReloads = desc("causeway_config_reloads_total",
		"Configuration reloads, by result (ok, error).", "result")
	descReloadTime = desc("causeway_config_last_reload_success_timestamp_seconds",
		"When the configuration was last loaded successfully (at start or by a reload), in seconds since the Unix epoch.")
	descReloadOK = desc("causeway_config_last_reload_successful",
		"1 if the last configuration reload succeeded (or none was tried), 0 if it failed and the previous configuration is still running.")
	descGateway = desc("causeway_gateway_info",
		"Always 1; the gateway label is the gateway id (the {gateway} of the MQTT topics).", "gateway")

	// Supervisor and bus.
	descAdapterUp = desc("causeway_adapter_up",
		"1 while the adapter runs (started and ready), 0 while it is failed and waiting to restart.", "adapter", "kind")
	descAdapterRestarts = desc("causeway_adapter_restarts_total",
		"Restarts of the adapter by the supervisor after a failure.", "adapter", "kind")
	descFrameErrors = desc("causeway_frame_errors_total",
		"Input that did not become a good reading, by adapter, kind and reason (see docs/metrics.md for the reasons of each kind).", "adapter", "kind", "reason")
	descBusFrames = desc("causeway_bus_frames_total",
		"Frames accepted by the bus.")
	descBusRefused = desc("causeway_bus_refused_total",
		"Frames the bus refused because it was full (backpressure).")
	descBusDepth = desc("causeway_bus_depth",
		"Frames waiting on the bus for the pipeline.")

	// CoAP.
	descCoAPRequests = desc("causeway_coap_requests_total",
		"CoAP requests handled by the server (a block-wise transfer counts once), refused ones included.", "adapter")
	descCoAPResponses = desc("causeway_coap_responses_total",
		"CoAP responses the server chose, by code (\"2.04\", \"4.00\", ...).", "adapter", "code")
	descCoAPLibErrors = desc("causeway_coap_library_errors_total",
		"Errors reported by the CoAP library: malformed datagrams, failed writes.", "adapter")
	descCoAPHandshakes = desc("causeway_coap_dtls_handshake_failures_total",
		"Failed DTLS handshakes: unknown PSK identity, wrong key, timeout, no common cipher suite.", "adapter")
	descCoAPSessions = desc("causeway_coap_dtls_sessions",
		"DTLS sessions established now.", "adapter")
	descCoAPInFlight = desc("causeway_coap_inflight_requests",
		"CoAP messages being handled now.", "adapter")

	// Modbus.
	descModbusCycles = desc("causeway_modbus_cycles_total",
		"Poll cycles (one per device per interval).", "adapter")
	descModbusSkipped = desc("causeway_modbus_skipped_ticks_total",
		"Poll ticks skipped because a cycle overran its interval.", "adapter")
	descModbusRequests = desc("causeway_modbus_requests_total",
		"Modbus requests sent, every retry included.", "adapter")
	descModbusTimeouts = desc("causeway_modbus_timeouts_total",
		"Modbus requests with no answer within timeout.", "adapter")
	descModbusExceptions = desc("causeway_modbus_exceptions_total",
		"Modbus requests answered with an exception.", "adapter")
	descModbusCRC = desc("causeway_modbus_crc_errors_total",
		"Modbus RTU answers with a bad CRC.", "adapter")
	descModbusMalformed = desc("causeway_modbus_malformed_responses_total",
		"Modbus answers that were malformed (short, wrong function or unit).", "adapter")
	descModbusConn = desc("causeway_modbus_connection_errors_total",
		"Modbus requests that failed on the connection (refused, reset, port error).", "adapter")
	descModbusWrites = desc("causeway_modbus_writes_total",
		"Modbus writes attempted by commands, failed ones included.", "adapter")
	descModbusWriteErrors = desc("causeway_modbus_write_errors_total",
		"Modbus writes by commands that failed.", "adapter")

	// Serial.
	descSerialBytes = desc("causeway_serial_received_bytes_total",
		"Bytes read from the serial port.", "adapter")
	descSerialDiscarded = desc("causeway_serial_discarded_bytes_total",
		"Bytes the framer discarded: oversize and invalid frames, bytes skipped to resynchronize, partial frames.", "adapter")
	descSerialEmpty = desc("causeway_serial_empty_frames_total",
		"Serial frames without any point (blank lines): ignored, not an error.", "adapter")
	descSerialWrites = desc("causeway_serial_writes_total",
		"Writes to the serial port by commands, failed ones included.", "adapter")
	descSerialWriteErrors = desc("causeway_serial_write_errors_total",
		"Writes to the serial port by commands that failed.", "adapter")

	// Offline queue.
	descQueueMessages = desc("causeway_queue_messages",
		"Messages in the offline queue not yet acknowledged by the uplink broker (0 without an uplink).")
	descQueueBytes = desc("causeway_queue_bytes",
		"Bytes held by the offline queue (0 without an uplink).")
	descQueueOldest = desc("causeway_queue_oldest_age_seconds",
		"Age of the oldest message in the offline queue (0 when empty or without an uplink).")
	descQueueAppended = desc("causeway_queue_appended_total",
		"Messages accepted by the offline queue.")
	descQueueAcked = desc("causeway_queue_acked_total",
		"Messages acknowledged by the uplink broker and removed from the offline queue.")
	descQueueDropped = desc("causeway_queue_dropped_total",
		"Messages bound for the uplink that were dropped or refused, by reason (full, expired, too_large, rejected, invalid, closed).", "reason")

	// Uplink.
	descUplinkConnected = desc("causeway_uplink_connected",
		"1 while the uplink session to the remote broker is connected, else 0 (absent without an uplink).")
	descUplinkConnects = desc("causeway_uplink_connects_total",
		"Uplink connections established.")
	descUplinkReconnects = desc("causeway_uplink_reconnects_total",
		"Uplink connections established after the first.")
	descUplinkConnectErrors = desc("causeway_uplink_connect_errors_total",
		"Failed uplink connection attempts.")
	descUplinkInflight = desc("causeway_uplink_inflight",
		"QoS 1/2 publishes awaiting acknowledgement from the uplink broker.")
	descUplinkSent = desc("causeway_uplink_sent_total",
		"PUBLISH packets written to the uplink broker, resends included.")

	// Built-in broker.
	descBrokerClients = desc("causeway_broker_clients",
		"MQTT clients connected to the built-in broker.")
	descBrokerReceived = desc("causeway_broker_messages_received_total",
		"PUBLISH packets received by the built-in broker (from TCP clients and from the gateway itself).")
	descBrokerSent = desc("causeway_broker_messages_sent_total",
		"PUBLISH packets written to the built-in broker's TCP clients.")
	descBrokerDropped = desc("causeway_broker_messages_dropped_total",
		"Deliveries dropped because a client of the built-in broker did not read fast enough.")
	descBrokerSlow = desc("causeway_broker_slow_disconnects_total",
		"Clients of the built-in broker disconnected because they did not read their messages.")
	descBrokerAuthRefused = desc("causeway_broker_auth_refused_total",
		"CONNECTs refused by the built-in broker: no or bad credentials, or a will topic outside the user's filters.")
	descBrokerACLDenied = desc("causeway_broker_acl_denied_total",
		"Publishes, subscriptions and deliveries refused by a user's topic filters on the built-in broker.")
	descBrokerRetained = desc("causeway_broker_retained_messages",
		"Retained messages held by the built-in broker.")
)

var allDescs = []*prometheus.Desc{
	descFrames, descFramesOverflow, descFrameDevices, descLatency, descCommands, descReloads, descReloadTime, descReloadOK, descGateway,
	descAdapterUp, descAdapterRestarts, descFrameErrors, descBusFrames, descBusRefused, descBusDepth,
	descCoAPRequests, descCoAPResponses, descCoAPLibErrors, descCoAPHandshakes, descCoAPSessions, descCoAPInFlight,
	descModbusCycles, descModbusSkipped, descModbusRequests, descModbusTimeouts, descModbusExceptions, descModbusCRC,
	descModbusMalformed, descModbusConn, descModbusWrites, descModbusWriteErrors,
	descSerialBytes, descSerialDiscarded, descSerialEmpty, descSerialWrites, descSerialWriteErrors,
	descQueueMessages, descQueueBytes, descQueueOldest, descQueueAppended, descQueueAcked, descQueueDropped,
	descUplinkConnected, descUplinkConnects, descUplinkReconnects, descUplinkConnectErrors, descUplinkInflight, descUplinkSent,
	descBrokerClients, descBrokerReceived, descBrokerSent, descBrokerDropped, descBrokerSlow, descBrokerAuthRefused, descBrokerACLDenied, descBrokerRetained,
}

// collector turns one Snapshot, and the values counted by Metrics, into
// constant metrics at each scrape.
type collector struct{ m *Metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// emitter sends constant metrics; a metric that cannot be built (a label
// value that is not valid UTF-8) becomes an invalid metric, reported by the
// registry without failing the rest of the scrape.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.send(d, prometheus.CounterValue, float64(v), labels)
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.send(d, prometheus.GaugeValue, v, labels)
}

func (e emitter) send(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	e := emitter{ch}
	s := m.source()

	// Counted here.
	frames, ads := m.frameCounts(true)
	for _, f := range frames {
		e.counter(descFrames, f.n, f.adapter, f.device)
	}
	for _, a := range ads {
		e.counter(descFramesOverflow, a.overflow, a.adapter)
		e.gauge(descFrameDevices, float64(a.devices), a.adapter)
	}
	counts, sumNs := m.lat.snapshot()
	var cum uint64
	buckets := make(map[float64]uint64, len(latencyBounds))
	for i, b := range latencyBounds {
		cum += counts[i]
		buckets[b.Seconds()] = cum
	}
	cum += counts[len(latencyBounds)]
	if h, err := prometheus.NewConstHistogram(descLatency, cum, float64(sumNs)/1e9, buckets); err == nil {
		ch <- h
	} else {
		ch <- prometheus.NewInvalidMetric(descLatency, err)
	}
	for a, n := range m.commandCounts() {
		e.counter(descCommands, n[0], a, "ok")
		e.counter(descCommands, n[1], a, "error")
	}
	e.counter(descReloads, m.reloadsOK.Load(), "ok")
	e.counter(descReloads, m.reloadsErr.Load(), "error")
	e.gauge(descReloadTime, float64(m.lastReloadOK.Load())/1e9)
	e.gauge(descReloadOK, b2f(!m.lastReloadFailed.Load()))
	if s.Gateway != "" {
		e.gauge(descGateway, 1, s.Gateway)
	}

	// Supervisor and bus.
	for _, a := range s.Adapters {
		e.gauge(descAdapterUp, b2f(a.Running), a.Name, a.Kind)
		e.counter(descAdapterRestarts, a.Restarts, a.Name, a.Kind)
	}
	e.counter(descBusFrames, s.Bus.Sent)
	e.counter(descBusRefused, s.Bus.Refused)
	e.gauge(descBusDepth, float64(s.Bus.Depth))

	for i := range s.CoAP {
		a := &s.CoAP[i]
		st := &a.Stats
		for _, r := range coapErrors(st) {
			e.counter(descFrameErrors, r.n, a.Name, kindCoAP, r.reason)
		}
		e.counter(descCoAPRequests, st.Requests, a.Name)
		for code, n := range st.Responses {
			e.counter(descCoAPResponses, n, a.Name, code)
		}
		e.counter(descCoAPLibErrors, st.LibErrors, a.Name)
		e.counter(descCoAPHandshakes, st.HandshakeFailures, a.Name)
		e.gauge(descCoAPSessions, float64(st.DTLSSessions), a.Name)
		e.gauge(descCoAPInFlight, float64(st.InFlight), a.Name)
	}
	for i := range s.Modbus {
		a := &s.Modbus[i]
		st := &a.Stats
		for _, r := range modbusErrors(st) {
			e.counter(descFrameErrors, r.n, a.Name, kindModbus, r.reason)
		}
		e.counter(descModbusCycles, st.Cycles, a.Name)
		e.counter(descModbusSkipped, st.SkippedTicks, a.Name)
		e.counter(descModbusRequests, st.Requests, a.Name)
		e.counter(descModbusTimeouts, st.Timeouts, a.Name)
		e.counter(descModbusExceptions, st.Exceptions, a.Name)
		e.counter(descModbusCRC, st.CRCErrors, a.Name)
		e.counter(descModbusMalformed, st.Malformed, a.Name)
		e.counter(descModbusConn, st.ConnErrors, a.Name)
		e.counter(descModbusWrites, st.Writes, a.Name)
		e.counter(descModbusWriteErrors, st.WriteErrors, a.Name)
	}
	for i := range s.UART {
		a := &s.UART[i]
		st := &a.Stats
		for _, r := range uartErrors(st) {
			e.counter(descFrameErrors, r.n, a.Name, kindUART, r.reason)
		}
		e.counter(descSerialBytes, st.Bytes, a.Name)
		e.counter(descSerialDiscarded, st.Framer.Discarded, a.Name)
		e.counter(descSerialEmpty, st.Empty, a.Name)
		// uart counts successful writes and failed ones apart.
		e.counter(descSerialWrites, st.Writes+st.WriteErrors, a.Name)
		e.counter(descSerialWriteErrors, st.WriteErrors, a.Name)
	}

	// Offline queue: always, zeros without an uplink.
	q := s.queue()
	e.gauge(descQueueMessages, float64(q.messages))
	e.gauge(descQueueBytes, float64(q.bytes))
	e.gauge(descQueueOldest, q.oldestSeconds)
	e.counter(descQueueAppended, q.appended)
	e.counter(descQueueAcked, q.acked)
	for _, r := range dropReasons(q.drops) {
		e.counter(descQueueDropped, r.n, r.reason)
	}

	if u := s.Uplink; u != nil {
		e.gauge(descUplinkConnected, b2f(u.Connected))
		e.counter(descUplinkConnects, u.Connects)
		e.counter(descUplinkReconnects, u.Reconnects)
		e.counter(descUplinkConnectErrors, u.ConnectErrors)
		e.gauge(descUplinkInflight, float64(u.Inflight))
		e.counter(descUplinkSent, u.Sent)
	}
	if b := s.Broker; b != nil {
		e.gauge(descBrokerClients, float64(b.ClientsConnected))
		e.counter(descBrokerReceived, uint64(max(b.MessagesReceived, 0)))
		e.counter(descBrokerSent, uint64(max(b.MessagesSent, 0)))
		e.counter(descBrokerDropped, uint64(max(b.MessagesDropped, 0)))
		e.counter(descBrokerSlow, uint64(max(b.SlowDisconnects, 0)))
		e.counter(descBrokerAuthRefused, uint64(max(b.AuthRefused, 0)))
		e.counter(descBrokerACLDenied, uint64(max(b.ACLDenied, 0)))
		e.gauge(descBrokerRetained, float64(b.Retained))
	}
}
