package mqttcore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

func startTestBroker(t testing.TB, opts BrokerOptions) *MochiBroker {
	t.Helper()
	switch opts.Listen {
	case "":
		opts.Listen = "127.0.0.1:0"
	case "none":
		opts.Listen = ""
	}
	if opts.Log == nil {
		opts.Log = newTestLogger(t)
	}
	if len(opts.Users) == 0 {
		opts.AllowAnonymous = true // the tests without users predate authentication
	}
	b, err := StartBroker(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestBrokerRetainedToLaterTCPSubscriber(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{})
	if err := b.Publish("gw-01/status", []byte("online"), 1, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("gw-01/other", []byte("not retained"), 1, false); err != nil {
		t.Fatal(err)
	}

	// An external client (mosquitto_sub) subscribing afterwards gets the retained message.
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not found. " + mosquittoHint)
	}
	host, port, _ := net.SplitHostPort(b.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-V", "5", "-t", "gw-01/#", "-v", "-C", "1", "-W", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "gw-01/status online" {
		t.Fatalf("mosquitto_sub got %q", got)
	}

	// And a paho client, with the retain flag set on delivery.
	s := newSubscriber(t, b.Addr().String(), 1, "gw-01/status")
	waitFor(t, 5*time.Second, "retained message", func() bool { return s.count() == 1 })
	if m := s.messages()[0]; m.payload != "online" || !m.retain {
		t.Fatalf("got %+v", m)
	}
	// Overwriting the retained value: later subscribers see the new one only.
	if err := b.Publish("gw-01/status", []byte("offline"), 1, true); err != nil {
		t.Fatal(err)
	}
	s2 := newSubscriber(t, b.Addr().String(), 1, "gw-01/status")
	waitFor(t, 5*time.Second, "new retained value", func() bool { return s2.count() == 1 })
	if m := s2.messages()[0]; m.payload != "offline" {
		t.Fatalf("got %+v", m)
	}
	if st := b.Stats(); st.Retained < 1 || st.ClientsConnected != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBrokerInlineSubscribe(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{})
	if err := b.Publish("gw-01/modbus/boiler/availability", []byte("online"), 1, true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	unsub, err := b.Subscribe("gw-01/+/+/set", func(topic string, payload []byte) {
		mu.Lock()
		got = append(got, topic+" "+string(payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	var retained []string
	unsubR, err := b.Subscribe("gw-01/+/+/availability", func(topic string, payload []byte) {
		mu.Lock()
		retained = append(retained, string(payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubR()
	mu.Lock()
	if len(retained) != 1 || retained[0] != "online" {
		t.Fatalf("inline subscribe did not get the retained message: %v", retained)
	}
	mu.Unlock()

	// A TCP client publishes a command.
	pub := newSubscriber(t, b.Addr().String(), 0, "unused/topic")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, qos := range []byte{0, 1, 2} {
		if _, err := pub.cli.Publish(ctx, &paho.Publish{Topic: "gw-01/modbus/boiler/set", QoS: qos,
			Payload: fmt.Appendf(nil, `{"setpoint":%d}`, 20+i)}); err != nil {
			t.Fatalf("publish qos %d: %v", qos, err)
		}
	}
	waitFor(t, 5*time.Second, "3 commands", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	if got[0] != `gw-01/modbus/boiler/set {"setpoint":20}` || got[2] != `gw-01/modbus/boiler/set {"setpoint":22}` {
		t.Fatalf("got %q", got)
	}
	mu.Unlock()

	unsub()
	unsub() // idempotent
	if _, err := pub.cli.Publish(ctx, &paho.Publish{Topic: "gw-01/modbus/boiler/set", QoS: 1, Payload: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	if len(got) != 3 {
		t.Fatalf("delivery after unsubscribe: %q", got)
	}
	mu.Unlock()

	if _, err := b.Subscribe("bad/#/filter", func(string, []byte) {}); err == nil {
		t.Fatal("invalid filter accepted")
	}
}

func TestBrokerPublishValidation(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Listen: "none"})
	if b.Addr() != nil {
		t.Fatalf("Addr without listener: %v", b.Addr())
	}
	for _, topic := range []string{"", "a/+/b", "a/#", "a\x00b", string([]byte{0xff})} {
		if err := b.Publish(topic, nil, 0, false); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q): %v, want ErrInvalidTopic", topic, err)
		}
	}
	if err := b.Publish("a", nil, 3, false); !errors.Is(err, ErrInvalidQoS) {
		t.Errorf("QoS 3: %v", err)
	}
	_ = b.Close()
	if err := b.Publish("a", nil, 0, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	_ = b.Close() // idempotent
}

// rawSubscribe connects a bare TCP MQTT 5 client, subscribes to filter at
// qos and then never reads again: the slowest possible subscriber.
func rawSubscribe(t *testing.T, addr, id, filter string, qos byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // keep the kernel from absorbing much
	}
	cp := packets.NewControlPacket(packets.CONNECT)
	con := cp.Content.(*packets.Connect)
	con.ClientID, con.CleanStart, con.KeepAlive = id, true, 60
	if _, err := cp.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if p, err := packets.ReadPacket(r); err != nil || p.Type != packets.CONNACK {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	sp := packets.NewControlPacket(packets.SUBSCRIBE)
	sub := sp.Content.(*packets.Subscribe)
	sub.PacketID = 1
	sub.Subscriptions = []packets.SubOptions{{Topic: filter, QoS: qos}}
	if _, err := sp.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if p, err := packets.ReadPacket(r); err != nil || p.Type != packets.SUBACK {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	return c
}

func TestBrokerSlowSubscriberDoesNotStall(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{})
	// Two subscribers that stop reading, at QoS 0 and QoS 1 (the QoS 1 path
	// allocates a packet ID under the client's lock, which mochi also holds
	// while writing to the socket).
	rawSubscribe(t, b.Addr().String(), "slow1", "data/#", 1)
	rawSubscribe(t, b.Addr().String(), "slow0", "data/#", 0)
	fast := newSubscriber(t, b.Addr().String(), 1, "data/#")
	var inline atomic.Int64
	unsub, err := b.Subscribe("data/#", func(string, []byte) { inline.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	payload := bytes.Repeat([]byte("x"), 8<<10)
	const n = 2000 // 16 MiB: far beyond socket buffers and the per-client bound
	var worst time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if err := b.Publish(fmt.Sprintf("data/%d", i), payload, 1, false); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(t0))
		if i%50 == 49 { // let the fast TCP subscriber keep up
			waitFor(t, 10*time.Second, "fast subscriber", func() bool { return fast.count() >= i+1 })
		}
	}
	total := time.Since(start)
	waitFor(t, 10*time.Second, "fast subscriber to get everything", func() bool { return fast.count() == n })
	if inline.Load() != n {
		t.Fatalf("inline subscriber got %d of %d", inline.Load(), n)
	}
	if worst > time.Second {
		t.Fatalf("a Publish blocked for %s with slow subscribers connected", worst)
	}
	st := b.Stats()
	t.Logf("publish: %d x 8 KiB in %s, worst single publish %s; stats %+v", n, total, worst, st)
	if st.SlowDisconnects < 1 && st.MessagesDropped == 0 {
		t.Fatalf("slow subscribers were neither disconnected nor dropped: %+v", st)
	}
	// The fast subscriber got them in order.
	for i, m := range fast.messages() {
		if m.topic != fmt.Sprintf("data/%d", i) {
			t.Fatalf("message %d: topic %s", i, m.topic)
		}
	}
}

// Inline Publish from many goroutines while TCP clients subscribe (-race).
func TestBrokerConcurrentPublish(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{})
	s := newSubscriber(t, b.Addr().String(), 1, "c/#")
	var inline atomic.Int64
	unsub, err := b.Subscribe("c/#", func(string, []byte) { inline.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	const workers, per = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := b.Publish(fmt.Sprintf("c/%d/%d", w, i), []byte("v"), byte(i%3), i%10 == 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if inline.Load() != workers*per {
		t.Fatalf("inline got %d", inline.Load())
	}
	// The TCP subscriber gets every message or the broker counts it as
	// dropped (its pending-write bound), never silently lost.
	waitFor(t, 10*time.Second, "every message delivered or counted as dropped", func() bool {
		return int64(s.count())+b.Stats().MessagesDropped == workers*per
	})
	t.Logf("delivered %d, dropped %d", s.count(), b.Stats().MessagesDropped)
}

// A delivery dropped because a subscriber's pending-write queue is full is
// counted and logged (rate-limited), never silent.
func TestBrokerDropIsLogged(t *testing.T) {
	l := &testLog{}
	b := startTestBroker(t, BrokerOptions{ClientWritesPending: 1,
		Log: slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	newSubscriber(t, b.Addr().String(), 0, "d/#")
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < 200000 && b.Stats().MessagesDropped == 0; i++ {
		if err := b.Publish("d/x", payload, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.MessagesDropped == 0 {
		t.Fatalf("no drop with a pending-write bound of 1: %+v", st)
	}
	l.mu.Lock()
	out := l.buf.String()
	l.mu.Unlock()
	if !strings.Contains(out, "dropped a message for a slow mqtt client") || !strings.Contains(out, "dropped_total=") {
		t.Fatalf("drop not logged:\n%s", out)
	}
}

// A subscriber that arrives after many retained messages (one availability
// per device of a large installation) gets every one of them, more than
// its pending-write bound: the broker waits for room instead of dropping.
func TestBrokerRetainedBurstBeyondPendingBound(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{ClientWritesPending: 16})
	const n = 1000
	for i := range n {
		if err := b.Publish(fmt.Sprintf("gw/dev%d/availability", i), []byte("online"), 1, true); err != nil {
			t.Fatal(err)
		}
	}
	s := newSubscriber(t, b.Addr().String(), 1, "gw/+/availability")
	waitFor(t, 10*time.Second, "every retained message", func() bool { return s.count() == n })
	if st := b.Stats(); st.MessagesDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}
