package mqttcore

import (
	"log/slog"
	"sync"
	"time"

	"github.com/causeway/causeway/bridge"
)

// RecordOverhead is the fixed number of bytes every record is charged
// against MaxBytes on top of its topic and payload, so that the bound holds
// for the memory actually used even with empty messages.
const RecordOverhead = 64

// Defaults of MemoryQueueOptions.
const (
	DefaultMemoryQueueBytes = 32 << 20
	DefaultQueueMaxAge      = 168 * time.Hour
)

// MemoryQueueOptions configures a MemoryQueue.
type MemoryQueueOptions struct {
	// MaxBytes bounds the sum over held records of len(topic) +
	// len(payload) + RecordOverhead. Default DefaultMemoryQueueBytes.
	MaxBytes int64
	// MaxAge drops records older than this (counted as expired).
	// Default DefaultQueueMaxAge; negative disables the age limit.
	MaxAge time.Duration
	// WhenFull is the policy when a new record does not fit.
	WhenFull WhenFull
	// OnDrop, if set, is called for every drop (n messages for reason)
	// after the queue's lock is released; it must be fast.
	OnDrop func(reason DropReason, n int)
	// Log receives the drop reports: at most one line per 10 s, with the
	// counts since the previous line. Default slog.Default().
	Log *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// MemoryQueue is a bounded in-memory Queue. Its content is lost when the
// process exits; the durable queue replaces it where that matters.
type MemoryQueue struct {
	opts  MemoryQueueOptions
	ready chan struct{}

	mu       sync.Mutex
	ring     []qent // circular buffer, len is a power of two (or 0)
	head, n  int    // index of the first record, number of records
	firstSeq uint64 // seq of the record at head (== nextSeq when empty)
	nextSeq  uint64 // seq the next Append gets
	readSeq  uint64 // read position
	bytes    int64
	unacked  int
	closed   bool
	appended uint64
	acked    uint64
	dropped  Drops

	// drop reporting (rate-limited log)
	lastReport time.Time
	pending    Drops
}

type qent struct {
	rec   Record
	size  int64
	acked bool
}

type dropEvent struct {
	reason DropReason
	n      int
}

// NewMemoryQueue returns an empty queue.
func NewMemoryQueue(opts MemoryQueueOptions) *MemoryQueue {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMemoryQueueBytes
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultQueueMaxAge
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &MemoryQueue{
		opts:     opts,
		ready:    make(chan struct{}, 1),
		firstSeq: 1,
		nextSeq:  1,
		readSeq:  1,
	}
}

var _ Queue = (*MemoryQueue)(nil)

// Append implements Queue. A MemoryQueue has nothing to make durable: done
// is called before Append returns.
func (q *MemoryQueue) Append(m bridge.Message, done func(error)) (uint64, error) {
	size := int64(len(m.Topic)+len(m.Payload)) + RecordOverhead
	now := q.opts.Now()
	var events []dropEvent

	q.mu.Lock()
	if q.closed {
		events = q.dropLocked(events, DropClosed, 1, now)
		q.mu.Unlock()
		q.report(events)
		return 0, ErrClosed
	}
	if size > q.opts.MaxBytes {
		events = q.dropLocked(events, DropTooLarge, 1, now)
		q.mu.Unlock()
		q.report(events)
		return 0, ErrTooLarge
	}
	events = q.expireLocked(events, now)
	if q.bytes+size > q.opts.MaxBytes {
		if q.opts.WhenFull == DropNewest {
			events = q.dropLocked(events, DropFull, 1, now)
			q.mu.Unlock()
			q.report(events)
			return 0, ErrQueueFull
		}
		evicted := 0
		for q.n > 0 && q.bytes+size > q.opts.MaxBytes {
			q.popFrontLocked()
			evicted++
			q.popAckedLocked()
		}
		events = q.dropLocked(events, DropFull, evicted, now)
	}
	seq := q.nextSeq
	q.nextSeq++
	q.pushLocked(qent{rec: Record{Seq: seq, Time: now, Msg: m}, size: size})
	q.bytes += size
	q.unacked++
	q.appended++
	q.mu.Unlock()

	select {
	case q.ready <- struct{}{}:
	default:
	}
	q.report(events)
	if done != nil {
		done(nil)
	}
	return seq, nil
}

// Next implements Queue.
func (q *MemoryQueue) Next() (Record, bool, error) {
	now := q.opts.Now()
	q.mu.Lock()
	events := q.expireLocked(nil, now)
	if q.readSeq < q.firstSeq {
		q.readSeq = q.firstSeq
	}
	var (
		rec Record
		ok  bool
	)
	for q.readSeq < q.nextSeq {
		e := q.atLocked(q.readSeq)
		q.readSeq++
		if !e.acked {
			rec, ok = e.rec, true
			break
		}
	}
	q.mu.Unlock()
	q.report(events)
	return rec, ok, nil
}

// Rewind implements Queue.
func (q *MemoryQueue) Rewind() error {
	q.mu.Lock()
	q.readSeq = q.firstSeq // the head is always unacknowledged (or the queue is empty)
	q.mu.Unlock()
	return nil
}

// Ack implements Queue.
func (q *MemoryQueue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if seq < q.firstSeq || seq >= q.nextSeq {
		return nil
	}
	e := q.atLocked(seq)
	if e.acked {
		return nil
	}
	e.acked = true
	q.unacked--
	q.acked++
	q.popAckedLocked()
	return nil
}

// Ready implements Queue.
func (q *MemoryQueue) Ready() <-chan struct{} { return q.ready }

// Stats implements Queue.
func (q *MemoryQueue) Stats() QueueStats {
	now := q.opts.Now()
	q.mu.Lock()
	events := q.expireLocked(nil, now)
	st := QueueStats{
		Len:       q.unacked,
		Bytes:     q.bytes,
		Appended:  q.appended,
		Acked:     q.acked,
		Dropped:   q.dropped,
		Committed: q.firstSeq - 1,
		LastSeq:   q.nextSeq - 1,
	}
	if q.n > 0 {
		st.OldestAge = now.Sub(q.ring[q.head].rec.Time)
	}
	events = q.maybeLogLocked(events, now) // drops held back by the rate limit
	q.mu.Unlock()
	q.report(events)
	return st
}

// Close implements Queue. Held records stay readable; drops not yet logged
// are logged now.
func (q *MemoryQueue) Close() error {
	q.mu.Lock()
	q.closed = true
	pending := q.pending
	q.pending = Drops{}
	q.mu.Unlock()
	if pending.Total() > 0 {
		q.logDrops(pending)
	}
	return nil
}

// --- internals (q.mu held) ---

func (q *MemoryQueue) atLocked(seq uint64) *qent {
	i := (q.head + int(seq-q.firstSeq)) & (len(q.ring) - 1)
	return &q.ring[i]
}

func (q *MemoryQueue) pushLocked(e qent) {
	if q.n == len(q.ring) {
		q.resizeLocked(max(16, 2*len(q.ring)))
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = e
	q.n++
}

func (q *MemoryQueue) resizeLocked(size int) {
	ring := make([]qent, size)
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)&(len(q.ring)-1)]
	}
	q.ring, q.head = ring, 0
}

