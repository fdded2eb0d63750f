package mqttcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// sender is the single goroutine that moves records from the queue to the
// connection, in queue order, and applies their outcomes to the queue.
type sender struct {
	u  *PahoUplink
	cm *autopaho.ConnectionManager

	epoch        uint64 // connection we are sending on (0: none yet)
	birthPending bool   // the birth message is still to be sent on this connection
	resync       bool   // stop, wait for the outstanding flights, back off, rewind
	resyncAt     time.Time
	failures     int            // consecutive failed publishes (for the backoff)
	rejects      map[uint64]int // refusals with a retryable reason, by seq
	abandons     map[uint64]int // connection losses while in flight, by seq
	warnedCaps   bool           // warned about a broker capability for this connection
	comps        []completion
}

func newSender(u *PahoUplink, cm *autopaho.ConnectionManager) *sender {
	return &sender{u: u, cm: cm, rejects: make(map[uint64]int), abandons: make(map[uint64]int)}
}

func (s *sender) run(ctx context.Context) {
	q := s.u.queue
	for {
		s.drain()
		if ctx.Err() != nil {
			return
		}
		ci := s.u.sess.current()
		if !ci.up {
			s.wait(ctx, 0, false)
			continue
		}
		if ci.epoch != s.epoch {
			// A new connection. Flights of the old one were all reported
			// abandoned when it was lost; resend from the first
			// unacknowledged record.
			if s.u.inflight.Load() > 0 {
				s.wait(ctx, 0, false)
				continue
			}
			s.epoch, s.resync, s.failures, s.warnedCaps = ci.epoch, false, 0, false
			s.birthPending = s.u.statusTopic != ""
			s.pruneRejects()
			if err := q.Rewind(); err != nil {
				s.queueError(err)
				continue
			}
		}
		if s.resync {
			if s.u.inflight.Load() > 0 {
				s.wait(ctx, 0, false)
				continue
			}
			if d := time.Until(s.resyncAt); d > 0 {
				s.wait(ctx, d, false)
				continue
			}
			s.resync = false
			if err := q.Rewind(); err != nil {
				s.queueError(err)
				continue
			}
		}
		if s.u.inflight.Load() >= int64(ci.window) {
			s.wait(ctx, 0, false)
			continue
		}
		if s.birthPending {
			s.sendBirth(ctx, ci)
			continue
		}
		rec, ok, err := q.Next()
		if err != nil {
			s.queueError(err)
			continue
		}
		if !ok {
			s.wait(ctx, 0, true)
			continue
		}
		s.send(ctx, ci, rec)
	}
}

// wait blocks until an outcome or connection change (wake), an append (if
// queue), d elapsed (if d > 0), or ctx ends.
func (s *sender) wait(ctx context.Context, d time.Duration, queue bool) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	var ready <-chan struct{}
	if queue {
		ready = s.u.queue.Ready()
	}
	select {
	case <-ctx.Done():
	case <-s.u.wake:
	case <-ready:
	case <-timer:
	}
}

func (s *sender) scheduleResync() {
	s.failures++
	s.resync = true
	s.resyncAt = time.Now().Add(s.u.backoff.Delay(s.failures))
}

func (s *sender) queueError(err error) {
	s.u.limiter.log(s.u.log, slog.LevelError, "uplink: offline queue error", slog.Any("error", err))
	s.scheduleResync()
}

func (s *sender) sendBirth(ctx context.Context, ci connInfo) {
	qos := min(1, ci.maxQoS)
	p := &paho.Publish{QoS: qos, Retain: ci.retain, Topic: s.u.statusTopic, Payload: []byte(statusOnline)}
	if qos == 0 {
		if _, err := s.cm.Publish(ctx, p); err != nil {
			s.failed(ctx, err, nil)
			return
		}
		s.u.sent.Add(1)
		s.birthPending = false
		return
	}
	f := &flight{birth: true, epoch: ci.epoch, qos: qos}
	s.u.inflight.Add(1)
	_, err := s.cm.Publish(withFlight(ctx, f), p)
	if f.registered.Load() {
		s.u.sent.Add(1)
		s.birthPending = false
		return
	}
	s.u.inflight.Add(-1)
	s.failed(ctx, err, nil)
}

