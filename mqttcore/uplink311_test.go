package mqttcore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// The MQTT 3.1.1 uplink over mqtts with an extra CA and a client
// certificate (mTLS), and over ws://, to one mosquitto (the MQTT 5
// equivalents are in tls_test.go).
func TestUplink311TLSAndWebSocket(t *testing.T) {
	pki := newTestPKI(t)
	tlsPort, wsPort := freePort(t), freePort(t)
	mq := startMosquitto(t, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"+
		"listener %d 127.0.0.1\nprotocol websockets\n", tlsPort, pki.ca, pki.serverCert, pki.serverKey, wsPort))
	sub := newSubscriber(t, mq.addr(), 2, "gw-01/#")

	opts := testUplinkOptionsProto(t, fmt.Sprintf("mqtts://127.0.0.1:%d", tlsPort), ProtocolMQTT311)
	opts.CAFile, opts.CertFile, opts.KeyFile = pki.ca, pki.clientCert, pki.clientKey
	u := newTestUplink(t, opts)
	runUplink(t, u)
	enqueueSeq(t, u, "gw-01/tls", 1, 20, 1)

	ws := newTestUplink(t, testUplinkOptionsProto(t, fmt.Sprintf("ws://127.0.0.1:%d", wsPort), ProtocolMQTT311))
	runUplink(t, ws)
	enqueueSeq(t, ws, "gw-01/ws", 1, 20, 2)

	waitFor(t, 10*time.Second, "delivery over mqtts and ws", func() bool {
		ms := sub.messages()
		return distinct(ms, "gw-01/tls") == 20 && distinct(ms, "gw-01/ws") == 20
	})
	checkSeqs(t, sub.messages(), "gw-01/tls", 20)
	checkSeqs(t, sub.messages(), "gw-01/ws", 20)

	// Without the client certificate the broker refuses the handshake.
	opts2 := testUplinkOptionsProto(t, fmt.Sprintf("mqtts://127.0.0.1:%d", tlsPort), ProtocolMQTT311)
	opts2.CAFile = pki.ca
	u2 := newTestUplink(t, opts2)
	runUplink(t, u2)
	waitFor(t, 5*time.Second, "failed attempts", func() bool { return u2.Stats().ConnectErrors >= 2 })
	if u2.Connected() {
		t.Fatal("connected without a client certificate")
	}
}

// BenchmarkUplinkProtocols is the throughput of the uplink (memory queue to
// mosquitto, 100-byte payloads, Inflight 32) for both protocols and every
// QoS: messages acknowledged per second.
func BenchmarkUplinkProtocols(b *testing.B) {
	for _, p := range uplinkProtocols {
		for _, qos := range []byte{0, 1, 2} {
			b.Run(fmt.Sprintf("%s/qos%d", p.name, qos), func(b *testing.B) { benchmarkUplinkProto(b, p.proto, qos) })
		}
	}
}

func benchmarkUplinkProto(b *testing.B, proto int, qos byte) {
	mq := startMosquitto(b, "")
	opts := testUplinkOptionsProto(b, mq.url(), proto)
	opts.Log = discardLogger()
	opts.Queue = NewMemoryQueue(MemoryQueueOptions{MaxBytes: 1 << 30, WhenFull: DropNewest, Log: opts.Log})
	u := newTestUplink(b, opts)
	runUplink(b, u)
	waitFor(b, 5*time.Second, "connection", u.Connected)
	payload := bytes.Repeat([]byte("x"), 100)
	base := u.Stats().Acked
	b.ResetTimer()
	for range b.N {
		if err := u.Enqueue(bridge.Message{Topic: "gw-01/bench", Payload: payload, QoS: qos}, nil); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for u.Stats().Acked-base < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("acked %d of %d", u.Stats().Acked-base, b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	reportRate(b, b.N)
	if d := u.Stats().Dropped.Total(); d != 0 {
		b.Fatalf("%d dropped", d)
	}
}
