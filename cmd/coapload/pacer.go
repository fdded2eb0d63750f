package main

import (
	"context"
	"sync"
	"time"
)

// pacer spreads sends evenly over time for all workers together: a token
// bucket (GCRA form) with a rate and a small burst allowance. Each call to
// wait reserves the next slot of a shared schedule and sleeps until it. A
// worker that falls behind may catch up by at most burst, so a stall does
// not turn into a long burst later.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	burst    time.Duration
	next     time.Time
}

func newPacer(rate float64, start time.Time) *pacer {
	iv := time.Duration(float64(time.Second) / rate)
	if iv <= 0 {
		iv = 1
	}
	// Allow catching up 10 ms worth of sends, and at least one.
	burst := 10 * time.Millisecond
	if burst < iv {
		burst = iv
	}
	return &pacer{interval: iv, burst: burst, next: start}
}

// reserve returns the time at which the caller may send, given the time now.
func (p *pacer) reserve(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if earliest := now.Add(-p.burst); p.next.Before(earliest) {
		p.next = earliest
	}
	t := p.next
	p.next = p.next.Add(p.interval)
	return t
}

// wait blocks until the caller's slot, or until ctx is done.
func (p *pacer) wait(ctx context.Context, timer *time.Timer) error {
	d := time.Until(p.reserve(time.Now()))
	if d <= 0 {
		return ctx.Err()
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	}
}
