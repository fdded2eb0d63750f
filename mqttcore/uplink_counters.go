package mqttcore

import (
	"fmt"
	"sync/atomic"

	"github.com/causeway/causeway/bridge"
)

// uplinkCounters is what both uplink implementations (MQTT 5 and 3.1.1)
// count and check the same way: the closing flag, the counters behind
// Stats, and the checks and append of Enqueue.
type uplinkCounters struct {
	closing atomic.Bool

	inflight      atomic.Int64
	connects      atomic.Uint64
	connectErrors atomic.Uint64
	sent          atomic.Uint64
	acked         atomic.Uint64
	rejected      atomic.Uint64
	invalid       atomic.Uint64
	tooLarge      atomic.Uint64
	closedDrops   atomic.Uint64
	upSince       atomic.Int64 // unix nanoseconds of the last connection
	flaps         atomic.Int64 // consecutive connections that lasted less than flapWindow
}

// enqueue checks m (not closing, QoS, the topic with prefix) and appends it
// to q; refusals are counted.
func (c *uplinkCounters) enqueue(q Queue, prefix string, m bridge.Message, done func(error)) error {
	if c.closing.Load() {
		c.closedDrops.Add(1)
		return fmt.Errorf("uplink enqueue %q: %w", m.Topic, ErrClosed)
	}
	if m.QoS > 2 {
		c.invalid.Add(1)
		return fmt.Errorf("uplink enqueue %q: %w: %d", m.Topic, ErrInvalidQoS, m.QoS)
	}
	if err := validatePrefixedTopic(prefix, m.Topic); err != nil {
		c.invalid.Add(1)
		return fmt.Errorf("uplink enqueue: %w", err)
	}
	if _, err := q.Append(m, done); err != nil {
		return fmt.Errorf("uplink enqueue %q: %w", m.Topic, err)
	}
	return nil
}

// stats is Stats of an uplink sending from q.
func (c *uplinkCounters) stats(q Queue, connected bool) UplinkStats {
	qs := q.Stats()
	st := UplinkStats{
		Connected:     connected,
		Connects:      c.connects.Load(),
		ConnectErrors: c.connectErrors.Load(),
		Queued:        qs.Len,
		QueuedBytes:   qs.Bytes,
		OldestAge:     qs.OldestAge,
		Inflight:      int(c.inflight.Load()),
		Sent:          c.sent.Load(),
		Acked:         c.acked.Load(),
		Dropped: qs.Dropped.Plus(Drops{
			Rejected: c.rejected.Load(),
			Invalid:  c.invalid.Load(),
			TooLarge: c.tooLarge.Load(),
			Closed:   c.closedDrops.Load(),
		}),
	}
	if st.Connects > 0 {
		st.Reconnects = st.Connects - 1
	}
	return st
}
