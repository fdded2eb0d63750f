package app

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/causeway/causeway/adapters/coap"
	"github.com/causeway/causeway/adapters/modbus"
	"github.com/causeway/causeway/adapters/uart"
	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// adapterRun is one adapter block: the adapter built from it and, once
// started, what stops it and its command worker.
type adapterRun struct {
	name  string
	kind  string
	block any // the config block it was built from (compared on reload)
	ad    bridge.Adapter
	cmd   bridge.Commander // nil: the adapter takes no commands
	coap  *coap.Adapter
	mbus  *modbus.Adapter
	uart  *uart.Adapter

	mu    sync.Mutex
	stop  func() // stops the supervised adapter and its command worker
	cmdCh chan queuedCommand
}

// buildAdapters builds an adapter for every block of cfg. A block equal to
// the one an adapter in keep was built from reuses that adapter (a reload
// leaves it running).
func (a *App) buildAdapters(cfg *config.Config, keep []*adapterRun) ([]*adapterRun, error) {
	old := make(map[string]*adapterRun, len(keep))
	for _, r := range keep {
		old[r.name] = r
	}
	reuse := func(name, kind string, block any) *adapterRun {
		if r, ok := old[name]; ok && r.kind == kind && reflect.DeepEqual(r.block, block) {
			return r
		}
		return nil
	}
	var runs []*adapterRun
	for _, c := range cfg.CoAP {
		if r := reuse(c.Name, "coap", c); r != nil {
			runs = append(runs, r)
			continue
		}
		rl := coap.RateLimit{PerSecond: c.RateLimit, Burst: c.RateBurst}
		if c.RateLimit == 0 {
			rl.PerSecond = -1 // rate_limit = 0: no limit
		}
		ad, err := coap.New(c, coap.Deps{Log: a.log.With("adapter", c.Name), Availability: a.availability(c.Name), RateLimit: rl})
		if err != nil {
			return nil, fmt.Errorf("coap %q: %w", c.Name, err)
		}
		r := &adapterRun{name: c.Name, kind: "coap", block: c, ad: ad, coap: ad}
		if ad.HasCommandDevices() { // [[coap.device]] with a command_path
			r.cmd = ad
		}
		runs = append(runs, r)
	}
	for _, c := range cfg.Modbus {
		if r := reuse(c.Name, "modbus", c); r != nil {
			runs = append(runs, r)
			continue
		}
		ad, err := modbus.New(c, modbus.Deps{Log: a.log.With("adapter", c.Name), Availability: a.availability(c.Name)})
		if err != nil {
			return nil, fmt.Errorf("modbus %q: %w", c.Name, err)
		}
		runs = append(runs, &adapterRun{name: c.Name, kind: "modbus", block: c, ad: ad, cmd: ad, mbus: ad})
	}
	for _, c := range cfg.UART {
		if r := reuse(c.Name, "uart", c); r != nil {
			runs = append(runs, r)
			continue
		}
		ad, err := uart.New(c, uart.Deps{Log: a.log.With("adapter", c.Name), Availability: a.availability(c.Name)})
		if err != nil {
			return nil, fmt.Errorf("uart %q: %w", c.Name, err)
		}
		runs = append(runs, &adapterRun{name: c.Name, kind: "uart", block: c, ad: ad, cmd: ad, uart: ad})
	}
	return runs, nil
}

// startAdapter runs r under the supervisor, and its command worker, until
// ctx ends or r.stopRun is called. firstReady is called once r serves.
func (a *App) startAdapter(ctx context.Context, r *adapterRun, firstReady func()) {
	stopAd := a.sup.Start(ctx, a.bus, r.ad, firstReady)
	stopCmd := func() {}
	if r.cmd != nil {
		ch := make(chan queuedCommand, commandQueue)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.commandWorker(cctx, r.cmd, ch)
		}()
		stopCmd = func() {
			cancel()
			<-done
			// Commands still waiting get an answer rather than silence.
			for {
				select {
				case qc := <-ch:
					a.publishResult(qc.cmd.Adapter, qc.cmd.Device, nil, fmt.Errorf("adapter %s stopped before the command ran", r.name), qc.reply)
				default:
					return
				}
			}
		}
		r.mu.Lock()
		r.cmdCh = ch
		r.mu.Unlock()
	}
	var once sync.Once
	r.mu.Lock()
	r.stop = func() {
		once.Do(func() {
			r.mu.Lock()
			r.cmdCh = nil
			r.mu.Unlock()
			stopAd()
			stopCmd()
		})
	}
	r.mu.Unlock()
}

// started reports whether startAdapter ran for r.
func (r *adapterRun) started() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop != nil
}

// stopRun stops the adapter and its command worker, if started, and waits
// for both.
func (r *adapterRun) stopRun() {
	r.mu.Lock()
	stop := r.stop
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// offer queues cmd for r's command worker without waiting. running is
// false when r takes no commands or is not running; full when its queue is
// full.
func (r *adapterRun) offer(cmd queuedCommand) (running, full bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmdCh == nil {
		return false, false
	}
	select {
	case r.cmdCh <- cmd:
		return true, false
	default:
		return true, true
	}
}

// adapterNamed returns the running adapter block called name, or nil.
func (a *App) adapterNamed(name string) *adapterRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.adapters {
		if r.name == name {
			return r
		}
	}
	return nil
}
