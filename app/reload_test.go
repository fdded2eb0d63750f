package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/testpeer"
)

// running is an App started in process.
type running struct {
	a      *App
	cancel context.CancelFunc
	done   chan error
}

func parse(t *testing.T, file string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("reload_test.toml", []byte(file), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, file string) *running {
	t.Helper()
	a, err := New(parse(t, file), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { r.done <- a.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(r.stop)
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop may be called again
}

func post(t *testing.T, port int, path, payload string) {
	t.Helper()
	res := testpeer.CoAP(t, "-m", "post", "-t", "50", "-e", payload, fmt.Sprintf("coap://127.0.0.1:%d%s", port, path))
	if res.Err != "" {
		t.Fatalf("coap-client: %s", res.Err)
	}
}

const reloadBase = `
[gateway]
id = "gw-r"
data_dir = %q
[broker]
listen = "127.0.0.1:0"
[[coap]]
listen = "127.0.0.1:%d"
`

func TestReloadRefusesRestartOnlyKeys(t *testing.T) {
	dir, port := t.TempDir(), testpeer.FreeUDPPort(t)
	file := fmt.Sprintf(reloadBase, dir, port)
	r := start(t, file)
	for _, c := range []struct{ change, want string }{
		{strings.Replace(file, `id = "gw-r"`, `id = "gw-other"`, 1), "gateway.id"},
		{strings.Replace(file, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1"`, 1), "[broker]"},
		{file + "\n[queue]\nmax_bytes = \"1MiB\"\n", "[queue]"},
	} {
		err := r.a.Reload(parse(t, c.change))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "restart") {
			t.Errorf("reload changing %s: %v", c.want, err)
		}
	}
	if r.a.Config().Gateway.ID != "gw-r" {
		t.Fatal("a refused reload changed the configuration")
	}
	// The refused reloads left the adapter serving.
	var got received
	unsub, err := r.a.Broker().Subscribe("gw-r/#", got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	post(t, port, "/d", `{"x":1}`)
	got.wait(t, "gw-r/coap/d ")
}

// TestReloadSwapsRoutesAndRemovesAdapter: new routes apply to the next
// frame; an adapter removed from the file stops and frees its port; one
// added starts.
func TestReloadSwapsRoutesAndRemovesAdapter(t *testing.T) {
	dir, port := t.TempDir(), testpeer.FreeUDPPort(t)
	file := fmt.Sprintf(reloadBase, dir, port)
	r := start(t, file)
	var got received
	unsub, err := r.a.Broker().Subscribe("#", got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	routed := file + "\n[[route]]\nmatch = \"coap/*/*\"\ntopic = \"plant/{device}/{point}\"\npayload = \"value\"\n"
	if err := r.a.Reload(parse(t, routed)); err != nil {
		t.Fatal(err)
	}
	post(t, port, "/boiler", `{"temp":71.5}`)
	if m := got.wait(t, "plant/boiler/temp "); m != "plant/boiler/temp 71.5" {
		t.Fatalf("routed message %q", m)
	}

	// A device of the adapter that the reload removes reported online.
	r.a.availability("coap")("sensor", true)
	got.waitExact(t, "gw-r/coap/sensor/availability online")

	// Replace the coap adapter by one named coap2 on another port.
	port2 := testpeer.FreeUDPPort(t)
	moved := strings.Replace(routed, fmt.Sprintf("[[coap]]\nlisten = \"127.0.0.1:%d\"", port),
		fmt.Sprintf("[[coap]]\nname = \"coap2\"\nlisten = \"127.0.0.1:%d\"", port2), 1)
	moved = strings.Replace(moved, `match = "coap/*/*"`, `match = "coap2/*/*"`, 1)
	if err := r.a.Reload(parse(t, moved)); err != nil {
		t.Fatal(err)
	}
	// The old port is free again: the adapter stopped and let it go.
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the removed adapter still holds its port: %v", err)
	}
	pc.Close()
	post(t, port2, "/pump", `{"rpm":1200}`)
	if m := got.wait(t, "plant/pump/rpm "); m != "plant/pump/rpm 1200" {
		t.Fatalf("message from the new adapter %q", m)
	}
	// Its retained availability was cleared (an empty retained message).
	got.waitExact(t, "gw-r/coap/sensor/availability ")
	if addrs := r.a.CoAPAddrs(); len(addrs) != 1 || addrs["coap2"] == nil {
		t.Fatalf("CoAP adapters after reload: %v", addrs)
	}
}

// TestReloadReplacesUplinkKeepsQueue: readings queued for an unreachable
// uplink are sent by the client of the reloaded [uplink], none lost.
func TestReloadReplacesUplinkKeepsQueue(t *testing.T) {
	broker := testpeer.StartMosquitto(t, 0)
	down := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // never started
	dir, port := t.TempDir(), testpeer.FreeUDPPort(t)
	base := fmt.Sprintf(reloadBase, dir, port)
	r := start(t, base+fmt.Sprintf("[uplink]\nurl = %q\n", down.URL()))
	const n = 10
	for i := range n {
		post(t, port, "/q", fmt.Sprintf(`{"i":%d}`, i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.a.snapshot().Queue.Len != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d, want %d", r.a.snapshot().Queue.Len, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sub := testpeer.Subscribe(t, broker.Port, "gw-r/coap/q")
	if err := r.a.Reload(parse(t, base+fmt.Sprintf("[uplink]\nurl = %q\n", broker.URL()))); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m := sub.Next(t, 10*time.Second)
		seen[m.Payload[strings.Index(m.Payload, `"i"`):]] = true
	}
	if extra := sub.Drain(300 * time.Millisecond); len(extra) > 0 {
		t.Logf("%d duplicates after the swap (at-least-once)", len(extra))
	}
	if q := r.a.snapshot().Queue; q.Len != 0 {
		t.Fatalf("queue after the new uplink sent: %+v", q)
	}
}

func (r *received) waitExact(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, m := range r.msgs {
			if m == want {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no message %q", want)
}
