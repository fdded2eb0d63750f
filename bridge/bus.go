package bridge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrBackpressure is returned when the bus is full and the producer
	// asked not to wait (or its wait ended).
	ErrBackpressure = errors.New("bus full: backpressure")
	// ErrClosed is returned when the bus no longer accepts frames.
	ErrClosed = errors.New("bus closed")
)

// Bus is a bounded FIFO of frames between the adapters (producers) and the
// pipeline (one consumer). It never grows: when it is full, TrySend refuses
// at once and Send waits until there is room or its context ends.
type Bus struct {
	ch     chan Frame
	mu     sync.RWMutex
	closed bool

	sent    atomic.Uint64
	refused atomic.Uint64
}

// NewBus returns a bus holding at most capacity frames.
func NewBus(capacity int) *Bus {
	if capacity < 1 {
		capacity = 1
	}
	return &Bus{ch: make(chan Frame, capacity)}
}

// TrySend enqueues f if there is room, else returns ErrBackpressure.
func (b *Bus) TrySend(f Frame) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	f.Received = time.Now()
	select {
	case b.ch <- f:
		b.sent.Add(1)
		return nil
	default:
		b.refused.Add(1)
		return ErrBackpressure
	}
}

// Send enqueues f, waiting for room until ctx ends; then it returns
// ErrBackpressure wrapped with the context's error.
func (b *Bus) Send(ctx context.Context, f Frame) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	f.Received = time.Now()
	select {
	case b.ch <- f:
		b.sent.Add(1)
		return nil
	default:
	}
	select {
	case b.ch <- f:
		b.sent.Add(1)
		return nil
	case <-ctx.Done():
		b.refused.Add(1)
		return errors.Join(ErrBackpressure, ctx.Err())
	}
}

// SendAndWait enqueues f (waiting for room until ctx ends) and then waits
// for its acknowledgement. It overrides f.Ack. It returns nil only when the
// frame was accepted downstream.
func (b *Bus) SendAndWait(ctx context.Context, f Frame) error {
	done := make(chan error, 1)
	f.Ack = func(err error) { done <- err }
	if err := b.Send(ctx, f); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The frame is on the bus and will still be processed; the caller
		// only stops waiting.
		return ctx.Err()
	}
}

// Frames is the consumer's side. It is closed by Close once every frame
// sent before has been received.
func (b *Bus) Frames() <-chan Frame { return b.ch }

// Close stops accepting frames. Frames already on the bus stay readable.
// Call it after every producer has stopped.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
}

// Len is the number of frames waiting.
func (b *Bus) Len() int { return len(b.ch) }

// Cap is the bus capacity.
func (b *Bus) Cap() int { return cap(b.ch) }

// BusStats are the bus counters.
type BusStats struct {
	Sent, Refused uint64
	Depth         int
}

// Stats returns a snapshot of the counters.
func (b *Bus) Stats() BusStats {
	return BusStats{Sent: b.sent.Load(), Refused: b.refused.Load(), Depth: len(b.ch)}
}