// send publishes one record. For QoS>0 it returns once the packet is
// written; the outcome arrives later through drain.
func (s *sender) send(ctx context.Context, ci connInfo, rec Record) {
	m := rec.Msg
	topic := s.u.opts.TopicPrefix + m.Topic
	qos, retain := min(m.QoS, ci.maxQoS), m.Retain && ci.retain
	if (qos < m.QoS || retain != m.Retain) && !s.warnedCaps {
		s.warnedCaps = true
		s.u.log.Warn("uplink broker capabilities: QoS lowered or retain removed for its messages",
			slog.Int("max_qos", int(ci.maxQoS)), slog.Bool("retain_available", ci.retain))
	}
	if size := publishSize(topic, len(m.Payload), qos); size > maxMQTTPacket || (ci.maxPacket > 0 && size > uint64(ci.maxPacket)) {
		s.u.tooLarge.Add(1)
		s.giveUp(rec.Seq, "uplink: message larger than the broker accepts; dropped",
			slog.String("topic", topic), slog.Uint64("size", size), slog.Uint64("max_packet_size", uint64(ci.maxPacket)))
		return
	}
	p := &paho.Publish{QoS: qos, Retain: retain, Topic: topic, Payload: m.Payload}
	// The queue's sequence number, so that consumers can drop the
	// duplicates an at-least-once replay may cause.
	p.Properties = &paho.PublishProperties{User: paho.UserProperties{{Key: SeqPropertyKey, Value: strconv.FormatUint(rec.Seq, 10)}}}
	if qos == 0 {
		if _, err := s.cm.Publish(ctx, p); err != nil {
			s.failed(ctx, err, &rec)
			return
		}
		s.u.sent.Add(1)
		s.u.acked.Add(1)
		s.failures = 0
		s.ack(rec.Seq)
		return
	}
	f := &flight{seq: rec.Seq, epoch: ci.epoch, qos: qos}
	s.u.inflight.Add(1)
	_, err := s.cm.Publish(withFlight(ctx, f), p)
	if f.registered.Load() { // in the session and written (or the connection is failing): outcome follows
		s.u.sent.Add(1)
		s.failures = 0
		return
	}
	s.u.inflight.Add(-1)
	s.failed(ctx, err, &rec)
}

// failed handles a publish that did not get into the session.
func (s *sender) failed(ctx context.Context, err error, rec *Record) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, paho.ErrInvalidArguments) {
		// paho refuses the packet itself: retrying cannot help.
		if rec == nil {
			s.birthPending = false
			s.u.log.Warn("uplink: birth message refused by the client library", slog.Any("error", err))
			return
		}
		s.u.invalid.Add(1)
		s.giveUp(rec.Seq, "uplink: message refused by the client library; dropped",
			slog.String("topic", rec.Msg.Topic), slog.Any("error", err))
		return
	}
	if errors.Is(err, autopaho.ConnectionDownError) {
		// The session saw the CONNACK before autopaho published the new
		// client (or the connection just dropped): wait for it briefly, then
		// resend from the first unacknowledged record without backing off.
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_ = s.cm.AwaitConnection(actx)
		cancel()
		s.resync, s.resyncAt = true, time.Time{}
		return
	}
	// The connection is down or failing, or the session is saturated: the
	// packet was not written. Send again from the first unacknowledged
	// record once the outstanding flights are settled.
	s.u.log.Debug("uplink publish not sent; will retry", slog.Any("error", err))
	s.scheduleResync()
}

func (s *sender) giveUp(seq uint64, msg string, attrs ...any) {
	s.u.limiter.log(s.u.log, slog.LevelWarn, msg, append(attrs, slog.Uint64("seq", seq))...)
	s.ack(seq)
}

// abandoned notes a connection loss while seq was in flight. A message the
// broker answers by closing the connection (instead of a reason code) would
// be resent forever; it is never dropped on a guess, but it is reported.
func (s *sender) abandoned(seq uint64) {
	s.abandons[seq]++
	if n := s.abandons[seq]; n%poisonReport == 0 {
		s.u.limiter.log(s.u.log, slog.LevelError,
			"uplink: a message was in flight at every one of the last connection losses; the broker may be closing the connection because of it",
			slog.Uint64("seq", seq), slog.Int("losses", n))
	}
}

