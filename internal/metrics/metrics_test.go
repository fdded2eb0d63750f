package metrics

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/causeway/causeway/mqttcore"
)

func TestSnapshotMetrics(t *testing.T) {
	m := New(func() Snapshot { return fullSnapshot() }, Options{Version: "1.2.3"})
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_build_info", []string{"version", "1.2.3", "goversion", runtime.Version()}, 1},
		{"causeway_gateway_info", []string{"gateway", "gw-01"}, 1},

		{"causeway_adapter_up", []string{"adapter", "coap", "kind", "coap"}, 1},
		{"causeway_adapter_up", []string{"adapter", "plc", "kind", "modbus"}, 0},
		{"causeway_adapter_up", []string{"adapter", "meter", "kind", "uart"}, 1},
		{"causeway_adapter_restarts_total", []string{"adapter", "coap", "kind", "coap"}, 0},
		{"causeway_adapter_restarts_total", []string{"adapter", "plc", "kind", "modbus"}, 3},
		{"causeway_adapter_restarts_total", []string{"adapter", "meter", "kind", "uart"}, 1},

		{"causeway_frame_errors_total", []string{"adapter", "coap", "kind", "coap", "reason", "bad_payload"}, 4},
		{"causeway_frame_errors_total", []string{"adapter", "coap", "kind", "coap", "reason", "rate_limited"}, 3},
		{"causeway_frame_errors_total", []string{"adapter", "coap", "kind", "coap", "reason", "overloaded"}, 2},
		{"causeway_frame_errors_total", []string{"adapter", "coap", "kind", "coap", "reason", "backpressure"}, 1},
		{"causeway_frame_errors_total", []string{"adapter", "plc", "kind", "modbus", "reason", "decode"}, 5},
		{"causeway_frame_errors_total", []string{"adapter", "plc", "kind", "modbus", "reason", "backpressure"}, 1},
		{"causeway_frame_errors_total", []string{"adapter", "meter", "kind", "uart", "reason", "bad_checksum"}, 2},
		{"causeway_frame_errors_total", []string{"adapter", "meter", "kind", "uart", "reason", "parse"}, 3},
		{"causeway_frame_errors_total", []string{"adapter", "meter", "kind", "uart", "reason", "oversize"}, 6},
		{"causeway_frame_errors_total", []string{"adapter", "meter", "kind", "uart", "reason", "invalid_framing"}, 7},
		{"causeway_frame_errors_total", []string{"adapter", "meter", "kind", "uart", "reason", "backpressure"}, 1},

		{"causeway_bus_frames_total", nil, 169},
		{"causeway_bus_refused_total", nil, 2},
		{"causeway_bus_depth", nil, 5},

		{"causeway_coap_requests_total", []string{"adapter", "coap"}, 100},
		{"causeway_coap_responses_total", []string{"adapter", "coap", "code", "2.04"}, 90},
		{"causeway_coap_responses_total", []string{"adapter", "coap", "code", "4.00"}, 4},
		{"causeway_coap_responses_total", []string{"adapter", "coap", "code", "4.29"}, 3},
		{"causeway_coap_responses_total", []string{"adapter", "coap", "code", "5.03"}, 3},
		{"causeway_coap_library_errors_total", []string{"adapter", "coap"}, 7},
		{"causeway_coap_dtls_handshake_failures_total", []string{"adapter", "coap"}, 5},
		{"causeway_coap_dtls_sessions", []string{"adapter", "coap"}, 2},
		{"causeway_coap_inflight_requests", []string{"adapter", "coap"}, 1},

		{"causeway_modbus_cycles_total", []string{"adapter", "plc"}, 50},
		{"causeway_modbus_skipped_ticks_total", []string{"adapter", "plc"}, 2},
		{"causeway_modbus_requests_total", []string{"adapter", "plc"}, 120},
		{"causeway_modbus_timeouts_total", []string{"adapter", "plc"}, 6},
		{"causeway_modbus_exceptions_total", []string{"adapter", "plc"}, 2},
		{"causeway_modbus_crc_errors_total", []string{"adapter", "plc"}, 3},
		{"causeway_modbus_malformed_responses_total", []string{"adapter", "plc"}, 1},
		{"causeway_modbus_connection_errors_total", []string{"adapter", "plc"}, 4},
		{"causeway_modbus_writes_total", []string{"adapter", "plc"}, 8},
		{"causeway_modbus_write_errors_total", []string{"adapter", "plc"}, 2},

		{"causeway_serial_received_bytes_total", []string{"adapter", "meter"}, 4096},
		{"causeway_serial_discarded_bytes_total", []string{"adapter", "meter"}, 700},
		{"causeway_serial_empty_frames_total", []string{"adapter", "meter"}, 4},
		{"causeway_serial_writes_total", []string{"adapter", "meter"}, 6},
		{"causeway_serial_write_errors_total", []string{"adapter", "meter"}, 1},

		{"causeway_queue_messages", nil, 12},
		{"causeway_queue_bytes", nil, 3456},
		{"causeway_queue_oldest_age_seconds", nil, 1.5},
		{"causeway_queue_appended_total", nil, 200},
		{"causeway_queue_acked_total", nil, 188},
		// With an uplink, the drops are the uplink's (a superset of the queue's).
		{"causeway_queue_dropped_total", []string{"reason", "full"}, 1},
		{"causeway_queue_dropped_total", []string{"reason", "expired"}, 2},
		{"causeway_queue_dropped_total", []string{"reason", "too_large"}, 3},
		{"causeway_queue_dropped_total", []string{"reason", "rejected"}, 4},
		{"causeway_queue_dropped_total", []string{"reason", "invalid"}, 5},
		{"causeway_queue_dropped_total", []string{"reason", "closed"}, 6},

		{"causeway_uplink_connected", nil, 1},
		{"causeway_uplink_connects_total", nil, 4},
		{"causeway_uplink_reconnects_total", nil, 3},
		{"causeway_uplink_connect_errors_total", nil, 9},
		{"causeway_uplink_inflight", nil, 6},
		{"causeway_uplink_sent_total", nil, 210},

		{"causeway_broker_clients", nil, 3},
		{"causeway_broker_messages_received_total", nil, 300},
		{"causeway_broker_messages_sent_total", nil, 450},
		{"causeway_broker_messages_dropped_total", nil, 8},
		{"causeway_broker_slow_disconnects_total", nil, 1},
		{"causeway_broker_auth_refused_total", nil, 5},
		{"causeway_broker_acl_denied_total", nil, 7},
		{"causeway_broker_retained_messages", nil, 17},

		{"causeway_config_reloads_total", []string{"result", "ok"}, 0},
		{"causeway_config_reloads_total", []string{"result", "error"}, 0},
		{"causeway_config_last_reload_successful", nil, 1},
	})
	// Exactly the codes the adapter reported.
	if got, want := seriesOf(mfs, "causeway_coap_responses_total"),
		[]string{"adapter=coap,code=2.04", "adapter=coap,code=4.00", "adapter=coap,code=4.29", "adapter=coap,code=5.03"}; !slices.Equal(got, want) {
		t.Errorf("coap responses series %v, want %v", got, want)
	}
	// The Go runtime and process collectors are registered too.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// Every metric is described, documented, and follows the naming
