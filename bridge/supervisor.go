package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Adapter is one protocol adapter instance (one config block). It holds
// protocol code only: the Supervisor owns restarts, backoff and logging
// context.
type Adapter interface {
	// Name is the adapter block's name, the {adapter} in topics.
	Name() string
	// Kind is the protocol: "coap", "modbus", "uart".
	Kind() string
	// Run serves until ctx ends (then it returns nil after releasing every
	// resource) or until it fails (then it returns the error and the
	// Supervisor restarts it after a backoff). It sends frames to bus.
	// Run must call ready() once it is serving (listeners bound, ports open).
	Run(ctx context.Context, bus *Bus, ready func()) error
}

// Backoff is an exponential backoff with full jitter.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before attempt n (n >= 1 is the first retry).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	// Jitter in [d/2, d] so a fleet of gateways does not retry in lockstep.
	return d/2 + rand.N(d/2+1)
}

// AdapterState is what the supervisor knows of one adapter.
type AdapterState struct {
	Name     string
	Kind     string
	Running  bool // Run is active and has called ready
	Restarts uint64
	LastErr  string
}

// Supervisor runs adapters, restarts a failed one with exponential backoff
// and logs why. It stops them all when its context ends.
type Supervisor struct {
	log     *slog.Logger
	backoff Backoff
	// HealthyAfter: an adapter that ran this long before failing starts
	// again from the shortest backoff.
	healthyAfter time.Duration

	mu     sync.Mutex
	states map[string]*adapterState
}

type adapterState struct {
	kind     string
	running  atomic.Bool
	restarts atomic.Uint64
	lastErr  atomic.Pointer[string]
}

// NewSupervisor returns a supervisor. A zero backoff means 500ms..60s.
func NewSupervisor(log *slog.Logger, backoff Backoff) *Supervisor {
	if backoff.Min <= 0 {
		backoff.Min = 500 * time.Millisecond
	}
	if backoff.Max <= 0 {
		backoff.Max = 60 * time.Second
	}
	return &Supervisor{log: log, backoff: backoff, healthyAfter: 30 * time.Second, states: map[string]*adapterState{}}
}

// Run starts every adapter and blocks until ctx ends and every adapter has
// returned. allReady, if not nil, is called once every adapter has reported
// ready for the first time.
func (s *Supervisor) Run(ctx context.Context, bus *Bus, adapters []Adapter, allReady func()) {
	var pending atomic.Int64
	pending.Store(int64(len(adapters)))
	if len(adapters) == 0 && allReady != nil {
		allReady()
	}
	stops := make([]func(), 0, len(adapters))
	for _, a := range adapters {
		stops = append(stops, s.Start(ctx, bus, a, func() {
			if pending.Add(-1) == 0 && allReady != nil {
				allReady()
			}
		}))
	}
	<-ctx.Done()
	for _, stop := range stops {
		stop()
	}
}

// Start runs a under supervision (restarted with backoff when it fails)
// until ctx ends or stop is called. firstReady, if not nil, is called once,
// the first time a reports ready. stop cancels a, waits until its Run has
// returned and forgets its state; it may be called more than once. An
// adapter whose name is already supervised replaces that entry's state:
// stop the old one first.
func (s *Supervisor) Start(ctx context.Context, bus *Bus, a Adapter, firstReady func()) (stop func()) {
	st := &adapterState{kind: a.Kind()}
	s.mu.Lock()
	s.states[a.Name()] = st
	s.mu.Unlock()
	var once sync.Once
	ready := func() {
		once.Do(func() {
			if firstReady != nil {
				firstReady()
			}
		})
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.loop(actx, bus, a, st, ready)
	}()
	return func() {
		cancel()
		<-done
		s.mu.Lock()
		if s.states[a.Name()] == st {
			delete(s.states, a.Name())
		}
		s.mu.Unlock()
	}
}

func (s *Supervisor) loop(ctx context.Context, bus *Bus, a Adapter, st *adapterState, firstReady func()) {
	log := s.log.With("adapter", a.Name(), "kind", a.Kind())
	failures := 0
	for {
		start := time.Now()
		err := s.runOnce(ctx, bus, a, st, firstReady)
		st.running.Store(false)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("adapter stopped with error", "err", err)
			} else {
				log.Debug("adapter stopped")
			}
			return
		}
		if err == nil {
			err = errors.New("returned without error before shutdown")
		}
		if time.Since(start) >= s.healthyAfter {
			failures = 0
		}
		failures++
		delay := s.backoff.Delay(failures)
		msg := err.Error()
		st.lastErr.Store(&msg)
		st.restarts.Add(1)
		log.Error("adapter failed, restarting", "err", err, "attempt", failures, "backoff", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Supervisor) runOnce(ctx context.Context, bus *Bus, a Adapter, st *adapterState, firstReady func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return a.Run(ctx, bus, func() {
		st.running.Store(true)
		firstReady()
	})
}

// States returns a snapshot of every adapter's state.
func (s *Supervisor) States() []AdapterState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AdapterState, 0, len(s.states))
	for name, st := range s.states {
		as := AdapterState{Name: name, Kind: st.kind, Running: st.running.Load(), Restarts: st.restarts.Load()}
		if e := st.lastErr.Load(); e != nil {
			as.LastErr = *e
		}
		out = append(out, as)
	}
	slices.SortFunc(out, func(a, b AdapterState) int { return strings.Compare(a.Name, b.Name) })
	return out
}
