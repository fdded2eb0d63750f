package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type received struct {
	mu   sync.Mutex
	msgs []string
}

func (r *received) add(topic string, payload []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, topic+" "+string(payload))
	r.mu.Unlock()
}

func (r *received) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, m := range r.msgs {
			if strings.HasPrefix(m, prefix) {
				r.mu.Unlock()
				return m
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no message starting with %q", prefix)
	return ""
}

// TestRunDeliversAndStopsWithoutLeaks runs a whole gateway in process: a
// reading from coap-client reaches the built-in broker and the uplink
// (mosquitto); cancelling the context stops everything, and goleak (in
// TestMain) finds no goroutine left behind.
func TestRunDeliversAndStopsWithoutLeaks(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	coapPort := testpeer.FreeUDPPort(t)
	file := fmt.Sprintf(`
[gateway]
id = "gw-app"
data_dir = %q
[broker]
listen = "127.0.0.1:0"
[uplink]
url = %q
[[coap]]
listen = "127.0.0.1:%d"
`, t.TempDir(), up.URL(), coapPort)
	cfg, err := config.Parse("app_test.toml", []byte(file), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(cfg, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if a.BrokerAddr() == nil || a.CoAPAddrs()["coap"] == nil {
		t.Fatalf("addresses not reported: broker %v coap %v", a.BrokerAddr(), a.CoAPAddrs())
	}
	var local received
	unsub, err := a.Broker().Subscribe("gw-app/#", local.add)
	if err != nil {
		t.Fatal(err)
	}
	remote := testpeer.Subscribe(t, up.Port, "gw-app/#")

	if got := local.wait(t, "gw-app/status "); got != "gw-app/status online" {
		t.Fatalf("status %q", got)
	}
	res := testpeer.CoAP(t, "-m", "post", "-t", "50", "-e", `{"t":21.5}`, fmt.Sprintf("coap://127.0.0.1:%d/dev", coapPort))
	if res.Err != "" {
		t.Fatalf("coap-client: %s", res.Err)
	}
	m := local.wait(t, "gw-app/coap/dev ")
	if !strings.Contains(m, `"t":21.5`) {
		t.Fatalf("local message %q", m)
	}
	if r := remote.WaitFor(t, "gw-app/coap/dev", 5*time.Second); !strings.Contains(r.Payload, `"t":21.5`) {
		t.Fatalf("uplink message %+v", r)
	}
	unsub()

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if st := remote.WaitFor(t, "gw-app/status", 5*time.Second); st.Payload != "online" {
		// the birth came first; the orderly offline follows
		t.Fatalf("uplink status %q", st.Payload)
	}
	if st := remote.WaitFor(t, "gw-app/status", 5*time.Second); st.Payload != "offline" {
		t.Fatalf("uplink status after stop %q, want offline", st.Payload)
	}
}