// conventions.
func TestNamesDocumentedAndLinted(t *testing.T) {
	m := New(func() Snapshot { return fullSnapshot() }, Options{})
	m.Frame("coap", "t1")
	m.ObserveLatency(time.Millisecond)
	m.CommandResult("plc", true)
	mfs := families(t, m.Handler())

	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"causeway_build_info"}
	for _, d := range allDescs {
		names = append(names, descName(t, d.String()))
	}
	for _, n := range names {
		if mfs[n] == nil {
			t.Errorf("%s is described but not exported with a full snapshot", n)
		}
		if !bytes.Contains(doc, []byte("`"+n+"`")) {
			t.Errorf("%s is not documented in docs/metrics.md", n)
		}
	}
	for n := range mfs {
		if strings.HasPrefix(n, "causeway_") && !slices.Contains(names, n) {
			t.Errorf("%s is exported but not in allDescs", n)
		}
	}
	// And nothing documented that does not exist.
	for _, n := range regexp.MustCompile("`(causeway_[a-z_]+)`").FindAllSubmatch(doc, -1) {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(string(n[1]), "_bucket"), "_sum"), "_count")
		if !slices.Contains(names, name) {
			t.Errorf("docs/metrics.md documents %s, which does not exist", n[1])
		}
	}

	var causeway []string
	for n := range mfs {
		if strings.HasPrefix(n, "causeway_") {
			causeway = append(causeway, n)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	problems, err := promlint.New(rec.Body).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "causeway_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	if len(causeway) < 50 {
		t.Errorf("only %d causeway_ families", len(causeway))
	}
}

