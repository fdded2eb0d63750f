package main

import (
	"testing"
	"time"
)

func TestPacerSteadySchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(1000, start) // 1 ms apart
	for i := range 100 {
		got := p.reserve(start) // many workers asking at once
		if want := start.Add(time.Duration(i) * time.Millisecond); !got.Equal(want) {
			t.Fatalf("slot %d at %v, want %v", i, got.Sub(start), want.Sub(start))
		}
	}
}

func TestPacerLimitsCatchUpBurst(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(1000, start)
	p.reserve(start)
	// Nobody asked for a second: only 10 ms worth of slots may be in the past.
	now := start.Add(time.Second)
	first := p.reserve(now)
	if lag := now.Sub(first); lag != 10*time.Millisecond {
		t.Fatalf("first slot after stall lags %v, want 10ms", lag)
	}
	past := 1
	for p.reserve(now).Before(now) {
		past++
	}
	if past != 10 {
		t.Fatalf("%d slots in the past after a stall, want 10", past)
	}
}

func TestPacerLowRateBurstIsOneSlot(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(10, start) // 100 ms apart: burst must be one interval
	now := start.Add(time.Hour)
	if got := p.reserve(now); now.Sub(got) != 100*time.Millisecond {
		t.Fatalf("lag %v", now.Sub(got))
	}
	if got := p.reserve(now); !got.Equal(now) {
		t.Fatalf("second slot %v, want now", got.Sub(now))
	}
}
