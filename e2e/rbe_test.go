package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// TestReportByException runs report by exception through the gateway
// binary: a CoAP device posts a sequence of readings and a subscriber sees
// exactly the messages the route's deadband, min_interval and max_interval
// allow.
func TestReportByException(t *testing.T) {
	p := freePorts(t)
	cfg := baseConfig(p, `
[[route]]
match = "coap/tank/level"
topic = "rbe/{device}/{point}"
payload = "value"
deadband = 0.5

[[route]]
match = "coap/pump/rpm"
topic = "rbe/{device}/{point}"
payload = "value"
min_interval = "700ms"
max_interval = "1500ms"
`)
	startGateway(t, cfg)
	sub := testpeer.Subscribe(t, p.broker, "rbe/#")
	post := func(device, point string, v float64) {
		t.Helper()
		if code, _ := coap(t, p.coap, "post", "/"+device+"/"+point, "0", fmt.Sprint(v)); code != "2.04" {
			t.Fatalf("post %v: %s", v, code)
		}
	}

	// Deadband 0.5: 20 sent, 20.2 and 20.4 skipped (less than 0.5 from 20),
	// 20.5 sent (exactly 0.5), 20.9 skipped, 19.9 sent.
	for _, v := range []float64{20, 20.2, 20.4, 20.5, 20.9, 19.9} {
		post("tank", "level", v)
	}
	var got []string
	for _, m := range sub.Drain(500 * time.Millisecond) {
		got = append(got, m.Topic+" "+m.Payload)
	}
	want := []string{"rbe/tank/level 20", "rbe/tank/level 20.5", "rbe/tank/level 19.9"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deadband: got %q, want %q", got, want)
	}

	// min_interval 700ms: 100 at once; 200 and 300 within the interval are
	// held, the latest (300) is sent when it ends. max_interval 1.5s: then
	// 300 again as a heartbeat.
	start := time.Now()
	post("pump", "rpm", 100)
	post("pump", "rpm", 200)
	post("pump", "rpm", 300)
	type at struct {
		payload string
		d       time.Duration
	}
	var seen []at
	deadline := time.Now().Add(3 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		m := sub.Next(t, time.Until(deadline))
		if m.Topic == "rbe/pump/rpm" {
			seen = append(seen, at{m.Payload, time.Since(start)})
		}
	}
	if len(seen) != 3 || seen[0].payload != "100" || seen[1].payload != "300" || seen[2].payload != "300" {
		t.Fatalf("min/max interval: got %+v, want 100, then 300 held, then 300 as heartbeat", seen)
	}
	if seen[1].d < 650*time.Millisecond || seen[2].d-seen[1].d < 1400*time.Millisecond {
		t.Fatalf("timing: held value after %v (want >= 700ms), heartbeat %v after it (want >= 1.5s)", seen[1].d, seen[2].d-seen[1].d)
	}
}
