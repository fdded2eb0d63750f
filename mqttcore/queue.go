package mqttcore

import (
	"errors"
	"fmt"
	"time"

	"github.com/causeway/causeway/bridge"
)

// Queue errors.
var (
	// ErrQueueFull is returned by Append when the queue is full and its
	// policy is drop_newest: the message was refused (and counted).
	ErrQueueFull = errors.New("offline queue full")
	// ErrTooLarge is returned by Append for a message larger than the whole
	// queue may hold.
	ErrTooLarge = errors.New("message larger than the offline queue")
)

// Record is one message in the offline queue.
type Record struct {
	// Seq is assigned by Append: strictly increasing, never reused (also
	// not across restarts for a durable queue).
	Seq uint64
	// Time is when the record was appended.
	Time time.Time
	// Msg is the message as given to Append (topic without the uplink
	// prefix). The queue owns Msg.Payload: callers must not modify it.
	Msg bridge.Message
}

// Queue is the offline queue between the mapping engine and the uplink.
//
// The model is a log with two positions. Append adds a record at the tail
// and is the accept point. The sender reads records in order with Next from
// a read position; after a reconnect (or a refused publish) it calls Rewind,
// which moves the read position back to the first unacknowledged record.
// Ack marks one record delivered; acknowledgements may arrive out of order,
// and the committed position (everything before it is delivered or dropped,
// the only position a durable queue has to persist) advances over the
// contiguous acknowledged prefix only. Records are released when the
// committed position passes them or when a bound drops them.
//
// Append, Stats and Close may be called from any goroutine. Next, Rewind and
// Ack are called by one sender goroutine, but implementations must still be
// safe when they run concurrently with Append.
type Queue interface {
	// Append adds m and returns its sequence number. When it returns nil
	// the message is in the queue's order: the queue will hand it to the
	// sender until it is acknowledged, or count it as dropped if a bound
	// removes it. done, if not nil, is called exactly once, when the record
	// is as safe as the queue promises (for a durable queue: written to its
	// file, or fsynced, by its fsync policy), or with the error that
	// prevented it; only then does the message count as accepted. done runs
	// on a queue goroutine and must not block. It is not called when Append
	// returns an error: ErrQueueFull (drop_newest policy), ErrTooLarge, or
	// ErrClosed, all counted as drops too.
	Append(m bridge.Message, done func(error)) (seq uint64, err error)
	// Next returns the record at the read position and advances the read
	// position past it. Records already acknowledged are skipped, expired
	// ones are dropped. ok is false when no record is available.
	Next() (rec Record, ok bool, err error)
	// Rewind moves the read position back to the first unacknowledged
	// record, so that Next hands out again everything not yet delivered.
	Rewind() error
	// Ack marks seq as delivered (or as given up on: a message the broker
	// refused for good). Unknown or already acknowledged seqs are ignored.
	Ack(seq uint64) error
	// Ready returns a channel that receives a value after an Append; the
	// sender waits on it when Next has nothing. It has a buffer of one, so
	// a signal is never lost and one wake-up may cover many appends.
	Ready() <-chan struct{}
	// Stats returns a snapshot of the queue's counters.
	Stats() QueueStats
	// Close stops accepting messages. Records still held stay readable;
	// a durable queue syncs and keeps them for the next start.
	Close() error
}

// WhenFull is the policy applied when the queue is full.
type WhenFull uint8

const (
	// DropOldest evicts the oldest records until the new one fits.
	DropOldest WhenFull = iota
	// DropNewest refuses the new record.
	DropNewest
)

func (w WhenFull) String() string {
	if w == DropNewest {
		return "drop_newest"
	}
	return "drop_oldest"
}

// ParseWhenFull parses the [queue] when_full value.
func ParseWhenFull(s string) (WhenFull, error) {
	switch s {
	case "", "drop_oldest":
		return DropOldest, nil
	case "drop_newest":
		return DropNewest, nil
	}
	return 0, fmt.Errorf("when_full %q: want drop_oldest or drop_newest", s)
}

// DropReason says why a message was dropped.
type DropReason uint8

// The reasons a message is dropped.
const (
	DropFull     DropReason = iota // the queue was full (when_full policy)
	DropExpired                    // older than max_age
	DropTooLarge                   // larger than the queue, or than the broker's maximum packet size
	DropRejected                   // the broker refused it for good (PUBACK/PUBREC reason code >= 0x80)
	DropInvalid                    // it can never be published (invalid topic, QoS)
	DropClosed                     // offered after Close
	numDropReasons
)

func (r DropReason) String() string {
	switch r {
	case DropFull:
		return "full"
	case DropExpired:
		return "expired"
	case DropTooLarge:
		return "too_large"
	case DropRejected:
		return "rejected"
	case DropInvalid:
		return "invalid"
	case DropClosed:
		return "closed"
	}
	return "unknown"
}

// Drops counts dropped messages by reason.
type Drops struct {
	Full, Expired, TooLarge, Rejected, Invalid, Closed uint64
}

// Total is the number of drops for every reason.
func (d Drops) Total() uint64 {
	return d.Full + d.Expired + d.TooLarge + d.Rejected + d.Invalid + d.Closed
}

// Add counts n drops for reason r.
func (d *Drops) Add(r DropReason, n uint64) {
	switch r {
	case DropFull:
		d.Full += n
	case DropExpired:
		d.Expired += n
	case DropTooLarge:
		d.TooLarge += n
	case DropRejected:
		d.Rejected += n
	case DropInvalid:
		d.Invalid += n
	case DropClosed:
		d.Closed += n
	}
}

// Plus returns the sum of d and o.
func (d Drops) Plus(o Drops) Drops {
	return Drops{
		Full: d.Full + o.Full, Expired: d.Expired + o.Expired, TooLarge: d.TooLarge + o.TooLarge,
		Rejected: d.Rejected + o.Rejected, Invalid: d.Invalid + o.Invalid, Closed: d.Closed + o.Closed,
	}
}

// QueueStats is a snapshot of a queue.
type QueueStats struct {
	Len       int           // records not yet acknowledged
	Bytes     int64         // accounted bytes held (see MemoryQueueOptions.MaxBytes)
	OldestAge time.Duration // age of the oldest unacknowledged record (0 if none)
	Appended  uint64        // records accepted by Append
	Acked     uint64        // records acknowledged
	Dropped   Drops         // records dropped or refused, by reason
	Committed uint64        // every seq <= Committed is acknowledged or dropped
	LastSeq   uint64        // the highest seq assigned (0 if none)
}
