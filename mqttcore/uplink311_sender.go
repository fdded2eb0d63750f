package mqttcore

import (
	"context"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// flight311 is one PUBLISH of the MQTT 3.1.1 uplink: a queue record or the
// birth message.
type flight311 struct {
	seq   uint64 // queue record (0 for the birth message)
	birth bool
	qos   byte
	epoch uint64 // the connection it is for

	// For the connection's publisher.
	topic   string
	retain  bool
	payload []byte // dropped once published

	// Set by the publisher before it closes published; tok stays nil if
	// the connection was lost before.
	published chan struct{}
	tok       mqtt.Token
	sentAt    time.Time
	handed    bool // paho took the packet (its token did not fail at once)
}

// completion311 is a flight's outcome as the watcher saw it.
type completion311 struct {
	f *flight311
	o outcome // outcomeAcked or outcomeAbandoned (MQTT 3.1.1 has no refusals)
	// lostAfter is the time from sending the flight to the loss of its
	// connection, for a flight abandoned because of it; -1 otherwise.
	lostAfter time.Duration
}

// sender311 is the single goroutine that moves records from the queue to
// the MQTT 3.1.1 connection, in queue order, and applies their outcomes to
// the queue: PahoUplink's sender, with flights tracked by the connection's
// watcher instead of a session wrapper, and connection losses standing in
// for the reason codes MQTT 3.1.1 does not have.
type sender311 struct {
	u   *V311Uplink
	cur *conn311 // the connection we are sending on

	outstanding  int  // flights sent and not yet reported (all QoS, the birth too)
	birthPending bool // the birth message is still to be sent on this connection
	resync       bool // stop, wait for the outstanding flights, back off, rewind
	resyncAt     time.Time
	failures     int // consecutive failed publishes (for the backoff)

	// Connection losses attributed to the message first in flight (see
	// abandoned): by seq, and for the birth message.
	strikes      map[uint64]int
	birthStrikes int
	noBirth      bool   // the birth message was given up on
	lossEpoch    uint64 // the last connection whose loss was attributed
	comps        []completion311
}

func newSender311(u *V311Uplink) *sender311 {
	return &sender311{u: u, strikes: make(map[uint64]int)}
}

func (s *sender311) run(ctx context.Context) {
	q := s.u.queue
	for {
		s.drain()
		if ctx.Err() != nil {
			return
		}
		c := s.u.current()
		if c == nil || c.isLost() { // wait for the next connection
			s.wait(ctx, 0, false)
			continue
		}
		if c != s.cur {
			// A new connection. The flights of the old one are reported
			// abandoned (or acknowledged) by its watcher; once they all
			// are, resend from the first unacknowledged record.
			if s.outstanding > 0 {
				s.wait(ctx, 0, false)
				continue
			}
			s.cur, s.resync, s.failures = c, false, 0
			s.birthPending = s.u.statusTopic != "" && !s.noBirth
			s.pruneStrikes()
			if err := q.Rewind(); err != nil {
				s.queueError(err)
				continue
			}
		}
		if s.resync {
			if s.outstanding > 0 {
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
		if len(s.strikes) > 0 {
			s.pruneStrikes() // a bound may have dropped the suspect
		}
		if s.outstanding >= s.window() {
			s.wait(ctx, 0, false)
			continue
		}
		if s.birthPending {
			s.sendBirth(c)
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
		s.send(c, rec)
	}
}

// window is the number of flights that may be outstanding: Inflight, or
// one while a message (or the birth message) suspected of making the broker
// close the connection is being tried alone.
func (s *sender311) window() int {
	if len(s.strikes) > 0 || s.birthStrikes > 0 {
		return 1
	}
	return s.u.opts.Inflight
}

// wait blocks until an outcome or connection change (wake), an append (if
// queue), d elapsed (if d > 0), or ctx ends.
func (s *sender311) wait(ctx context.Context, d time.Duration, queue bool) {
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

func (s *sender311) scheduleResync() {
	s.failures++
	s.resync = true
	s.resyncAt = time.Now().Add(s.u.backoff.Delay(s.failures))
}

func (s *sender311) queueError(err error) {
	s.u.limiter.log(s.u.log, slog.LevelError, "uplink: offline queue error", slog.Any("error", err))
	s.scheduleResync()
}

func (s *sender311) sendBirth(c *conn311) {
	f := &flight311{birth: true, qos: 1, epoch: c.epoch, topic: s.u.statusTopic, retain: true, payload: []byte(statusOnline)}
	if !s.publish(c, f) {
		s.failed()
		return
	}
	s.birthPending = false
}

// send publishes one record; its outcome arrives later through drain.
func (s *sender311) send(c *conn311, rec Record) {
	m := rec.Msg
	topic := s.u.opts.TopicPrefix + m.Topic
	// No properties in MQTT 3.1.1, and no maximum packet size announced by
	// the broker: only MQTT's own limit is known here.
	if size := publishSize(topic, len(m.Payload), m.QoS) - 1; size > maxMQTTPacket {
		s.u.tooLarge.Add(1)
		s.giveUp(rec.Seq, "uplink: message larger than MQTT allows; dropped",
			slog.String("topic", topic), slog.Uint64("size", size))
		return
	}
	f := &flight311{seq: rec.Seq, qos: m.QoS, epoch: c.epoch, topic: topic, retain: m.Retain, payload: m.Payload}
	if !s.publish(c, f) {
		s.failed()
		return
	}
	s.failures = 0
}

// publish hands f to c's publisher and watcher; its outcome arrives
// through drain. It reports false when c takes no more flights (it is
// gone): nothing was sent.
func (s *sender311) publish(c *conn311, f *flight311) bool {
	f.published = make(chan struct{})
	if !c.track(f) {
		return false
	}
	s.outstanding++
	if f.qos > 0 {
		s.u.inflight.Add(1)
	}
	return true
}

// failed handles a flight the connection did not take: it is gone (the
// next connection rewinds the queue). Otherwise send again from the first
// unacknowledged record once the outstanding flights are settled, after a
// backoff.
func (s *sender311) failed() {
	s.scheduleResync()
}

func (s *sender311) giveUp(seq uint64, msg string, attrs ...any) {
	s.u.limiter.log(s.u.log, slog.LevelWarn, msg, append(attrs, slog.Uint64("seq", seq))...)
	s.ack(seq)
}

func (s *sender311) ack(seq uint64) {
	delete(s.strikes, seq)
	if err := s.u.queue.Ack(seq); err != nil {
		s.u.limiter.log(s.u.log, slog.LevelError, "uplink: offline queue ack failed", slog.Any("error", err))
	}
}

// drain applies the outcomes reported by the watchers.
func (s *sender311) drain() {
	s.comps = s.u.takeCompletions(s.comps)
	for i, c := range s.comps {
		s.outstanding--
		f := c.f
		if f.qos > 0 {
			s.u.inflight.Add(-1)
		}
		switch c.o {
		case outcomeAcked:
			if f.birth {
				s.birthStrikes = 0
			} else {
				s.u.acked.Add(1)
				s.ack(f.seq)
			}
		default:
			s.abandoned(c)
		}
		s.comps[i] = completion311{}
	}
}

// abandoned handles a flight that ended without its acknowledgement. The
// record is sent again after the next rewind.
//
// An MQTT 3.1.1 broker that will not take a message can only close the
// connection (or acknowledge and drop it). So each connection loss is
// attributed to the first flight that was in flight (flights are reported
// in send order), if the loss came within poisonWindow of sending it: that
// message then has a strike, and is sent alone on the next connections (the
// window is one) until it is acknowledged. A loss with it in flight that
// comes later, or its acknowledgement, clears its strikes; poisonLosses
// strikes in a row drop it, counted as rejected. The birth message is
// treated alike, except that it is no longer sent instead of being dropped.
// QoS 0 flights are never suspects: once written they are acknowledged.
func (s *sender311) abandoned(c completion311) {
	f := c.f
	if c.lostAfter < 0 {
		// Not sent (the publisher ends the connection then), or its
		// token failed while the connection is still there: resend from
		// the first unacknowledged record.
		if s.cur != nil && f.epoch == s.cur.epoch && !s.cur.isLost() {
			s.scheduleResync()
		}
		return
	}
	if f.qos == 0 || f.epoch == s.lossEpoch {
		return
	}
	s.lossEpoch = f.epoch
	prompt := c.lostAfter <= poisonWindow
	if f.birth {
		if !prompt {
			s.birthStrikes = 0
			return
		}
		s.birthStrikes++
		if s.birthStrikes >= poisonLosses {
			s.birthStrikes, s.noBirth = 0, true
			s.u.log.Error("uplink broker closed the connection every time the birth message was sent; it is not sent any more",
				slog.String("topic", s.u.statusTopic), slog.Int("losses", poisonLosses))
		}
		return
	}
	if !prompt {
		delete(s.strikes, f.seq)
		return
	}
	s.strikes[f.seq]++
	n := s.strikes[f.seq]
	if n >= poisonLosses {
		s.u.rejected.Add(1)
		s.giveUp(f.seq, "uplink broker closed the connection every time a message was sent; dropped as rejected",
			slog.Int("losses", n), slog.Duration("within", poisonWindow))
		return
	}
	s.u.limiter.log(s.u.log, slog.LevelWarn, "uplink connection lost right after a message was sent; sending it alone next",
		slog.Uint64("seq", f.seq), slog.Int("losses", n))
}

// pruneStrikes forgets the strikes of records gone from the queue.
func (s *sender311) pruneStrikes() {
	if len(s.strikes) == 0 {
		return
	}
	committed := s.u.queue.Stats().Committed
	for seq := range s.strikes {
		if seq <= committed {
			delete(s.strikes, seq)
		}
	}
}