// descName extracts fqName from a Desc's String().
func descName(t *testing.T, s string) string {
	t.Helper()
	mm := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(s)
	if mm == nil {
		t.Fatalf("cannot read the name of %s", s)
	}
	return mm[1]
}

func TestFramesPerAdapterAndDevice(t *testing.T) {
	m := New(nil, Options{})
	for range 3 {
		m.Frame("coap", "t1")
	}
	m.Frame("coap", "t2")
	for range 5 {
		m.Frame("plc", "boiler")
	}
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_frames_total", []string{"adapter", "coap", "device", "t1"}, 3},
		{"causeway_frames_total", []string{"adapter", "coap", "device", "t2"}, 1},
		{"causeway_frames_total", []string{"adapter", "plc", "device", "boiler"}, 5},
		{"causeway_frames_overflow_total", []string{"adapter", "coap"}, 0},
		{"causeway_frames_overflow_total", []string{"adapter", "plc"}, 0},
		{"causeway_frame_devices", []string{"adapter", "coap"}, 2},
		{"causeway_frame_devices", []string{"adapter", "plc"}, 1},
	})
	if got := seriesOf(mfs, "causeway_frames_total"); len(got) != 3 {
		t.Errorf("frames series %v, want 3 (no _other before the cap)", got)
	}
}

func TestDeviceCap(t *testing.T) {
	m := New(nil, Options{MaxDevicesPerAdapter: 3})
	for i := range 5 {
		m.Frame("coap", fmt.Sprintf("d%d", i)) // d3, d4 beyond the cap
	}
	m.Frame("coap", "d0")     // known: its own series still
	m.Frame("coap", "d4")     // still beyond
	m.Frame("coap", "_other") // a device so named shares the series, not an overflow
	m.Frame("plc", "x")       // another adapter has its own budget
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_frames_total", []string{"adapter", "coap", "device", "d0"}, 2},
		{"causeway_frames_total", []string{"adapter", "coap", "device", "d1"}, 1},
		{"causeway_frames_total", []string{"adapter", "coap", "device", "d2"}, 1},
		{"causeway_frames_total", []string{"adapter", "coap", "device", "_other"}, 4},
		{"causeway_frames_overflow_total", []string{"adapter", "coap"}, 3},
		{"causeway_frame_devices", []string{"adapter", "coap"}, 3},
		{"causeway_frames_total", []string{"adapter", "plc", "device", "x"}, 1},
	})
	if got := len(seriesOf(mfs, "causeway_frames_total")); got != 5 {
		t.Errorf("%d frames series, want 5", got)
	}
	// Many more distinct devices: the series stay bounded.
	for i := range 10000 {
		m.Frame("coap", fmt.Sprintf("flood-%d", i))
	}
	mfs = families(t, m.Handler())
	if got := len(seriesOf(mfs, "causeway_frames_total")); got != 5 {
		t.Errorf("%d frames series after a flood, want 5", got)
	}
	check(t, mfs, []expect{{"causeway_frames_overflow_total", []string{"adapter", "coap"}, 10003}})
	if got := m.Stats(time.Now()).FramesByAdapter["coap"]; got != 10008 {
		t.Errorf("stats frames of coap = %d, want 10008", got)
	}
}

func TestDefaultDeviceCap(t *testing.T) {
	m := New(nil, Options{})
	for i := range DefaultMaxDevicesPerAdapter + 1 {
		m.Frame("coap", fmt.Sprint(i))
	}
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_frame_devices", []string{"adapter", "coap"}, DefaultMaxDevicesPerAdapter},
		{"causeway_frames_overflow_total", []string{"adapter", "coap"}, 1},
	})
}

