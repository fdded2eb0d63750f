package app

import (
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mapping"
)

// pump is the pipeline's loop: it maps every frame from frames with the
// engine that engine returns (loaded per frame, so a reload swaps routes
// between two frames) and hands the messages to deliver with the frame's
// ack; then mapped, if not nil, is called with the frame and the engine
// that mapped it (metrics, discovery).
//
// Between frames it runs report by exception's timer: when the engine's
// next deadline comes (mapping.Engine.NextDue), it calls Engine.Due and
// delivers what it releases (held values whose min_interval ended,
// max_interval heartbeats) with a nil ack. One goroutine does both, so the
// messages of one point are delivered in the order they were produced.
//
// When engine returns a new engine (a reload stored it), pump hands it the
// state of the old one (Engine.Adopt) before it maps anything, and
// delivers at once what the old one still holds for routes that changed
// (Engine.Flush). Only pump maps frames, so no frame is mapped by the old
// engine after the hand-over. When frames is closed, pump delivers the
// held values of the engine in force, then returns: the caller closes the
// bus once no adapter sends, and stops the sinks after pump returned.
func pump(frames <-chan bridge.Frame, engine func() *mapping.Engine, deliver func([]bridge.Message, bridge.AckFunc), mapped func(*bridge.Frame, *mapping.Engine)) {
	msgs := make([]bridge.Message, 0, 16)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed time.Time // when the timer fires; zero: stopped
	arm := func(next time.Time) {
		if next.Equal(armed) {
			return
		}
		armed = next
		if next.IsZero() {
			timer.Stop()
			return
		}
		timer.Reset(time.Until(next))
	}
	var cur *mapping.Engine
	// current returns the engine in force; a new one first takes over the
	// state of the one it replaces, whose leftovers are delivered.
	current := func() *mapping.Engine {
		e := engine()
		if e != cur {
			if cur != nil {
				e.Adopt(cur)
				if msgs = cur.Flush(msgs[:0]); len(msgs) > 0 {
					deliver(msgs, nil)
				}
			}
			cur = e
		}
		return e
	}
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				if msgs = current().Flush(msgs[:0]); len(msgs) > 0 {
					deliver(msgs, nil)
				}
				return
			}
			e := current()
			msgs = e.MapAt(time.Now(), &f, msgs[:0])
			deliver(msgs, f.Ack)
			if mapped != nil {
				mapped(&f, e)
			}
			arm(e.NextDue())
		case <-timer.C:
			armed = time.Time{}
			var next time.Time
			msgs, next = current().Due(time.Now(), msgs[:0])
			if len(msgs) > 0 {
				deliver(msgs, nil)
			}
			arm(next)
		}
	}
}
