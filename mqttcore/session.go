package mqttcore

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/eclipse/paho.golang/packets"
	paholog "github.com/eclipse/paho.golang/paho/log"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/eclipse/paho.golang/paho/store/memory"
)

// flight is one PUBLISH of ours in the session: a queue record, or the
// birth message. It is attached to the publish call's context so the
// session can tell which packet is which (see trackingSession).
type flight struct {
	seq   uint64 // queue record (0 for the birth message)
	birth bool
	epoch uint64 // the connection the sender meant it for
	qos   byte

	registered atomic.Bool // set once it is in the session: an outcome will follow
}

type flightKey struct{}

func withFlight(ctx context.Context, f *flight) context.Context {
	return context.WithValue(ctx, flightKey{}, f)
}

// outcome is how a flight ended.
type outcome uint8

const (
	outcomeAcked     outcome = iota // PUBACK / PUBCOMP (reason < 0x80)
	outcomeRejected                 // PUBACK / PUBREC with reason code >= 0x80
	outcomeAbandoned                // the connection ended first: resend
)

// connInfo describes the current connection as the sender needs it.
type connInfo struct {
	up        bool
	epoch     uint64 // incremented on every CONNACK
	window    int    // max flights outstanding: min(Inflight, server Receive Maximum)
	maxQoS    byte
	retain    bool
	maxPacket uint32 // 0: no limit announced
}

// pendingPacket is a client-generated packet awaiting its final response.
type pendingPacket struct {
	typ  byte                         // PUBLISH, SUBSCRIBE or UNSUBSCRIBE
	resp chan<- packets.ControlPacket // the caller's channel (nil for flights)
	f    *flight
}

// trackingSession wraps paho's session state (paho/session/state) to learn
// the outcome of every PUBLISH we send and to make sure an outcome always
// arrives, then reports it through onDone.
//
// Why a wrapper, from the paho v0.23.0 source:
//   - state.State.connectionLost (state.go:324-345) with a session expiry of
//     0, which we always use, calls clean() (state.go:339, 676-683), which
//     replaces the map of pending packets without sending anything on their
//     response channels; ConAckReceived does the same when the broker has no
//     session (state.go:171-174). So a caller never hears that its packet
//     was abandoned. This wrapper keeps its own table and reports every
//     pending packet as abandoned on ConnectionLost (a zero ControlPacket
//     for ordinary callers, as paho's Close does at state.go:137-146).
//   - autopaho.ConnectionManager offers only the blocking Publish
//     (auto.go:460-469), which waits for the PUBACK; PublishWithOptions with
//     PublishMethod_AsyncSend exists on paho.Client only, which autopaho does
//     not expose. For our flights (a *flight in the context) AddToSession
//     therefore completes the caller's response channel (buffered, made at
//     client.go:885) at once with a synthetic success, so publishQoS12
//     (client.go:880-945) returns right after it wrote the packet (line 892;
//     the wait at 904-911 finds the value) — the AsyncSend behaviour — and
//     the real PUBACK / PUBREC error / PUBCOMP is routed to onDone instead.
//   - The incoming goroutine may still call PacketReceived after
//     ConnectionLost set the state's connection to nil; state.go:536 and :552
//     then write a PUBREL to a nil writer. PacketReceived is serialized with
//     the connection transitions and dropped when the connection is gone.
//
// The inner state is given a client store that keeps nothing: with clean
// start and no session expiry paho never resends from it, our queue does.
type trackingSession struct {
	inner     *state.State
	maxWindow int
	onDone    func(f *flight, o outcome, reason byte) // must not block
	onChange  func()                                  // connection went up/down; must not block

	connMu sync.RWMutex // held (R) while a received packet is processed, (W) on connect/disconnect

	mu      sync.Mutex
	info    connInfo
	pending map[uint16]*pendingPacket
}

func newTrackingSession(window int, onDone func(*flight, outcome, byte), onChange func()) *trackingSession {
	return &trackingSession{
		inner:     state.New(discardStore{}, memory.New()),
		maxWindow: window,
		onDone:    onDone,
		onChange:  onChange,
		pending:   make(map[uint16]*pendingPacket),
	}
}