func TestAdapterCap(t *testing.T) {
	m := New(nil, Options{})
	for i := range maxAdapters + 10 {
		m.Frame(fmt.Sprintf("a%d", i), "d")
		m.CommandResult(fmt.Sprintf("a%d", i), true)
	}
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_frames_total", []string{"adapter", OtherDevice, "device", "d"}, 10},
		{"causeway_commands_total", []string{"adapter", OtherDevice, "result", "ok"}, 10},
	})
}

func TestInvalidUTF8Names(t *testing.T) {
	m := New(nil, Options{})
	m.Frame("coap", "bad\xffname")
	m.Frame("coap", "bad\xffname")
	m.Frame("coap", "bad\xfename") // cleans to the same label
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_frames_total", []string{"adapter", "coap", "device", "bad\uFFFDname"}, 3},
		{"causeway_frame_devices", []string{"adapter", "coap"}, 1},
	})
}

func TestForgetAdapter(t *testing.T) {
	m := New(nil, Options{})
	m.Frame("old", "d1")
	m.Frame("old", "d2")
	m.Frame("kept", "d1")
	m.CommandResult("old", true)
	m.CommandResult("kept", false)
	m.ForgetAdapter("old")
	m.ForgetAdapter("never-seen")
	mfs := families(t, m.Handler())
	if got, want := seriesOf(mfs, "causeway_frames_total"), []string{"adapter=kept,device=d1"}; !slices.Equal(got, want) {
		t.Errorf("frames series %v, want %v", got, want)
	}
	if lookup(mfs, "causeway_frames_overflow_total", "adapter", "old") != nil {
		t.Error("overflow series of a forgotten adapter")
	}
	if got, want := seriesOf(mfs, "causeway_commands_total"), []string{"adapter=kept,result=error", "adapter=kept,result=ok"}; !slices.Equal(got, want) {
		t.Errorf("commands series %v, want %v", got, want)
	}
	// Counted again from zero if it comes back.
	m.Frame("old", "d1")
	check(t, families(t, m.Handler()), []expect{{"causeway_frames_total", []string{"adapter", "old", "device", "d1"}, 1}})
}

func TestQueueWithoutUplink(t *testing.T) {
	m := New(func() Snapshot { return Snapshot{Gateway: "gw"} }, Options{})
	mfs := families(t, m.Handler())
	exps := []expect{
		{"causeway_queue_messages", nil, 0},
		{"causeway_queue_bytes", nil, 0},
		{"causeway_queue_oldest_age_seconds", nil, 0},
		{"causeway_queue_appended_total", nil, 0},
		{"causeway_queue_acked_total", nil, 0},
		{"causeway_bus_frames_total", nil, 0},
	}
	for _, r := range []string{"full", "expired", "too_large", "rejected", "invalid", "closed"} {
		exps = append(exps, expect{"causeway_queue_dropped_total", []string{"reason", r}, 0})
	}
	check(t, mfs, exps)
	for n := range mfs {
		if strings.HasPrefix(n, "causeway_uplink_") || strings.HasPrefix(n, "causeway_broker_") {
			t.Errorf("%s exported without an uplink/broker", n)
		}
	}
	// A nil source is an empty snapshot.
	check(t, families(t, New(nil, Options{}).Handler()), exps)
}

func TestQueueFromUplink(t *testing.T) {
	// The app left Queue zero: the uplink's queue figures are used.
	s := fullSnapshot()
	s.Queue = mqttcore.QueueStats{}
	s.Uplink.Queued, s.Uplink.QueuedBytes, s.Uplink.OldestAge = 7, 700, 2*time.Second
	m := New(func() Snapshot { return s }, Options{})
	check(t, families(t, m.Handler()), []expect{
		{"causeway_queue_messages", nil, 7},
		{"causeway_queue_bytes", nil, 700},
		{"causeway_queue_oldest_age_seconds", nil, 2},
		{"causeway_queue_acked_total", nil, 188},
		{"causeway_queue_dropped_total", []string{"reason", "closed"}, 6},
	})
}

