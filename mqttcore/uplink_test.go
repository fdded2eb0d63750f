package mqttcore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/internal/testpeer"
)

func testUplinkOptions(t testing.TB, url string) UplinkOptions {
	return testUplinkOptionsProto(t, url, ProtocolMQTT5)
}

// testUplinkOptionsProto is testUplinkOptions for protocol proto (5 or 4).
func testUplinkOptionsProto(t testing.TB, url string, proto int) UplinkOptions {
	return UplinkOptions{
		Protocol:    proto,
		URL:         url,
		ClientID:    fmt.Sprintf("gw-test-%d", time.Now().UnixNano()),
		StatusTopic: "gw-01/status",
		Keepalive:   5 * time.Second,
		BackoffMin:  50 * time.Millisecond,
		BackoffMax:  300 * time.Millisecond,
		Log:         newTestLogger(t),
	}
}

func newTestUplink(t testing.TB, opts UplinkOptions) Uplink {
	t.Helper()
	u, err := NewUplink(opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func enqueueSeq(t testing.TB, u Uplink, topic string, from, to int, qos byte) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := u.Enqueue(bridge.Message{Topic: topic, Payload: []byte(strconv.Itoa(i)), QoS: qos, Uplink: true}, nil); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
}

// checkSeqs checks that every number 1..n arrived at least once on topic and
// that, counting first arrivals only, they arrived in increasing order.
func checkSeqs(t testing.TB, msgs []message, topic string, n int) (dups int) {
	t.Helper()
	seen := make(map[int]bool)
	last := 0
	for _, m := range msgs {
		if m.topic != topic {
			continue
		}
		v, err := strconv.Atoi(m.payload)
		if err != nil {
			t.Fatalf("payload %q", m.payload)
		}
		if seen[v] {
			dups++
			continue
		}
		seen[v] = true
		if v < last {
			t.Fatalf("first arrival of %d after %d: order broken", v, last)
		}
		last = v
	}
	for i := 1; i <= n; i++ {
		if !seen[i] {
			t.Fatalf("message %d lost (got %d distinct of %d)", i, len(seen), n)
		}
	}
	return dups
}

func distinct(msgs []message, topic string) int {
	seen := make(map[string]bool)
	for _, m := range msgs {
		if m.topic == topic {
			seen[m.payload] = true
		}
	}
	return len(seen)
}

func TestUplinkOrderPrefixQoS(t *testing.T) { forProtocols(t, testUplinkOrderPrefixQoS) }

func testUplinkOrderPrefixQoS(t *testing.T, proto int) {
	mq := startMosquitto(t, "")
	sub := newSubscriber(t, mq.addr(), 2, "sites/plant-7/#")
	opts := testUplinkOptionsProto(t, mq.url(), proto)
	opts.TopicPrefix = "sites/plant-7/"
	opts.Inflight = 8
	u := newTestUplink(t, opts)
	runUplink(t, u)
	waitFor(t, 5*time.Second, "connection", u.Connected)

	const n = 300
	for _, qos := range []byte{0, 1, 2} {
		enqueueSeq(t, u, fmt.Sprintf("gw-01/modbus/q%d", qos), 1, n, qos)
	}
	if err := u.Enqueue(bridge.Message{Topic: "gw-01/modbus/boiler/availability", Payload: []byte("online"), QoS: 1, Retain: true}, nil); err != nil {
		t.Fatal(err)
	}
	maxInflight := 0
	waitFor(t, 10*time.Second, "all messages", func() bool {
		maxInflight = max(maxInflight, u.Stats().Inflight)
		ms := sub.messages()
		return distinct(ms, "sites/plant-7/gw-01/modbus/q0") == n && distinct(ms, "sites/plant-7/gw-01/modbus/q1") == n &&
			distinct(ms, "sites/plant-7/gw-01/modbus/q2") == n && distinct(ms, "sites/plant-7/gw-01/modbus/boiler/availability") == 1
	})
	ms := sub.messages()
	for _, qos := range []byte{0, 1, 2} {
		topic := fmt.Sprintf("sites/plant-7/gw-01/modbus/q%d", qos)
		if dups := checkSeqs(t, ms, topic, n); dups != 0 {
			t.Errorf("%s: %d duplicates without any reconnect", topic, dups)
		}
		for _, m := range ms {
			if m.topic == topic && m.qos != qos {
				t.Fatalf("%s delivered at QoS %d", topic, m.qos)
			}
		}
	}
	// Birth first, with the prefix, retained.
	if ms[0].topic != "sites/plant-7/gw-01/status" || ms[0].payload != "online" {
		t.Fatalf("first message %+v, want the birth message", ms[0])
	}
	waitFor(t, 5*time.Second, "acks", func() bool { return u.Stats().Queued == 0 })
	st := u.Stats()
	if st.Acked != 3*n+1 || st.Inflight != 0 || st.Dropped.Total() != 0 || st.Connects != 1 {
		t.Fatalf("stats %+v", st)
	}
	if maxInflight > opts.Inflight {
		t.Fatalf("%d publishes in flight, window %d", maxInflight, opts.Inflight)
	}
}

func TestUplinkBirthWillAndClose(t *testing.T) { forProtocols(t, testUplinkBirthWillAndClose) }

func testUplinkBirthWillAndClose(t *testing.T, proto int) {
	mq := startMosquitto(t, "")
	px := testpeer.NewProxy(t, mq.addr())
	px.Start()
	status := newSubscriber(t, mq.addr(), 1, "gw-01/status")
	u := newTestUplink(t, testUplinkOptionsProto(t, px.URL(), proto))
	runUplink(t, u)

	waitFor(t, 5*time.Second, "online", func() bool { return lastPayload(status) == "online" })

	// The connection dies without DISCONNECT: the broker publishes the will.
	px.Cut()
	waitFor(t, 5*time.Second, "offline (will)", func() bool { return lastPayload(status) == "offline" })
	// The uplink reconnects and announces itself again.
	waitFor(t, 5*time.Second, "online again", func() bool { return lastPayload(status) == "online" })
	if st := u.Stats(); st.Connects < 2 || st.Reconnects < 1 {
		t.Fatalf("stats after reconnect %+v", st)
	}

	// Data, then an orderly Close: the data is flushed, then "offline".
	enqueueSeq(t, u, "gw-01/x", 1, 50, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, 5*time.Second, "offline after Close", func() bool { return lastPayload(status) == "offline" })
	if st := u.Stats(); st.Queued != 0 || st.Acked < 50 {
		t.Fatalf("Close did not flush: %+v", st)
	}
	if err := u.Enqueue(bridge.Message{Topic: "gw-01/x", QoS: 1}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	// The retained status is "offline" for anyone subscribing later.
	later := newSubscriber(t, mq.addr(), 1, "gw-01/status")
	waitFor(t, 5*time.Second, "retained offline", func() bool { return lastPayload(later) == "offline" })
	if m := later.messages()[0]; !m.retain {
		t.Fatalf("status not retained: %+v", m)
	}
}

// Stopping the uplink without Close (ctx cancelled) leaves the broker to
// publish the will.
func TestUplinkWillOnCancel(t *testing.T) { forProtocols(t, testUplinkWillOnCancel) }

func testUplinkWillOnCancel(t *testing.T, proto int) {
	mq := startMosquitto(t, "")
	status := newSubscriber(t, mq.addr(), 1, "gw-01/status")
	u := newTestUplink(t, testUplinkOptionsProto(t, mq.url(), proto))
	stop := runUplink(t, u)
	waitFor(t, 5*time.Second, "online", func() bool { return lastPayload(status) == "online" })
	stop()
	waitFor(t, 5*time.Second, "offline (will)", func() bool { return lastPayload(status) == "offline" })
}

func lastPayload(s *subscriber) string {
	ms := s.messages()
	if len(ms) == 0 {
		return ""
	}
	return ms[len(ms)-1].payload
}

func TestUplinkBrokerDownAtStart(t *testing.T) { forProtocols(t, testUplinkBrokerDownAtStart) }

func testUplinkBrokerDownAtStart(t *testing.T, proto int) {
	mq := newMosquitto(t, freePort(t), "")
	px := testpeer.NewProxy(t, mq.addr()) // not listening yet: the broker is unreachable
	u := newTestUplink(t, testUplinkOptionsProto(t, px.URL(), proto))
	runUplink(t, u)
	const n = 500
	enqueueSeq(t, u, "gw-01/d", 1, n, 1)
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	st := u.Stats()
	if st.Connected || st.Queued != n || st.ConnectErrors == 0 || st.OldestAge <= 0 {
		t.Fatalf("while the broker is down: %+v", st)
	}
	mq.start()
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	px.Start()
	waitFor(t, 10*time.Second, "delivery after the broker came up", func() bool { return distinct(sub.messages(), "gw-01/d") == n })
	checkSeqs(t, sub.messages(), "gw-01/d", n)
	waitFor(t, 5*time.Second, "queue drained", func() bool { return u.Stats().Queued == 0 })
}

func TestUplinkBrokerKilledMidStream(t *testing.T) { forProtocols(t, testUplinkBrokerKilledMidStream) }

func testUplinkBrokerKilledMidStream(t *testing.T, proto int) {
	mq := startMosquitto(t, "")
	px := testpeer.NewProxy(t, mq.addr())
	px.Start()
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	opts := testUplinkOptionsProto(t, px.URL(), proto)
	u := newTestUplink(t, opts)
	runUplink(t, u)
	waitFor(t, 5*time.Second, "connection", u.Connected)

	const n = 3000
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 1; i <= n; i++ {
			if err := u.Enqueue(bridge.Message{Topic: "gw-01/k", Payload: []byte(strconv.Itoa(i)), QoS: 1}, nil); err != nil {
				t.Errorf("Enqueue %d: %v", i, err)
				return
			}
			if i%100 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	waitFor(t, 10*time.Second, "stream started", func() bool { return sub.count() > 300 })
	ackedBefore := u.Stats().Acked

	mq.kill() // SIGKILL mid-stream
	px.Stop() // keep the uplink away until the subscriber is back
	// Let the first subscriber read what the dead broker had already
	// written to its socket: its client ends at EOF.
	select {
	case <-sub.cli.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber did not see the broker die")
	}
	mq.start()
	sub2 := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	px.Start()
	<-produced

	waitFor(t, 15*time.Second, "everything after the restart", func() bool { return u.Stats().Queued == 0 })
	st := u.Stats()
	if st.Connects < 2 || st.Dropped.Total() != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Everything the broker acknowledged before the crash reached the first
	// subscriber; everything else is resent to the new broker.
	all := append(sub.messages(), sub2.messages()...)
	deadline := time.Now().Add(5 * time.Second)
	for distinct(all, "gw-01/k") != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		all = append(sub.messages(), sub2.messages()...)
	}
	dups := checkSeqs(t, all, "gw-01/k", n) // fails with the first missing seq
	t.Logf("acked before kill %d, duplicates %d, stats %+v", ackedBefore, dups, st)
}

func TestUplinkQueueBounds(t *testing.T) { forProtocols(t, testUplinkQueueBounds) }

func testUplinkQueueBounds(t *testing.T, proto int) {
	for _, policy := range []WhenFull{DropOldest, DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			mq := newMosquitto(t, freePort(t), "")
			px := testpeer.NewProxy(t, mq.addr())
			opts := testUplinkOptionsProto(t, px.URL(), proto)
			per := int64(len("gw-01/b") + 2 + RecordOverhead) // payloads "10".."99"
			opts.Queue = NewMemoryQueue(MemoryQueueOptions{MaxBytes: 40 * per, WhenFull: policy, Log: opts.Log})
			u := newTestUplink(t, opts)
			runUplink(t, u)
			refused := 0
			for i := 10; i < 100; i++ { // 90 messages, room for 40
				err := u.Enqueue(bridge.Message{Topic: "gw-01/b", Payload: []byte(strconv.Itoa(i)), QoS: 1}, nil)
				if errors.Is(err, ErrQueueFull) {
					refused++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			st := u.Stats()
			if st.Queued != 40 || st.Dropped.Full != 50 {
				t.Fatalf("stats %+v", st)
			}
			if policy == DropNewest && refused != 50 || policy == DropOldest && refused != 0 {
				t.Fatalf("refused %d", refused)
			}
			mq.start()
			sub := newSubscriber(t, mq.addr(), 1, "gw-01/b")
			px.Start()
			waitFor(t, 10*time.Second, "delivery", func() bool { return sub.count() >= 40 })
			ms := sub.messages()
			first, lastv := ms[0].payload, ms[len(ms)-1].payload
			if policy == DropOldest && (first != "60" || lastv != "99") || policy == DropNewest && (first != "10" || lastv != "49") {
				t.Fatalf("%s delivered %s..%s", policy, first, lastv)
			}
		})
	}
}

// A message the broker refuses for good (PUBACK 0x87 not authorized) is
// dropped and counted; the messages after it are delivered. MQTT 3.1.1 has
// no reason codes: mosquitto acknowledges the denied message (PUBACK) and
// drops it, so the uplink counts it as acknowledged. (mosquitto 2.0.11 with
// max_queued_messages 0, as here, also closes the connection after a
// denied PUBLISH, with either protocol: the uplink reconnects and goes on.
// TestUplinkMessageTooLargeForBroker has a broker that refuses a message by
// closing the connection.)
func TestUplinkRejectedMessageDropped(t *testing.T) {
	forProtocols(t, testUplinkRejectedMessageDropped)
}

func testUplinkRejectedMessageDropped(t *testing.T, proto int) {
	// mosquitto started as root reads the ACL file after dropping to its
	// own user: make it readable.
	dir := t.TempDir()
	aclFile := dir + "/acl"
	if err := writeFile(aclFile, "topic write gw-01/ok/#\ntopic write gw-01/status\ntopic read #\n"); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.Chmod(filepath.Dir(dir), 0o755), os.Chmod(dir, 0o755), os.Chmod(aclFile, 0o644)); err != nil {
		t.Fatal(err)
	}
	mq := startMosquitto(t, "acl_file "+aclFile)
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	u := newTestUplink(t, testUplinkOptionsProto(t, mq.url(), proto))
	runUplink(t, u)
	enqueueSeq(t, u, "gw-01/ok/a", 1, 5, 1)
	enqueueSeq(t, u, "gw-01/denied", 1, 1, 1)
	enqueueSeq(t, u, "gw-01/ok/a", 6, 10, 2)
	waitFor(t, 10*time.Second, "queue settled", func() bool { st := u.Stats(); return st.Queued == 0 && st.Connected })
	waitFor(t, 5*time.Second, "delivery", func() bool { return distinct(sub.messages(), "gw-01/ok/a") == 10 })
	checkSeqs(t, sub.messages(), "gw-01/ok/a", 10)
	st := u.Stats()
	wantRejected, wantAcked := uint64(1), uint64(10)
	if proto == ProtocolMQTT311 {
		wantRejected, wantAcked = 0, 11 // acknowledged, and dropped by the broker
	}
	if st.Dropped.Rejected != wantRejected || st.Acked != wantAcked {
		t.Fatalf("stats %+v", st)
	}
	for _, m := range sub.messages() {
		if m.topic == "gw-01/denied" {
			t.Fatal("denied message delivered")
		}
	}
}

func TestUplinkEnqueueValidation(t *testing.T) { forProtocols(t, testUplinkEnqueueValidation) }

func testUplinkEnqueueValidation(t *testing.T, proto int) {
	opts := testUplinkOptionsProto(t, "mqtt://127.0.0.1:1", proto)
	opts.TopicPrefix = "p/"
	u := newTestUplink(t, opts)
	for _, topic := range []string{"a/+", "#", "a\x00", strings.Repeat("x", 65535)} {
		if err := u.Enqueue(bridge.Message{Topic: topic}, nil); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Enqueue(%.20q): %v", topic, err)
		}
	}
	if err := u.Enqueue(bridge.Message{Topic: "a", QoS: 3}, nil); !errors.Is(err, ErrInvalidQoS) {
		t.Errorf("QoS 3: %v", err)
	}
	if st := u.Stats(); st.Dropped.Invalid != 5 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Close without Run: nothing to flush, later Enqueue refused.
	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestUplinkOptionsValidation(t *testing.T) {
	good := UplinkOptions{URL: "mqtt://broker.example.com", Log: discardLogger()}
	cases := []struct {
		name string
		mod  func(*UplinkOptions)
	}{
		{"scheme", func(o *UplinkOptions) { o.URL = "http://x" }},
		{"no host", func(o *UplinkOptions) { o.URL = "mqtt://" }},
		{"userinfo", func(o *UplinkOptions) { o.URL = "mqtt://user:secret@x" }},
		{"path on mqtt", func(o *UplinkOptions) { o.URL = "mqtt://x/some/path" }},
		{"ca without tls", func(o *UplinkOptions) { o.CAFile = "/etc/ssl/certs/ca-certificates.crt" }},
		{"missing ca", func(o *UplinkOptions) { o.URL = "mqtts://x"; o.CAFile = "/nonexistent" }},
		{"cert without key", func(o *UplinkOptions) { o.URL = "mqtts://x"; o.CertFile = "/c.pem" }},
		{"prefix wildcard", func(o *UplinkOptions) { o.TopicPrefix = "a/+/" }},
		{"status wildcard", func(o *UplinkOptions) { o.StatusTopic = "gw/#" }},
		{"keepalive", func(o *UplinkOptions) { o.Keepalive = time.Millisecond }},
		{"inflight", func(o *UplinkOptions) { o.Inflight = 70000 }},
		{"backoff", func(o *UplinkOptions) { o.BackoffMin, o.BackoffMax = time.Second, time.Millisecond }},
		{"protocol", func(o *UplinkOptions) { o.Protocol = 3 }},
		{"3.1.1 password without username", func(o *UplinkOptions) { o.Protocol, o.Password = ProtocolMQTT311, "secret" }},
		{"3.1.1 keepalive", func(o *UplinkOptions) { o.Protocol, o.Keepalive = ProtocolMQTT311, time.Millisecond }},
	}
	for _, c := range cases {
		o := good
		c.mod(&o)
		if _, err := NewUplink(o); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	for raw, want := range map[string]string{
		"mqtt://h":         "mqtt://h:1883",
		"MQTTS://h":        "mqtts://h:8883",
		"ws://h":           "ws://h:80/mqtt",
		"wss://h:9443/x":   "wss://h:9443/x",
		"mqtt://[::1]":     "mqtt://[::1]:1883",
		"mqtt://h:1884/":   "mqtt://h:1884",
		"wss://h.example/": "wss://h.example:443/",
	} {
		u, _, err := parseUplinkURL(raw)
		if err != nil || u.String() != want {
			t.Errorf("parseUplinkURL(%q) = %v, %v; want %s", raw, u, err, want)
		}
	}
	for _, p := range []int{0, ProtocolMQTT5, ProtocolMQTT311} {
		o := good
		o.Protocol = p
		u, err := NewUplink(o)
		if err != nil {
			t.Fatalf("protocol %d: %v", p, err)
		}
		_, v311 := u.(*V311Uplink)
		if v311 != (p == ProtocolMQTT311) {
			t.Fatalf("protocol %d: %T", p, u)
		}
	}
}

// A message larger than the broker takes (mosquitto max_packet_size).
// MQTT 5: the CONNACK says so, and it is dropped as too large without being
// sent. MQTT 3.1.1 has no way to say it: mosquitto closes the connection
// ("disconnected due to oversize packet") every time the message arrives,
// and after poisonLosses such losses it is dropped as rejected. The other
// messages arrive, in order, either way.
func TestUplinkMessageTooLargeForBroker(t *testing.T) {
	forProtocols(t, testUplinkMessageTooLargeForBroker)
}

func testUplinkMessageTooLargeForBroker(t *testing.T, proto int) {
	mq := startMosquitto(t, "max_packet_size 2000")
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	u := newTestUplink(t, testUplinkOptionsProto(t, mq.url(), proto))
	runUplink(t, u)
	waitFor(t, 5*time.Second, "connection", u.Connected)
	enqueueSeq(t, u, "gw-01/s", 1, 5, 1)
	if err := u.Enqueue(bridge.Message{Topic: "gw-01/big", Payload: make([]byte, 3000), QoS: 1}, nil); err != nil {
		t.Fatal(err)
	}
	enqueueSeq(t, u, "gw-01/s", 6, 10, 2)
	waitFor(t, 20*time.Second, "queue settled", func() bool { st := u.Stats(); return st.Queued == 0 && st.Connected })
	waitFor(t, 5*time.Second, "delivery", func() bool { return distinct(sub.messages(), "gw-01/s") == 10 })
	checkSeqs(t, sub.messages(), "gw-01/s", 10)
	st := u.Stats()
	want, minConnects := Drops{TooLarge: 1}, uint64(1)
	if proto == ProtocolMQTT311 {
		want, minConnects = Drops{Rejected: 1}, poisonLosses+1
	}
	if st.Dropped != want || st.Acked != 10 || st.Connects < minConnects {
		t.Fatalf("stats %+v", st)
	}
	for _, m := range sub.messages() {
		if m.topic == "gw-01/big" {
			t.Fatal("oversized message delivered")
		}
	}
}

// Subscriptions are made on every connection (the session starts clean) and
// what arrives reaches OnMessage with the topic prefix removed.
func TestUplinkSubscriptionsSurviveReconnect(t *testing.T) {
	forProtocols(t, testUplinkSubscriptionsSurviveReconnect)
}

func testUplinkSubscriptionsSurviveReconnect(t *testing.T, proto int) {
	mq := startMosquitto(t, "")
	px := testpeer.NewProxy(t, mq.addr())
	px.Start()
	got := make(chan string, 16)
	opts := testUplinkOptionsProto(t, px.URL(), proto)
	opts.TopicPrefix = "p/"
	opts.Subscriptions = []string{"gw-01/+/+/set"}
	opts.OnMessage = func(topic string, payload []byte) { got <- topic + " " + string(payload) }
	u := newTestUplink(t, opts)
	runUplink(t, u)
	pub := newSubscriber(t, mq.addr(), 1, "unused/#")
	send := func(payload string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := pub.cli.Publish(ctx, &paho.Publish{Topic: "p/gw-01/modbus/boiler/set", QoS: 1, Payload: []byte(payload)})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if m != "gw-01/modbus/boiler/set "+payload {
					t.Fatalf("OnMessage got %q", m)
				}
				return
			case <-time.After(200 * time.Millisecond): // not subscribed yet
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached OnMessage", payload)
			}
		}
	}
	send(`{"a":1}`)
	px.Cut() // a new connection, a new clean session: subscribed again
	waitFor(t, 5*time.Second, "reconnect", func() bool { return u.Stats().Connects >= 2 })
	send(`{"a":2}`)
}
