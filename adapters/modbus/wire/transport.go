package wire

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Defaults used when an option or argument is zero.
const (
	// DefaultTimeout is the response timeout of a Do called with timeout <= 0.
	DefaultTimeout = time.Second
	// DefaultDialTimeout is TCPOptions.DialTimeout when zero.
	DefaultDialTimeout = 5 * time.Second
)

// readSlice bounds one blocking read, so that a cancelled context is noticed
// within about this long.
const readSlice = 50 * time.Millisecond

// Transport sends requests on one physical line. It is not safe for
// concurrent use: the caller serializes Do calls. Stats and Close may be
// called concurrently with Do.
type Transport interface {
	// Do sends req and waits at most timeout (DefaultTimeout if <= 0) for
	// its response. It returns *ExceptionError, an error wrapping
	// ErrTimeout, ErrCRC or ErrMalformed, ErrInvalidRequest for a request
	// that cannot be sent, a connection error, or ctx.Err() (wrapped).
	Do(ctx context.Context, req Request, timeout time.Duration) (Response, error)
	// Close closes the line. A Do running concurrently returns promptly
	// with an error; later Do calls fail with net.ErrClosed.
	Close() error
	// Stats returns a snapshot of the transport's counters.
	Stats() Stats
}

// Stats are a Transport's counters since it was created.
type Stats struct {
	Requests   uint64 // request frames written
	Responses  uint64 // answers received (valid responses and exceptions)
	Timeouts   uint64 // Do calls that ended in ErrTimeout
	CRCErrors  uint64 // Do calls that ended in ErrCRC
	Malformed  uint64 // Do calls that ended in ErrMalformed (short frames included)
	Exceptions uint64 // exception responses
	BytesOut   uint64 // bytes written to the line
	BytesIn    uint64 // bytes read from the line
	// Discarded counts the bytes drained or discarded: late replies,
	// garbage, frames for another unit or transaction id.
	Discarded  uint64
	Reconnects uint64 // connections re-established after a lost one (TCP)
}

// counters is the concurrency-safe storage behind Stats.
type counters struct {
	requests, responses, timeouts, crcErrors, malformed, exceptions atomic.Uint64
	bytesOut, bytesIn, discarded, reconnects                        atomic.Uint64
}

// snapshot returns the current values.
func (c *counters) snapshot() Stats {
	return Stats{
		Requests:   c.requests.Load(),
		Responses:  c.responses.Load(),
		Timeouts:   c.timeouts.Load(),
		CRCErrors:  c.crcErrors.Load(),
		Malformed:  c.malformed.Load(),
		Exceptions: c.exceptions.Load(),
		BytesOut:   c.bytesOut.Load(),
		BytesIn:    c.bytesIn.Load(),
		Discarded:  c.discarded.Load(),
		Reconnects: c.reconnects.Load(),
	}
}

// outcome counts the result of one answered or failed exchange.
func (c *counters) outcome(err error) {
	if err == nil {
		c.responses.Add(1)
		return
	}
	c.failure(err)
}

// failure counts a Do that ended in err (kept apart from outcome so that
// the success path does not allocate).
func (c *counters) failure(err error) {
	var exc *ExceptionError
	switch {
	case errors.As(err, &exc):
		c.responses.Add(1)
		c.exceptions.Add(1)
	case errors.Is(err, ErrTimeout):
		c.timeouts.Add(1)
	case errors.Is(err, ErrCRC):
		c.crcErrors.Add(1)
	case errors.Is(err, ErrMalformed):
		c.malformed.Add(1)
	}
}

// logger returns l, or a logger that discards everything when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