func TestLatencyHistogram(t *testing.T) {
	m := New(nil, Options{})
	for _, d := range []time.Duration{
		-time.Second,          // clamped to 0: first bucket
		50 * time.Microsecond, // le=5e-05 (bounds are inclusive)
		60 * time.Microsecond, // le=0.0001
		3 * time.Millisecond,  // le=0.005
		time.Second,           // le=1
		time.Minute,           // +Inf only
	} {
		m.ObserveLatency(d)
	}
	mfs := families(t, m.Handler())
	h := lookup(mfs, "causeway_publish_latency_seconds")
	if h == nil || h.Histogram == nil {
		t.Fatal("no latency histogram")
	}
	hist := h.GetHistogram()
	if hist.GetSampleCount() != 6 {
		t.Errorf("count %d, want 6", hist.GetSampleCount())
	}
	wantSum := (50*time.Microsecond + 60*time.Microsecond + 3*time.Millisecond + time.Second + time.Minute).Seconds()
	if d := hist.GetSampleSum() - wantSum; d > 1e-9 || d < -1e-9 {
		t.Errorf("sum %v, want %v", hist.GetSampleSum(), wantSum)
	}
	want := map[float64]uint64{5e-05: 2, 0.0001: 3, 0.00025: 3, 0.001: 3, 0.0025: 3, 0.005: 4, 0.5: 4, 1: 5, 5: 5, 10: 5, math.Inf(1): 6}
	got := map[float64]uint64{}
	for _, b := range hist.GetBucket() {
		got[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if len(got) != len(latencyBounds)+1 { // the parser adds +Inf
		t.Errorf("%d buckets, want %d", len(got), len(latencyBounds)+1)
	}
	for le, n := range want {
		if got[le] != n {
			t.Errorf("bucket le=%v: %d, want %d", le, got[le], n)
		}
	}
}

func TestQuantile(t *testing.T) {
	var c [numBuckets]uint64
	if _, ok := quantile(0.5, &c); ok {
		t.Error("quantile of nothing")
	}
	// 100 observations in (1ms, 2.5ms]: the median interpolates to 1.75ms.
	c[5] = 100
	if d, _ := quantile(0.5, &c); d != 1750*time.Microsecond {
		t.Errorf("p50 %v, want 1.75ms", d)
	}
	if d, _ := quantile(0.99, &c); d != 2485*time.Microsecond {
		t.Errorf("p99 %v, want 2.485ms", d)
	}
	// First bucket interpolates from 0.
	c = [numBuckets]uint64{0: 10}
	if d, _ := quantile(0.5, &c); d != 25*time.Microsecond {
		t.Errorf("p50 %v, want 25µs", d)
	}
	// Beyond the last bound: the last bound.
	c = [numBuckets]uint64{numBuckets - 1: 3}
	if d, _ := quantile(0.99, &c); d != 10*time.Second {
		t.Errorf("p99 %v, want 10s", d)
	}
	// 98 fast, 2 slow: p50 fast, p99 in the slow bucket.
	c = [numBuckets]uint64{2: 98, 13: 2}
	if d, _ := quantile(0.5, &c); d <= 100*time.Microsecond || d > 250*time.Microsecond {
		t.Errorf("p50 %v", d)
	}
	if d, _ := quantile(0.99, &c); d <= 500*time.Millisecond || d > time.Second {
		t.Errorf("p99 %v", d)
	}
}

func TestCommandsAndReloads(t *testing.T) {
	m := New(nil, Options{Start: time.Unix(1000, 0)})
	m.now = func() time.Time { return time.Unix(5000, 500e6) }
	m.CommandResult("plc", true)
	m.CommandResult("plc", true)
	m.CommandResult("plc", false)
	m.CommandResult("meter", false)
	mfs := families(t, m.Handler())
	check(t, mfs, []expect{
		{"causeway_commands_total", []string{"adapter", "plc", "result", "ok"}, 2},
		{"causeway_commands_total", []string{"adapter", "plc", "result", "error"}, 1},
		{"causeway_commands_total", []string{"adapter", "meter", "result", "ok"}, 0},
		{"causeway_commands_total", []string{"adapter", "meter", "result", "error"}, 1},
		// The start counts as the last successful load.
		{"causeway_config_last_reload_success_timestamp_seconds", nil, 1000},
		{"causeway_config_last_reload_successful", nil, 1},
	})

	m.Reload(true)
	m.Reload(false)
	check(t, families(t, m.Handler()), []expect{
		{"causeway_config_reloads_total", []string{"result", "ok"}, 1},
		{"causeway_config_reloads_total", []string{"result", "error"}, 1},
		{"causeway_config_last_reload_success_timestamp_seconds", nil, 5000.5},
		{"causeway_config_last_reload_successful", nil, 0},
	})
	m.Reload(true)
	check(t, families(t, m.Handler()), []expect{
		{"causeway_config_reloads_total", []string{"result", "ok"}, 2},
		{"causeway_config_last_reload_successful", nil, 1},
	})
}

// A duplicate series in the snapshot (two adapters of one name) must not
// hide the rest of the scrape.
func TestScrapeSurvivesBadSnapshot(t *testing.T) {
	s := fullSnapshot()
	s.Modbus = append(s.Modbus, s.Modbus[0])
	m := New(func() Snapshot { return s }, Options{})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "causeway_queue_messages 12") {
		t.Errorf("queue metrics missing from a partial scrape:\n%s", rec.Body)
	}
}

func TestConcurrentFrameAndScrape(t *testing.T) {
	m := New(func() Snapshot { return fullSnapshot() }, Options{MaxDevicesPerAdapter: 50})
	const workers, frames = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range frames {
				m.Frame(fmt.Sprint("a", w%2), fmt.Sprint("d", i%100))
				m.ObserveLatency(time.Duration(i) * time.Microsecond)
				if i%500 == 0 {
					m.ForgetAdapter("gone")
					m.Frame("gone", "x")
					m.CommandResult("a0", i%2 == 0)
				}
			}
		}()
	}
	var scrapes sync.WaitGroup
	scrapes.Add(2)
	go func() {
		defer scrapes.Done()
		for {
			select {
			case <-stop:
				return
			default:
				families(t, m.Handler())
			}
		}
	}()
	go func() {
		defer scrapes.Done()
		for {
			select {
			case <-stop:
				return
			default:
				m.StatsJSON(time.Now())
			}
		}
	}()
	wg.Wait()
	close(stop)
	scrapes.Wait()

	mfs := families(t, m.Handler())
	var total float64
	for _, mm := range mfs["causeway_frames_total"].GetMetric() {
		for _, lp := range mm.GetLabel() {
			if lp.GetName() == "adapter" && lp.GetValue() != "gone" {
				total += mm.GetCounter().GetValue()
			}
		}
	}
	if total != workers*frames {
		t.Errorf("frames counted %v, want %d", total, workers*frames)
	}
	if got := lookup(mfs, "causeway_publish_latency_seconds").GetHistogram().GetSampleCount(); got != workers*frames {
		t.Errorf("latency count %d, want %d", got, workers*frames)
	}
}

