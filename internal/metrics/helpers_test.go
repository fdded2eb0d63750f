package metrics

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/causeway/causeway/adapters/coap"
	"github.com/causeway/causeway/adapters/modbus"
	"github.com/causeway/causeway/adapters/uart"
	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mqttcore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// families scrapes h (GET /metrics) and parses the text exposition.
func families(t testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return mfs
}

// lookup returns the metric of family name whose labels are exactly
// labels ("k", "v", ...), or nil.
func lookup(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the value of a counter or gauge series; it fails the test
// when the series is missing.
func value(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := lookup(mfs, name, labels...)
	if m == nil {
		t.Fatalf("no series %s%v", name, labels)
		return 0
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// expect checks a batch of series values.
type expect struct {
	name   string
	labels []string
	want   float64
}

func check(t testing.TB, mfs map[string]*dto.MetricFamily, exps []expect) {
	t.Helper()
	for _, e := range exps {
		if got := value(t, mfs, e.name, e.labels...); got != e.want {
			t.Errorf("%s%v = %v, want %v", e.name, e.labels, got, e.want)
		}
	}
}

// seriesOf lists the label sets of family name, sorted, as "k=v,k=v".
func seriesOf(mfs map[string]*dto.MetricFamily, name string) []string {
	var out []string
	for _, m := range mfs[name].GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName()+"="+lp.GetValue())
		}
		out = append(out, strings.Join(ls, ","))
	}
	sort.Strings(out)
	return out
}

// fullSnapshot is a snapshot with every part filled and distinct values.
func fullSnapshot() Snapshot {
	return Snapshot{
		Gateway: "gw-01",
		Adapters: []bridge.AdapterState{
			{Name: "coap", Kind: "coap", Running: true},
			{Name: "plc", Kind: "modbus", Running: false, Restarts: 3, LastErr: "modbus serial line: port gone"},
			{Name: "meter", Kind: "uart", Running: true, Restarts: 1},
		},
		CoAP: []CoAP{{Name: "coap", Stats: coap.Stats{
			Requests: 100, Frames: 90, BadPayloads: 4, Overloaded: 2, Backpressure: 1, LibErrors: 7,
			RateLimited: 3, HandshakeFailures: 5, DTLSSessions: 2, InFlight: 1,
			Responses: map[string]uint64{"2.04": 90, "4.00": 4, "4.29": 3, "5.03": 3},
		}}},
		Modbus: []Modbus{{Name: "plc", Stats: modbus.Stats{
			Cycles: 50, Frames: 49, FrameErrors: 1, SkippedTicks: 2, Requests: 120, Timeouts: 6,
			Exceptions: 2, CRCErrors: 3, Malformed: 1, ConnErrors: 4, DecodeErrors: 5, Writes: 8, WriteErrors: 2,
		}}},
		UART: []UART{{Name: "meter", Stats: uart.Stats{
			Bytes: 4096, Frames: 30, FrameErrors: 1, BadChecksum: 2, ParseErrors: 3, Empty: 4, Writes: 5, WriteErrors: 1,
			Framer: uart.FramerStats{Frames: 40, Oversize: 6, Discarded: 700, Invalid: 7},
		}}},
		Bus: bridge.BusStats{Sent: 169, Refused: 2, Depth: 5},
		Queue: mqttcore.QueueStats{
			Len: 12, Bytes: 3456, OldestAge: 1500 * time.Millisecond, Appended: 200, Acked: 188,
			Dropped: mqttcore.Drops{Full: 1, Expired: 2}, Committed: 188, LastSeq: 200,
		},
		Uplink: &mqttcore.UplinkStats{
			Connected: true, Connects: 4, Reconnects: 3, ConnectErrors: 9, Queued: 12, QueuedBytes: 3456,
			OldestAge: 1500 * time.Millisecond, Inflight: 6, Sent: 210, Acked: 188,
			Dropped: mqttcore.Drops{Full: 1, Expired: 2, TooLarge: 3, Rejected: 4, Invalid: 5, Closed: 6},
		},
		Broker: &mqttcore.BrokerStats{
			ClientsConnected: 3, MessagesReceived: 300, MessagesSent: 450, MessagesDropped: 8, SlowDisconnects: 1, Retained: 17, AuthRefused: 5, ACLDenied: 7,
		},
	}
}