// popFrontLocked removes the head record (unacknowledged: a drop).
func (q *MemoryQueue) popFrontLocked() {
	e := &q.ring[q.head]
	q.bytes -= e.size
	if !e.acked {
		q.unacked--
	}
	*e = qent{} // release the payload
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	q.firstSeq++
	if q.n == 0 {
		q.head = 0
	}
	if len(q.ring) > 64 && q.n < len(q.ring)/4 {
		q.resizeLocked(len(q.ring) / 2)
	}
}

// popAckedLocked releases the acknowledged prefix (the commit point moves).
func (q *MemoryQueue) popAckedLocked() {
	for q.n > 0 && q.ring[q.head].acked {
		q.popFrontLocked()
	}
}

func (q *MemoryQueue) expireLocked(events []dropEvent, now time.Time) []dropEvent {
	if q.opts.MaxAge < 0 {
		return events
	}
	expired := 0
	for q.n > 0 && now.Sub(q.ring[q.head].rec.Time) > q.opts.MaxAge {
		q.popFrontLocked()
		expired++
		q.popAckedLocked()
	}
	return q.dropLocked(events, DropExpired, expired, now)
}

// dropLocked counts n drops and, at most once per logInterval, moves the
// pending counts into a log event.
func (q *MemoryQueue) dropLocked(events []dropEvent, reason DropReason, n int, now time.Time) []dropEvent {
	if n <= 0 {
		return events
	}
	q.dropped.Add(reason, uint64(n))
	q.pending.Add(reason, uint64(n))
	events = append(events, dropEvent{reason: reason, n: n})
	return q.maybeLogLocked(events, now)
}

// maybeLogLocked adds a marker event (log the pending drop counts) when
// drops are pending and the last drop log line is at least logInterval old.
func (q *MemoryQueue) maybeLogLocked(events []dropEvent, now time.Time) []dropEvent {
	if q.pending.Total() == 0 || (!q.lastReport.IsZero() && now.Sub(q.lastReport) < logInterval) {
		return events
	}
	q.lastReport = now
	return append(events, dropEvent{reason: numDropReasons})
}

// report runs the OnDrop callback and the rate-limited log, outside the lock.
func (q *MemoryQueue) report(events []dropEvent) {
	for _, ev := range events {
		if ev.reason == numDropReasons {
			q.mu.Lock()
			pending := q.pending
			q.pending = Drops{}
			q.mu.Unlock()
			if pending.Total() > 0 {
				q.logDrops(pending)
			}
			continue
		}
		if q.opts.OnDrop != nil {
			q.opts.OnDrop(ev.reason, ev.n)
		}
	}
}

func (q *MemoryQueue) logDrops(d Drops) {
	LogDrops(q.opts.Log, d, q.opts.WhenFull, q.opts.MaxBytes, q.opts.MaxAge)
}

// LogDrops writes the offline queue's rate-limited drop report.
func LogDrops(log *slog.Logger, d Drops, whenFull WhenFull, maxBytes int64, maxAge time.Duration) {
	log.Warn("offline queue dropped messages",
		slog.Uint64("dropped", d.Total()),
		slog.Uint64("full", d.Full),
		slog.Uint64("expired", d.Expired),
		slog.Uint64("too_large", d.TooLarge),
		slog.Uint64("closed", d.Closed),
		slog.String("when_full", whenFull.String()),
		slog.Int64("max_bytes", maxBytes),
		slog.Duration("max_age", maxAge))
}