var _ session.SessionManager = (*trackingSession)(nil)

func (s *trackingSession) current() connInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// ConAckReceived implements session.SessionManager.
func (s *trackingSession) ConAckReceived(conn io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	s.connMu.Lock()
	// Never let paho resume a session: our queue resends what was not
	// acknowledged, so the broker's session (if it claims one) is ignored.
	ca2 := *ca
	ca2.SessionPresent = false
	if err := s.inner.ConAckReceived(conn, cp, &ca2); err != nil {
		s.connMu.Unlock()
		return err
	}
	info := connInfo{up: true, window: s.maxWindow, maxQoS: 2, retain: true}
	if p := ca.Properties; p != nil {
		if p.ReceiveMaximum != nil && int(*p.ReceiveMaximum) < info.window {
			info.window = max(1, int(*p.ReceiveMaximum))
		}
		if p.MaximumQOS != nil {
			info.maxQoS = *p.MaximumQOS
		}
		if p.RetainAvailable != nil {
			info.retain = *p.RetainAvailable == 1
		}
		if p.MaximumPacketSize != nil {
			info.maxPacket = *p.MaximumPacketSize
		}
	}
	s.mu.Lock()
	info.epoch = s.info.epoch + 1
	s.info = info
	leftover := s.takePendingLocked()
	s.mu.Unlock()
	s.connMu.Unlock()
	s.abandon(leftover)
	s.onChange()
	return nil
}

// ConnectionLost implements session.SessionManager. It may be called more
// than once per connection.
func (s *trackingSession) ConnectionLost(dp *packets.Disconnect) error {
	s.connMu.Lock()
	err := s.inner.ConnectionLost(dp)
	s.mu.Lock()
	wasUp := s.info.up
	s.info.up = false
	lost := s.takePendingLocked()
	s.mu.Unlock()
	s.connMu.Unlock()
	s.abandon(lost)
	if wasUp {
		s.onChange()
	}
	return err
}

func (s *trackingSession) takePendingLocked() map[uint16]*pendingPacket {
	if len(s.pending) == 0 {
		return nil
	}
	p := s.pending
	s.pending = make(map[uint16]*pendingPacket)
	return p
}

func (s *trackingSession) abandon(pp map[uint16]*pendingPacket) {
	for _, p := range pp {
		if p.f != nil {
			s.onDone(p.f, outcomeAbandoned, 0)
			continue
		}
		select { // the caller's channel has room for one response
		case p.resp <- packets.ControlPacket{}:
		default:
		}
	}
}

// AddToSession implements session.SessionManager.
func (s *trackingSession) AddToSession(ctx context.Context, packet session.Packet, resp chan<- packets.ControlPacket) error {
	f, _ := ctx.Value(flightKey{}).(*flight)
	s.mu.Lock()
	info := s.info
	s.mu.Unlock()
	if !info.up || (f != nil && f.epoch != info.epoch) {
		return session.ErrNoConnection
	}
	// paho sends exactly one value on this channel; nobody needs it.
	if err := s.inner.AddToSession(ctx, packet, make(chan packets.ControlPacket, 1)); err != nil {
		return err
	}
	id, ok := packetID(packet)
	if !ok {
		return errors.New("session: packet without identifier")
	}
	s.mu.Lock()
	if !s.info.up || s.info.epoch != info.epoch {
		// The connection ended while the inner state allocated the ID; the
		// packet must not be written. (The inner state forgets it at the
		// next CONNACK, which never has a session present for it.)
		s.mu.Unlock()
		return session.ErrNoConnection
	}
	s.pending[id] = &pendingPacket{typ: packet.Type(), resp: resp, f: f}
	s.mu.Unlock()

	if f != nil {
		f.registered.Store(true)
		select { // let publishQoS12 return once the packet is written
		case resp <- syntheticAck(f.qos, id):
		default:
		}
	}
	return nil
}

