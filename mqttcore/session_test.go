package mqttcore

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
)

// The session wrapper's contract, driven packet by packet (the same paths
// the uplink tests exercise against mosquitto, but with every outcome
// forced): every flight gets exactly one outcome, including when the
// connection drops (paho's own state sends nothing then).
func TestTrackingSessionOutcomes(t *testing.T) {
	type result struct {
		seq    uint64
		o      outcome
		reason byte
	}
	var mu sync.Mutex
	var got []result
	s := newTrackingSession(4, func(f *flight, o outcome, reason byte) {
		mu.Lock()
		got = append(got, result{f.seq, o, reason})
		mu.Unlock()
	}, func() {})
	ctx := context.Background()

	if err := s.AddToSession(ctx, &packets.Publish{QoS: 1, Topic: "a"}, make(chan packets.ControlPacket, 1)); !errors.Is(err, session.ErrNoConnection) {
		t.Fatalf("AddToSession before CONNACK: %v", err)
	}
	rm := uint16(2)
	if err := s.ConAckReceived(io.Discard, &packets.Connect{}, &packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &rm}}); err != nil {
		t.Fatal(err)
	}
	ci := s.current()
	if !ci.up || ci.epoch != 1 || ci.window != 2 || ci.maxQoS != 2 || !ci.retain {
		t.Fatalf("conn info %+v", ci)
	}

	add := func(seq uint64, qos byte) (*packets.Publish, chan packets.ControlPacket) {
		t.Helper()
		f := &flight{seq: seq, epoch: ci.epoch, qos: qos}
		p := &packets.Publish{QoS: qos, Topic: "a"}
		resp := make(chan packets.ControlPacket, 1)
		if err := s.AddToSession(withFlight(ctx, f), p, resp); err != nil {
			t.Fatalf("AddToSession %d: %v", seq, err)
		}
		if !f.registered.Load() || p.PacketID == 0 {
			t.Fatalf("flight %d not registered", seq)
		}
		select {
		case r := <-resp: // the synthetic completion that lets paho's Publish return
			want := byte(packets.PUBACK)
			if qos == 2 {
				want = packets.PUBCOMP
			}
			if r.Type != want {
				t.Fatalf("synthetic response type %d", r.Type)
			}
		default:
			t.Fatal("no synthetic response")
		}
		return p, resp
	}
	recv := func(typ byte, id uint16, reason byte) {
		t.Helper()
		cp := packets.NewControlPacket(typ)
		switch c := cp.Content.(type) {
		case *packets.Puback:
			c.PacketID, c.ReasonCode = id, reason
		case *packets.Pubrec:
			c.PacketID, c.ReasonCode = id, reason
		case *packets.Pubcomp:
			c.PacketID, c.ReasonCode = id, reason
		}
		if err := s.PacketReceived(cp, make(chan *packets.Publish, 1)); err != nil {
			t.Fatal(err)
		}
	}

	p1, _ := add(1, 1)
	recv(packets.PUBACK, p1.PacketID, 0)
	p2, _ := add(2, 1)
	recv(packets.PUBACK, p2.PacketID, 0x97) // quota exceeded
	p3, _ := add(3, 2)
	recv(packets.PUBREC, p3.PacketID, 0) // accepted, waits for PUBCOMP
	recv(packets.PUBCOMP, p3.PacketID, 0)
	p4, _ := add(4, 2)
	recv(packets.PUBREC, p4.PacketID, 0x87) // refused at PUBREC: final
	recv(packets.PUBACK, p4.PacketID, 0)    // unknown by now: ignored
	add(5, 1)

	// An ordinary (untagged) publish waits on its own channel.
	plain := make(chan packets.ControlPacket, 1)
	if err := s.AddToSession(ctx, &packets.Publish{QoS: 1, Topic: "status"}, plain); err != nil {
		t.Fatal(err)
	}
	if err := s.ConnectionLost(nil); err != nil {
		t.Fatal(err)
	}
	_ = s.ConnectionLost(nil) // may be called twice
	select {
	case r := <-plain:
		if r.Type != 0 {
			t.Fatalf("abandoned plain publish got type %d", r.Type)
		}
	default:
		t.Fatal("plain publish not told it was abandoned")
	}

	mu.Lock()
	want := []result{{1, outcomeAcked, 0}, {2, outcomeRejected, 0x97}, {3, outcomeAcked, 0}, {4, outcomeRejected, 0x87}, {5, outcomeAbandoned, 0}}
	if len(got) != len(want) {
		t.Fatalf("outcomes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("outcome %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	mu.Unlock()

	// A flight meant for the old connection is refused on the new one.
	if err := s.ConAckReceived(io.Discard, &packets.Connect{}, &packets.Connack{}); err != nil {
		t.Fatal(err)
	}
	stale := &flight{seq: 6, epoch: ci.epoch, qos: 1}
	if err := s.AddToSession(withFlight(ctx, stale), &packets.Publish{QoS: 1, Topic: "a"}, make(chan packets.ControlPacket, 1)); !errors.Is(err, session.ErrNoConnection) || stale.registered.Load() {
		t.Fatalf("stale flight: %v", err)
	}
	if ci := s.current(); ci.epoch != 2 || ci.window != 4 {
		t.Fatalf("second connection %+v", ci)
	}
	_ = s.Close()
}

func TestRetryClass(t *testing.T) {
	for rc, want := range map[byte]retryKind{
		0x97: retryAlways, 0x91: retryAlways, 0x80: retryLimited, 0x83: retryLimited,
		0x87: retryNever, 0x90: retryNever, 0x95: retryNever, 0x99: retryNever, 0xfe: retryNever,
	} {
		if got := retryClass(rc); got != want {
			t.Errorf("retryClass(0x%02x) = %d, want %d", rc, got, want)
		}
	}
}