func (s *sender) ack(seq uint64) {
	delete(s.rejects, seq)
	delete(s.abandons, seq)
	if err := s.u.queue.Ack(seq); err != nil {
		s.u.limiter.log(s.u.log, slog.LevelError, "uplink: offline queue ack failed", slog.Any("error", err))
	}
}

// drain applies the outcomes reported by the session.
func (s *sender) drain() {
	s.comps = s.u.takeCompletions(s.comps)
	for i, c := range s.comps {
		s.u.inflight.Add(-1)
		f := c.f
		switch c.o {
		case outcomeAcked:
			if !f.birth {
				s.u.acked.Add(1)
				s.ack(f.seq)
			}
		case outcomeAbandoned:
			// The connection ended first; the record is sent again after
			// the rewind on the next connection (the birth message too).
			if !f.birth {
				s.abandoned(f.seq)
			}
		case outcomeRejected:
			s.rejected(f, c.reason)
		}
		s.comps[i] = completion{}
	}
}

func (s *sender) rejected(f *flight, reason byte) {
	code := fmt.Sprintf("0x%02x", reason)
	if f.birth {
		s.u.limiter.log(s.u.log, slog.LevelWarn, "uplink broker refused the birth message",
			slog.String("topic", s.u.statusTopic), slog.String("reason_code", code), slog.String("reason", reasonName(reason)))
		return
	}
	switch retryClass(reason) {
	case retryAlways:
	case retryLimited:
		if s.rejects[f.seq]+1 < maxRejects {
			break
		}
		fallthrough
	default:
		s.u.rejected.Add(1)
		s.giveUp(f.seq, "uplink broker refused a message; dropped",
			slog.String("reason_code", code), slog.String("reason", reasonName(reason)))
		return
	}
	s.rejects[f.seq]++
	s.u.limiter.log(s.u.log, slog.LevelWarn, "uplink broker refused a message; will retry",
		slog.Uint64("seq", f.seq), slog.String("reason_code", code), slog.String("reason", reasonName(reason)))
	s.scheduleResync()
}

// pruneRejects forgets refusals and losses of records gone from the queue.
func (s *sender) pruneRejects() {
	if len(s.rejects) == 0 && len(s.abandons) == 0 {
		return
	}
	committed := s.u.queue.Stats().Committed
	for _, m := range []map[uint64]int{s.rejects, s.abandons} {
		for seq := range m {
			if seq <= committed {
				delete(m, seq)
			}
		}
	}
}

type retryKind uint8

const (
	retryNever   retryKind = iota // the message itself is at fault
	retryLimited                  // unspecified failure: a few attempts
	retryAlways                   // the broker is busy or throttling us
)

// retryClass says whether a PUBLISH refused with reason (>= 0x80) may
// succeed later.
func retryClass(reason byte) retryKind {
	switch reason {
	case 0x97, // quota exceeded
		0x91, // packet identifier in use
		0x89: // server busy
		return retryAlways
	case 0x80, // unspecified error
		0x83: // implementation specific error
		return retryLimited
	}
	// 0x87 not authorized, 0x90 topic name invalid, 0x95 packet too large,
	// 0x99 payload format invalid, 0x9a retain not supported, 0x9b QoS not
	// supported, and anything unknown.
	return retryNever
}

func reasonName(reason byte) string {
	switch reason {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x89:
		return "server busy"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	case 0x9a:
		return "retain not supported"
	case 0x9b:
		return "QoS not supported"
	}
	return "unknown"
}

// poisonReport: report a message every this many connection losses in flight.
const poisonReport = 5

// maxMQTTPacket is the largest packet MQTT can encode.
const maxMQTTPacket = 268435455 + 5

// publishSize is an upper bound of the size of a PUBLISH packet without
// properties: fixed header (1 + up to 4), topic (2 + len), packet ID,
// property length (1), payload.
func publishSize(topic string, payload int, qos byte) uint64 {
	n := uint64(1+4+2+len(topic)+1) + uint64(payload)
	if qos > 0 {
		n += 2
	}
	return n
}
