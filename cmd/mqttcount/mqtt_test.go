package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// fakeConn replays a byte stream and records what is written.
type fakeConn struct {
	net.Conn
	r       io.Reader
	w       bytes.Buffer
	discard bool
}

func (f *fakeConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) {
	if f.discard {
		return len(p), nil
	}
	return f.w.Write(p)
}
func (f *fakeConn) Close() error { return nil }

func publishPacket(qos byte, id uint16, topic string, props []byte, payload []byte) []byte {
	var body []byte
	body = appendString(body, topic)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	body = appendVarint(body, len(props))
	body = append(body, props...)
	body = append(body, payload...)
	return packet(pktPublish<<4|qos<<1, body)
}

func newFake(stream []byte) (*mqttConn, *fakeConn) {
	fc := &fakeConn{r: bytes.NewReader(stream)}
	return &mqttConn{nc: fc, r: bufio.NewReaderSize(fc, 4096), w: bufio.NewWriter(fc)}, fc
}

func TestReadLoopAcksAndQoS2(t *testing.T) {
	var s []byte
	s = append(s, publishPacket(1, 7, "a/coap/d", nil, []byte(`{"run":1,"seq":0}`))...)
	// user property and message expiry in the properties must be skipped
	props := []byte{0x26, 0, 1, 'k', 0, 1, 'v', 0x02, 0, 0, 0, 9}
	s = append(s, publishPacket(2, 8, "a/coap/d", props, []byte(`{"run":1,"seq":1}`))...)
	s = append(s, publishPacket(2, 8, "a/coap/d", props, []byte(`{"run":1,"seq":1}`))...) // resent before PUBREL
	s = append(s, pktPubrel<<4|2, 2, 0, 8)
	s = append(s, publishPacket(0, 0, "a/coap/d", nil, []byte(`{"run":1,"seq":2}`))...)
	s = append(s, pktPingresp<<4, 0)
	c, fc := newFake(s)
	tr := newTracker(0, 0)
	err := c.readLoop(func(topic, payload []byte, now time.Time) bool {
		if string(topic) != "a/coap/d" {
			t.Errorf("topic %q", topic)
		}
		tr.observe(topic, payload, now)
		return true
	})
	if err != io.EOF {
		t.Fatalf("readLoop: %v", err)
	}
	if tr.unique != 3 || tr.dups != 0 || tr.messages != 3 {
		t.Fatalf("unique %d dups %d messages %d", tr.unique, tr.dups, tr.messages)
	}
	want := []byte{pktPuback << 4, 2, 0, 7, pktPubrec << 4, 2, 0, 8, pktPubrec << 4, 2, 0, 8, pktPubcomp << 4, 2, 0, 8}
	if !bytes.Equal(fc.w.Bytes(), want) {
		t.Fatalf("wrote % x, want % x", fc.w.Bytes(), want)
	}
}

func TestReadLoopBrokerDisconnect(t *testing.T) {
	c, _ := newFake([]byte{pktDisconnect << 4, 1, 0x8b})
	err := c.readLoop(func([]byte, []byte, time.Time) bool { return true })
	if err == nil || err.Error() != "broker disconnected: reason code 0x8b" {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkPropsRejectsTruncated(t *testing.T) {
	if err := walkProps([]byte{0x26, 0, 5, 'a'}, func(byte, []byte) {}); err == nil {
		t.Fatal("truncated user property accepted")
	}
	if err := walkProps([]byte{0x13, 0}, func(byte, []byte) {}); err == nil {
		t.Fatal("truncated keep alive accepted")
	}
}

// BenchmarkReceive measures mqttcount's cost per QoS 1 message, from bytes
// on the socket to a counted sequence number and a queued PUBACK.
func BenchmarkReceive(b *testing.B) {
	const n = 100_000
	var s []byte
	ts := time.Now().UnixMicro()
	for i := range n {
		p := appendPayloadForBench(nil, int64(i), ts)
		s = append(s, publishPacket(1, uint16(i%65535+1), "gw-01/coap/dev"+string(rune('0'+i%8)), nil, p)...)
	}
	b.SetBytes(int64(len(s) / n))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += n {
		c, fc := newFake(s)
		fc.discard = true
		c.r = bufio.NewReaderSize(fc, 256<<10)
		tr := newTracker(0, 0)
		_ = c.readLoop(func(topic, payload []byte, now time.Time) bool {
			tr.observe(topic, payload, now)
			return true
		})
		if tr.unique != n {
			b.Fatalf("counted %d", tr.unique)
		}
	}
}

func appendPayloadForBench(dst []byte, seq, ts int64) []byte {
	dst = append(dst, `{"time":"2026-11-25T10:00:00.123Z","run":42,"seq":`...)
	dst = appendInt(dst, seq)
	dst = append(dst, `,"ts":`...)
	dst = appendInt(dst, ts)
	return append(dst, `,"pad":"xxxxxxxxxxxx"}`...)
}

func appendInt(dst []byte, v int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

// fakeBroker accepts one client, answers CONNECT and SUBSCRIBE, then writes n
// QoS 1 PUBLISH packets as fast as the socket takes them (at most 60,000
// unacknowledged), counting the PUBACKs.
func fakeBroker(t *testing.T, n int) (addr string, acks <-chan int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	out := make(chan int, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		c := &mqttConn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriterSize(nc, 64<<10)}
		if first, _, err := c.readPacket(); err != nil || first>>4 != pktConnect {
			t.Errorf("expected CONNECT: %v", err)
			return
		}
		_, _ = nc.Write([]byte{pktConnack << 4, 3, 0, 0, 0})
		first, p, err := c.readPacket()
		if err != nil || first>>4 != pktSubscribe {
			t.Errorf("expected SUBSCRIBE: %v", err)
			return
		}
		_, _ = nc.Write([]byte{pktSuback << 4, 4, p[0], p[1], 0, 1})
		tokens := make(chan struct{}, 60_000)
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			got := 0
			for got < n {
				first, _, err := c.readPacket()
				if err != nil {
					break
				}
				if first>>4 == pktPuback {
					got++
					<-tokens
				}
			}
			out <- got
		}()
		ts := time.Now().UnixMicro()
		var body []byte
		for i := range n {
			tokens <- struct{}{}
			id := uint16(i%65535 + 1)
			body = appendPayloadForBench(body[:0], int64(i), ts)
			_, _ = c.w.Write(publishPacket(1, id, "gw-01/coap/dev"+string(rune('0'+i%8)), nil, body))
			if len(tokens) == cap(tokens) || i%256 == 255 {
				_ = c.w.Flush()
			}
		}
		_ = c.w.Flush()
		<-readerDone // every PUBACK is in (or the client left)
	}()
	return l.Addr().String(), out
}

// TestThroughputOverTCP feeds mqttcount a QoS 1 stream over a real socket
// from a broker that costs almost nothing, so the rate logged is mqttcount's
// own ceiling on this machine (it must be well above 50,000 msg/s).
func TestThroughputOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 200_000
	addr, acks := fakeBroker(t, n)
	res, err := run(t.Context(), config{addr: addr, filters: []string{"#"}, qos: 1, run: 42, expect: n,
		duration: 60 * time.Second, keepAlive: 30 * time.Second, clientID: "tp"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counted %d at %.0f msg/s over %.2fs (stop: %s)", res.Unique, res.Rate, res.WindowSecs, res.Stop)
	if res.Stop != "expect" || res.Unique != n || res.Duplicates != 0 || res.Missing != 0 {
		t.Fatalf("%+v", *res)
	}
	if got := <-acks; got != n {
		t.Fatalf("broker got %d PUBACKs, want %d", got, n)
	}
}
