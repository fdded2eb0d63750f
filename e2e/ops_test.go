package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// scrape GETs path on the gateway's HTTP listener.
func scrape(t *testing.T, port int, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample name{labels} in a Prometheus text
// exposition, where labels are given as `k="v"` pairs that must all appear.
func metric(t *testing.T, text, name string, labels ...string) (float64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		ok := true
		for _, l := range labels {
			if !strings.Contains(m[1], l) {
				ok = false
				break
			}
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("%s: %v", m[0], err)
			}
			return v, true
		}
	}
	return 0, false
}

func wantMetric(t *testing.T, text, name string, want float64, labels ...string) {
	t.Helper()
	got, ok := metric(t, text, name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in /metrics", name, labels)
	}
	if got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// waitLog waits until the gateway's log contains s, n times.
func (g *gw) waitLog(s string, n int, d time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Count(g.Log(), s) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("the gateway did not log %q (%d times) within %s\n%s", s, n, d, g.Log())
}

// TestMetricsCountWhatWasSent sends readings for two devices and a few
// malformed payloads, then checks /metrics, /healthz, /readyz and the
// retained {gateway}/stats message against exactly what was sent.
func TestMetricsCountWhatWasSent(t *testing.T) {
	p := freePorts(t)
	httpPort := testpeer.FreeTCPPort(t)
	cfg := baseConfig(p, fmt.Sprintf("\n[http]\nlisten = \"127.0.0.1:%d\"\n", httpPort))
	cfg = strings.Replace(cfg, "log_level = \"info\"", "log_level = \"info\"\nstats_interval = \"300ms\"", 1)
	startGateway(t, cfg)

	const kitchen, hall, bad = 7, 3, 2
	for i := range kitchen {
		if code, _ := coap(t, p.coap, "post", "/kitchen", "50", fmt.Sprintf(`{"t":%d}`, i)); code != "2.04" {
			t.Fatalf("kitchen reading %d: %s", i, code)
		}
	}
	for i := range hall {
		if code, _ := coap(t, p.coap, "post", "/hall", "50", fmt.Sprintf(`{"t":%d}`, i)); code != "2.04" {
			t.Fatalf("hall reading %d: %s", i, code)
		}
	}
	for range bad {
		if code, _ := coap(t, p.coap, "post", "/hall", "50", `{"t":`); code != "4.00" {
			t.Fatalf("malformed reading: %s, want 4.00", code)
		}
	}

	code, body := scrape(t, httpPort, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	wantMetric(t, body, "causeway_frames_total", kitchen, `adapter="coap"`, `device="kitchen"`)
	wantMetric(t, body, "causeway_frames_total", hall, `adapter="coap"`, `device="hall"`)
	wantMetric(t, body, "causeway_coap_requests_total", kitchen+hall+bad, `adapter="coap"`)
	wantMetric(t, body, "causeway_coap_responses_total", kitchen+hall, `adapter="coap"`, `code="2.04"`)
	wantMetric(t, body, "causeway_coap_responses_total", bad, `adapter="coap"`, `code="4.00"`)
	wantMetric(t, body, "causeway_frame_errors_total", bad, `adapter="coap"`, `reason="bad_payload"`)
	wantMetric(t, body, "causeway_publish_latency_seconds_count", kitchen+hall)
	// No uplink: the queue is exported anyway, empty.
	wantMetric(t, body, "causeway_queue_messages", 0)
	wantMetric(t, body, "causeway_queue_dropped_total", 0)
	wantMetric(t, body, "causeway_adapter_up", 1, `adapter="coap"`)
	if _, ok := metric(t, body, "causeway_uplink_connected"); ok {
		t.Errorf("causeway_uplink_connected exported without an uplink")
	}
	if v, ok := metric(t, body, "causeway_broker_messages_received_total"); !ok || v < kitchen+hall {
		t.Errorf("causeway_broker_messages_received_total = %v (%v), want >= %d", v, ok, kitchen+hall)
	}

	if code, body := scrape(t, httpPort, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body = scrape(t, httpPort, "/readyz")
	if code != 200 || !strings.Contains(body, `"coap"`) {
		t.Errorf("/readyz: %d %s", code, body)
	}

	// The stats message: retained, so a subscriber that comes now gets it.
	sub := testpeer.Subscribe(t, p.broker, "gw-test/stats")
	var stats struct {
		Gateway         string           `json:"gateway"`
		Frames          uint64           `json:"frames"`
		FramesByAdapter map[string]int64 `json:"frames_by_adapter"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := sub.WaitFor(t, "gw-test/stats", 5*time.Second)
		if err := json.Unmarshal([]byte(m.Payload), &stats); err != nil {
			t.Fatalf("stats payload %q: %v", m.Payload, err)
		}
		if stats.Frames == kitchen+hall || time.Now().After(deadline) {
			break
		}
	}
	if stats.Gateway != "gw-test" || stats.Frames != kitchen+hall || stats.FramesByAdapter["coap"] != kitchen+hall {
		t.Fatalf("stats = %+v, want %d frames from coap", stats, kitchen+hall)
	}
}

// TestReloadRefusesBrokenConfig: SIGHUP with a broken file keeps the old
// configuration serving, and `gateway reload` says why before sending.
func TestReloadRefusesBrokenConfig(t *testing.T) {
	p := freePorts(t)
	cfg := baseConfig(p, "")
	g := startGateway(t, cfg)
	sub := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")
	path := filepath.Join(g.dir, "gateway.toml")
	broken := strings.Replace(cfg, "max_payload", "max_paylod", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	// gateway reload checks first and does not signal.
	_, stderr, code := runGateway(t, g.dir, nil, "reload", "-c", path)
	if code != 1 || !strings.Contains(stderr, "max_paylod") {
		t.Fatalf("gateway reload with a broken file: exit %d\n%s", code, stderr)
	}
	if strings.Contains(g.Log(), "reload") {
		t.Fatalf("the gateway was signalled:\n%s", g.Log())
	}
	// SIGHUP anyway: refused, logged, still serving.
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLog("configuration reload refused", 1, 5*time.Second)
	if !strings.Contains(g.Log(), "max_paylod") {
		t.Fatalf("the refusal does not say why:\n%s", g.Log())
	}
	if code, _ := coap(t, p.coap, "post", "/after", "50", `{"t":1}`); code != "2.04" {
		t.Fatalf("reading after a refused reload: %s", code)
	}
	m := sub.WaitFor(t, "gw-test/coap/after", 5*time.Second)
	jsonReading(t, m.Payload, map[string]any{"t": 1})
	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestReloadAddsAdapterKeepsQueue: with the uplink down and readings
// queued, a reload adds a second CoAP adapter. It starts without the first
// one restarting (its counters go on), and when the uplink comes back
// every reading queued before, during and after the reload arrives.
func TestReloadAddsAdapterKeepsQueue(t *testing.T) {
	broker := testpeer.StartMosquitto(t, 0)
	link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // down
	p := freePorts(t)
	httpPort := testpeer.FreeTCPPort(t)
	coap2 := testpeer.FreeUDPPort(t)
	httpBlock := fmt.Sprintf("\n[http]\nlisten = \"127.0.0.1:%d\"\n", httpPort)
	cfg := queueConfig(p, link.URL(), "") + httpBlock
	g := startGateway(t, cfg)

	const before, after = 20, 5
	for i := range before {
		if code, _ := coap(t, p.coap, "post", "/d1", "50", fmt.Sprintf(`{"n":%d}`, i)); code != "2.04" {
			t.Fatalf("reading %d: %s", i, code)
		}
	}
	_, m := scrape(t, httpPort, "/metrics")
	wantMetric(t, m, "causeway_queue_messages", before)
	wantMetric(t, m, "causeway_uplink_connected", 0)

	added := cfg + fmt.Sprintf("\n[[coap]]\nname = \"coap2\"\nlisten = \"127.0.0.1:%d\"\n", coap2)
	added = strings.Replace(added, "[[coap]]\nlisten", "[[coap]]\nname = \"coap\"\nlisten", 1)
	path := filepath.Join(g.dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	// gateway reload goes over [http] and reports the outcome.
	out, stderr, code := runGateway(t, g.dir, nil, "reload", "-c", path)
	if code != 0 || !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("gateway reload: exit %d\n%s\n%s", code, out, stderr)
	}
	g.waitLog("configuration reloaded", 1, 5*time.Second)
	if n := strings.Count(g.Log(), "coap server listening"); n != 2 {
		t.Errorf("%d CoAP listeners started, want 2 (the first one kept, coap2 new):\n%s", n, g.Log())
	}
	for i := range after {
		if code, _ := coap(t, coap2, "post", "/d2", "50", fmt.Sprintf(`{"n":%d}`, i)); code != "2.04" {
			t.Fatalf("coap2 reading %d: %s", i, code)
		}
		if code, _ := coap(t, p.coap, "post", "/d1", "50", fmt.Sprintf(`{"n":%d}`, before+i)); code != "2.04" {
			t.Fatalf("coap reading %d: %s", i, code)
		}
	}
	_, m = scrape(t, httpPort, "/metrics")
	// The first adapter was not restarted: its counters went on.
	wantMetric(t, m, "causeway_coap_requests_total", before+after, `adapter="coap"`)
	wantMetric(t, m, "causeway_coap_requests_total", after, `adapter="coap2"`)
	wantMetric(t, m, "causeway_queue_messages", before+2*after)
	wantMetric(t, m, "causeway_config_reloads_total", 1, `result="ok"`)

	sub := testpeer.Subscribe(t, broker.Port, "gw-test/#")
	link.Start()
	got := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for got["gw-test/coap/d1"] < before+after || got["gw-test/coap2/d2"] < after {
		if time.Now().After(deadline) {
			t.Fatalf("uplink delivered %v, want %d on gw-test/coap/d1 and %d on gw-test/coap2/d2", got, before+after, after)
		}
		msg := sub.Next(t, time.Until(deadline))
		got[msg.Topic]++
	}
	time.Sleep(300 * time.Millisecond)
	for _, msg := range sub.Drain(200 * time.Millisecond) {
		got[msg.Topic]++
	}
	if got["gw-test/coap/d1"] != before+after || got["gw-test/coap2/d2"] != after {
		t.Fatalf("uplink delivered %v, want exactly %d and %d", got, before+after, after)
	}
	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestReloadUnderLoadLosesNothing reloads six times while readings stream
// in, swapping the routes and the uplink client every time (the keepalive
// changes back and forth): every reading acknowledged with 2.04 reaches
// the uplink broker.
func TestReloadUnderLoadLosesNothing(t *testing.T) {
	broker := testpeer.StartMosquitto(t, 0)
	p := freePorts(t)
	cfg := queueConfig(p, broker.URL(), "")
	g := startGateway(t, cfg)
	acked := filepath.Join(t.TempDir(), "acked")
	count := startCount(t, broker.Port, acked, 10*time.Second, 90*time.Second)
	load := startLoad(t, p.coap, "-clients", "2", "-rate", "1000", "-duration", "3s", "-timeout", "5s", "-acked", acked+".part")
	path := filepath.Join(g.dir, "gateway.toml")
	const reloads = 6
	for i := range reloads {
		time.Sleep(300 * time.Millisecond)
		variant := cfg + fmt.Sprintf("\n[[route]]\nmatch = \"coap/never-%d/*\"\ndrop = true\n", i)
		if i%2 == 0 {
			variant = strings.Replace(variant, "[uplink]\n", "[uplink]\nkeepalive = \"29s\"\n", 1)
		}
		if err := os.WriteFile(path, []byte(variant), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		g.waitLog("configuration reloaded", i+1, 10*time.Second)
	}
	res := load.wait(t, 60*time.Second)
	if err := os.Rename(acked+".part", acked); err != nil {
		t.Fatal(err)
	}
	cr := count.wait(t, 90*time.Second)
	t.Logf("coapload: sent %d, 2.04 %d, codes %v; mqttcount: stop %s, expected %d, missing %d, duplicates %d",
		res.Sent, res.OK, res.Codes, cr.Stop, cr.ExpectedAcked, cr.MissingAcked, cr.Duplicates)
	if res.OK == 0 || res.OK != res.Sent {
		t.Fatalf("readings refused during reloads: %+v", res)
	}
	if cr.Stop != "acked" || cr.MissingAcked != 0 || cr.ExpectedAcked != res.OK {
		t.Fatalf("readings lost across reloads: %+v", cr)
	}
	if n := strings.Count(g.Log(), "uplink_restarted=true"); n != reloads {
		t.Errorf("uplink restarted %d times, want %d", n, reloads)
	}
}