func packetID(p session.Packet) (uint16, bool) {
	switch v := p.(type) {
	case *packets.Publish:
		return v.PacketID, true
	case *packets.Subscribe:
		return v.PacketID, true
	case *packets.Unsubscribe:
		return v.PacketID, true
	}
	return 0, false
}

// syntheticAck is the response paho's blocking publish accepts as success
// (client.go:917-941).
func syntheticAck(qos byte, id uint16) packets.ControlPacket {
	if qos == 2 {
		cp := packets.NewControlPacket(packets.PUBCOMP)
		cp.Content.(*packets.Pubcomp).PacketID = id
		return *cp
	}
	cp := packets.NewControlPacket(packets.PUBACK)
	cp.Content.(*packets.Puback).PacketID = id
	return *cp
}

// PacketReceived implements session.SessionManager.
func (s *trackingSession) PacketReceived(recv *packets.ControlPacket, pubChan chan<- *packets.Publish) error {
	s.connMu.RLock()
	defer s.connMu.RUnlock()
	s.mu.Lock()
	up := s.info.up
	s.mu.Unlock()
	if !up {
		return nil // late packet of a connection that is gone
	}
	// Resolve before the inner state frees the packet ID, so the ID cannot
	// be reused for another packet in between.
	switch p := recv.Content.(type) {
	case *packets.Puback:
		o := outcomeAcked
		if p.ReasonCode >= 0x80 {
			o = outcomeRejected
		}
		s.finish(p.PacketID, packets.PUBLISH, recv, o, p.ReasonCode)
	case *packets.Pubrec:
		if p.ReasonCode >= 0x80 { // final response to a QoS 2 PUBLISH
			s.finish(p.PacketID, packets.PUBLISH, recv, outcomeRejected, p.ReasonCode)
		}
	case *packets.Pubcomp:
		// The message was accepted with the PUBREC; a PUBCOMP error (0x92,
		// identifier not found) only concerns the release.
		s.finish(p.PacketID, packets.PUBLISH, recv, outcomeAcked, 0)
	case *packets.Suback:
		s.finish(p.PacketID, packets.SUBSCRIBE, recv, outcomeAcked, 0)
	case *packets.Unsuback:
		s.finish(p.PacketID, packets.UNSUBSCRIBE, recv, outcomeAcked, 0)
	}
	return s.inner.PacketReceived(recv, pubChan)
}

func (s *trackingSession) finish(id uint16, typ byte, recv *packets.ControlPacket, o outcome, reason byte) {
	s.mu.Lock()
	p, ok := s.pending[id]
	if ok && p.typ == typ {
		delete(s.pending, id)
	} else {
		p = nil
	}
	s.mu.Unlock()
	switch {
	case p == nil:
	case p.f != nil:
		s.onDone(p.f, o, reason)
	default:
		select {
		case p.resp <- *recv:
		default:
		}
	}
}

// Ack implements session.SessionManager.
func (s *trackingSession) Ack(pb *packets.Publish) error { return s.inner.Ack(pb) }

// Close implements session.SessionManager.
func (s *trackingSession) Close() error {
	err := s.ConnectionLost(nil)
	if cerr := s.inner.Close(); err == nil {
		err = cerr
	}
	return err
}

// SetErrorLogger implements session.SessionManager.
func (s *trackingSession) SetErrorLogger(l paholog.Logger) { s.inner.SetErrorLogger(l) }

// SetDebugLogger implements session.SessionManager.
func (s *trackingSession) SetDebugLogger(l paholog.Logger) { s.inner.SetDebugLogger(l) }

// discardStore is a paho session store that keeps nothing: with clean
// start and session expiry 0 nothing is ever resent from it (our queue
// resends), so storing every PUBLISH (a copy of its payload) is waste.
type discardStore struct{}

func (discardStore) Put(uint16, byte, io.WriterTo) error { return nil }
func (discardStore) Get(id uint16) (io.ReadCloser, error) {
	return nil, errors.New("session store keeps nothing")
}
func (discardStore) Delete(uint16) error     { return nil }
func (discardStore) Quarantine(uint16) error { return nil }
func (discardStore) List() ([]uint16, error) { return nil, nil }
func (discardStore) Reset() error            { return nil }