func TestFrameDoesNotAllocate(t *testing.T) {
	m := New(nil, Options{MaxDevicesPerAdapter: 2})
	m.Frame("coap", "t1")
	m.Frame("coap", "t2")
	m.Frame("coap", "t3") // overflow
	for _, dev := range []string{"t1", "t3"} {
		if n := testing.AllocsPerRun(1000, func() { m.Frame("coap", dev) }); n != 0 {
			t.Errorf("Frame(%s) allocates %v times", dev, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { m.ObserveLatency(3 * time.Millisecond) }); n != 0 {
		t.Errorf("ObserveLatency allocates %v times", n)
	}
}

func BenchmarkFrame(b *testing.B) {
	m := New(nil, Options{})
	devices := make([]string, 100)
	for i := range devices {
		devices[i] = fmt.Sprintf("device-%03d", i)
		m.Frame("modbus", devices[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m.Frame("modbus", devices[i%len(devices)])
	}
}

func BenchmarkFrameParallel(b *testing.B) {
	m := New(nil, Options{})
	m.Frame("modbus", "boiler")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Frame("modbus", "boiler")
		}
	})
}

func BenchmarkObserveLatency(b *testing.B) {
	m := New(nil, Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveLatency(3 * time.Millisecond)
	}
}

// BenchmarkScrape: a full snapshot, 3 adapters with 100 devices each.
func BenchmarkScrape(b *testing.B) {
	s := fullSnapshot()
	m := New(func() Snapshot { return s }, Options{})
	for _, a := range []string{"coap", "plc", "meter"} {
		for i := range 100 {
			m.Frame(a, fmt.Sprint("device-", i))
		}
	}
	h := m.Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
