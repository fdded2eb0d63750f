// Package app assembles a gateway from its configuration: the built-in
// broker, the uplink, the mapping engine, the bus, the pipeline between
// them and the supervised adapters, and runs it until its context ends.
//
// It holds wiring and lifecycle only. It must never speak a device protocol
// or encode a payload itself: that belongs to the adapters and to mapping.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/metrics"
	"github.com/causeway/causeway/mapping"
	"github.com/causeway/causeway/mqttcore"
	"github.com/causeway/causeway/queue"
)

// BusCapacity is the number of frames the bus holds between the adapters
// and the pipeline. Beyond it, producers get backpressure.
const BusCapacity = 4096

// Options tune an App beyond the configuration file.
type Options struct {
	// DrainTimeout bounds how long shutdown waits for the uplink to flush
	// its queue before disconnecting. Default 1s.
	DrainTimeout time.Duration
	// Version is reported by the metrics (causeway_build_info).
	Version string
	// SetLogging applies a reloaded log_level and log_format. Nil: a
	// reload that changes them is refused (they need a restart).
	SetLogging func(level, format string) error
	// ConfigPath is the configuration file ReloadFile reads again (on
	// SIGHUP, and for POST /-/reload on the HTTP listener). "": reloading
	// from a file is not available.
	ConfigPath string
}

// App is one running gateway.
type App struct {
	log  *slog.Logger
	opts Options
	gw   string // the gateway id: fixed for the life of the App

	// cfg is the configuration in force; Reload replaces it.
	cfg atomic.Pointer[config.Config]
	// engine maps frames to messages; Reload swaps it between two frames.
	engine  atomic.Pointer[mapping.Engine]
	bus     *bridge.Bus
	sup     *bridge.Supervisor
	metrics *metrics.Metrics

	// reloadMu serializes Reload with itself and with Run's start and
	// shutdown.
	reloadMu sync.Mutex
	// runCtx is the context adapters and command workers run under; nil
	// until Run has started the sources, and again after shutdown began.
	runCtx context.Context

	mu       sync.Mutex
	adapters []*adapterRun // in configuration order
	broker   mqttcore.Broker
	up       *uplinkRun
	http     *httpServer
	// ready is set once every adapter of the first configuration reported
	// ready (/readyz).
	ready atomic.Bool
	// availSeen: the devices each adapter reported availability for.
	availMu   sync.Mutex
	availSeen map[string]map[string]bool
	// ha announces points to Home Assistant; nil when disabled. haOnline
	// takes Home Assistant's "online" birth messages.
	ha       *discovery
	haOnline chan struct{}
	// statsReset wakes the stats loop after a reload changed stats_interval.
	statsReset chan struct{}

	// sinkMu: delivering holds it for reading, so that a reload swapping
	// the uplink knows no message is being handed to the old one.
	sinkMu sync.RWMutex
	// out is where the pipeline, availability and command results go once
	// Run has started the sinks.
	out atomic.Pointer[sinks]
	// cmdIn takes command messages (from the built-in broker and the
	// uplink) once the command dispatcher runs.
	cmdIn atomic.Pointer[func(r mqttcore.Request, viaUplink bool)]
}

// New validates the assembly (no I/O): it builds the mapping engine and the
// adapters from cfg.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*App, error) {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = time.Second
	}
	a := &App{
		log: log, opts: opts, gw: cfg.Gateway.ID,
		bus:        bridge.NewBus(BusCapacity),
		sup:        bridge.NewSupervisor(log, bridge.Backoff{Min: 500 * time.Millisecond, Max: time.Minute}),
		statsReset: make(chan struct{}, 1),
	}
	engine, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	runs, err := a.buildAdapters(cfg, nil)
	if err != nil {
		return nil, err
	}
	a.cfg.Store(cfg)
	a.engine.Store(engine)
	a.adapters = runs
	a.ha = newDiscovery(a, cfg)
	a.haOnline = make(chan struct{}, 1)
	a.metrics = metrics.New(a.snapshot, metrics.Options{Version: opts.Version})
	return a, nil
}

// newEngine builds the mapping engine of cfg's routes.
func newEngine(cfg *config.Config) (*mapping.Engine, error) {
	routes := make([]mapping.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, mapping.Route{
			Match: r.Match, Topic: r.Topic, Payload: r.Payload, QoS: byte(r.QoS),
			Retain: r.Retain, Uplink: r.Uplink, Drop: r.Drop,
			Deadband: r.Deadband, MinInterval: r.MinInterval.D(), MaxInterval: r.MaxInterval.D(),
		})
	}
	engine, err := mapping.New(cfg.Gateway.ID, routes)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return engine, nil
}

// Config returns the configuration in force.
func (a *App) Config() *config.Config { return a.cfg.Load() }

// Metrics returns the gateway's metrics (what /metrics serves).
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

func (a *App) statusTopic() string { return a.gw + "/status" }

// Run starts the gateway and serves until ctx ends, then shuts down in
// order: adapters (sources) first, then the pipeline drains the bus, then
// the uplink flushes (bounded by DrainTimeout) and the broker stops.
// ready, if not nil, is called once every adapter is serving.
func (a *App) Run(ctx context.Context, ready func()) error {
	cfg := a.cfg.Load()
	// Sinks first.
	if cfg.Broker.Enabled {
		b, err := startBroker(cfg, a.log)
		if err != nil {
			return fmt.Errorf("built-in broker: %w", err)
		}
		a.mu.Lock()
		a.broker = b
		a.mu.Unlock()
		if err := b.Publish(a.statusTopic(), []byte("online"), 1, true); err != nil {
			_ = b.Close()
			return fmt.Errorf("built-in broker: publish status: %w", err)
		}
		if addr := b.Addr(); addr != nil {
			a.log.Info("built-in broker listening", "addr", addr.String())
		}
	}

	if cfg.Uplink != nil {
		up, err := a.newUplink(cfg, nil)
		if err != nil {
			a.stopBroker()
			return err
		}
		a.mu.Lock()
		a.up = up
		a.mu.Unlock()
		up.start(ctx)
	}

	// The pipeline: one consumer keeps frames in order.
	a.storeSinks()
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		a.pipeline()
	}()

	if cfg.HTTP != nil {
		h, err := a.startHTTP(cfg.HTTP.Listen)
		if err != nil {
			a.log.Error("HTTP listener disabled", "err", err)
		} else {
			a.mu.Lock()
			a.http = h
			a.mu.Unlock()
		}
	}

	// Sources last.
	srcCtx, srcCancel := context.WithCancel(ctx)
	defer srcCancel()
	cmdDone, err := a.startCommands(srcCtx)
	if err != nil {
		a.log.Error("commands disabled", "err", err)
	}
	haDone := a.startDiscovery(srcCtx)
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		a.statsLoop(srcCtx)
	}()

	a.reloadMu.Lock()
	a.runCtx = srcCtx
	a.mu.Lock()
	runs := append([]*adapterRun(nil), a.adapters...)
	a.mu.Unlock()
	var pending atomic.Int64
	pending.Store(int64(len(runs)))
	allReady := func() {
		a.ready.Store(true)
		a.log.Info("gateway ready", a.readyAttrs()...)
		if ready != nil {
			ready()
		}
	}
	if len(runs) == 0 {
		allReady()
	}
	for _, r := range runs {
		a.startAdapter(srcCtx, r, func() {
			if pending.Add(-1) == 0 {
				allReady()
			}
		})
	}
	a.reloadMu.Unlock()

	<-ctx.Done()
	a.log.Info("shutting down")
	a.reloadMu.Lock() // no reload from here on
	a.runCtx = nil
	srcCancel()
	a.mu.Lock()
	runs = append(runs[:0], a.adapters...)
	a.mu.Unlock()
	for _, r := range runs {
		r.stopRun() // every adapter has returned: nothing sends any more
	}
	<-statsDone
	haDone()
	cmdDone()
	a.bus.Close()
	<-pipeDone // every frame on the bus is published or queued

	a.mu.Lock()
	up, h := a.up, a.http
	a.mu.Unlock()
	if up != nil {
		up.stop(a.opts.DrainTimeout)
		up.closeQueue()
	}
	if h != nil {
		h.close()
	}
	a.stopBroker()
	a.reloadMu.Unlock()
	a.log.Info("stopped")
	return nil
}

// openQueue opens the durable offline queue in data_dir/queue.
func (a *App) openQueue(cfg *config.Config) (*queue.Queue, error) {
	qc := cfg.Queue
	whenFull, err := mqttcore.ParseWhenFull(qc.WhenFull)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	fsync, err := queue.ParseFsync(qc.Fsync)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q, err := queue.Open(filepath.Join(cfg.Gateway.DataDir, "queue"), queue.Options{
		MaxBytes:      int64(qc.MaxBytes),
		MaxAge:        qc.MaxAge.D(),
		WhenFull:      whenFull,
		Fsync:         fsync,
		FsyncInterval: qc.FsyncInterval.D(),
		Log:           a.log.With("component", "queue"),
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return q, nil
}

func (a *App) stopBroker() {
	a.mu.Lock()
	b := a.broker
	a.mu.Unlock()
	if b == nil {
		return
	}
	if err := b.Publish(a.statusTopic(), []byte("offline"), 1, true); err != nil {
		a.log.Warn("publish offline status", "err", err)
	}
	if err := b.Close(); err != nil {
		a.log.Warn("broker close", "err", err)
	}
}

func (a *App) readyAttrs() []any {
	attrs := []any{"gateway", a.gw}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.adapters {
		if r.coap != nil {
			if addr := r.coap.Addr(); addr != nil {
				attrs = append(attrs, r.name, addr.String())
			}
		}
	}
	return attrs
}

// pipeline maps every frame and hands its messages to the sinks. The
// frame is acknowledged once every message is published on the built-in
// broker and accepted by the offline queue for the uplink (durable by the
// queue's fsync policy), or with the reasons it was not. It loads the
// engine per frame, so a reload swaps the routes between two frames.
func (a *App) pipeline() {
	m := a.metrics
	// pump maps frames and, for report-by-exception routes, sends held
	// values and heartbeats from its timer, in one goroutine so that a
	// heartbeat never overtakes a newer value (app/rbe.go).
	pump(a.bus.Frames(), a.engine.Load, a.deliver, func(f *bridge.Frame, engine *mapping.Engine) {
		if a.ha != nil {
			a.ha.observe(f, engine)
		}
		m.Frame(f.Adapter, f.Device)
		if !f.Received.IsZero() {
			m.ObserveLatency(time.Since(f.Received))
		}
	})
}

// sinks are where the pipeline hands messages; either may be nil.
type sinks struct {
	broker mqttcore.Broker
	uplink mqttcore.Uplink
}

// storeSinks publishes the current broker and uplink to the deliverers.
func (a *App) storeSinks() {
	a.mu.Lock()
	s := sinks{broker: a.broker}
	if a.up != nil {
		s.uplink = a.up.up
	}
	a.mu.Unlock()
	a.out.Store(&s)
}

// deliver hands msgs to the current sinks (nothing before Run started
// them) and calls ack, if not nil, with the outcome.
func (a *App) deliver(msgs []bridge.Message, ack bridge.AckFunc) {
	a.sinkMu.RLock()
	defer a.sinkMu.RUnlock()
	s := a.out.Load()
	if s == nil {
		if ack != nil {
			ack(errors.New("gateway not running"))
		}
		return
	}
	s.deliver(msgs, ack)
}

// deliver publishes msgs and calls ack (if not nil) with the outcome, at
// once or, when messages went to the uplink queue, from the queue once
// they are durable.
func (s sinks) deliver(msgs []bridge.Message, ack bridge.AckFunc) {
	broker, up := s.broker, s.uplink
	var errs []error
	var pend *pendingAck
	for _, m := range msgs {
		if broker != nil {
			if err := broker.Publish(m.Topic, m.Payload, m.QoS, m.Retain); err != nil {
				errs = append(errs, fmt.Errorf("built-in broker: %s: %w", m.Topic, err))
			}
		}
		if m.Uplink && up != nil {
			var done func(error)
			if ack != nil {
				if pend == nil {
					pend = &pendingAck{ack: ack}
					pend.n.Store(1)
				}
				pend.add()
				done = pend.done
			}
			if err := up.Enqueue(m, done); err != nil {
				if done != nil {
					pend.n.Add(-1)
				}
				if errors.Is(err, mqttcore.ErrQueueFull) {
					// A full queue with when_full = drop_newest: the
					// producer should retry later (CoAP 5.03).
					err = fmt.Errorf("%w: %w", bridge.ErrBackpressure, err)
				}
				errs = append(errs, fmt.Errorf("uplink queue: %s: %w", m.Topic, err))
			}
		}
	}
	if pend == nil {
		if ack != nil {
			ack(errors.Join(errs...))
		}
		return
	}
	pend.finish(errs)
}

// pendingAck acknowledges a frame once every one of its uplink messages is
// durable. n starts at one for the pipeline itself, so the frame cannot be
// acknowledged before all its messages are handed over.
type pendingAck struct {
	ack  bridge.AckFunc
	n    atomic.Int32
	mu   sync.Mutex
	errs []error
}

func (p *pendingAck) add() { p.n.Add(1) }

func (p *pendingAck) done(err error) {
	if err != nil {
		p.mu.Lock()
		p.errs = append(p.errs, fmt.Errorf("uplink queue: %w", err))
		p.mu.Unlock()
	}
	p.release()
}

func (p *pendingAck) finish(errs []error) {
	if len(errs) > 0 {
		p.mu.Lock()
		p.errs = append(p.errs, errs...)
		p.mu.Unlock()
	}
	p.release()
}

func (p *pendingAck) release() {
	if p.n.Add(-1) != 0 {
		return
	}
	p.mu.Lock()
	err := errors.Join(p.errs...)
	p.mu.Unlock()
	p.ack(err)
}

// Broker returns the built-in broker once Run has started it (nil if
// disabled).
func (a *App) Broker() mqttcore.Broker {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.broker
}

// BrokerAddr is the built-in broker's TCP address, or nil.
func (a *App) BrokerAddr() net.Addr {
	if b := a.Broker(); b != nil {
		return b.Addr()
	}
	return nil
}

// HTTPAddr is the HTTP listener's address, or nil.
func (a *App) HTTPAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.http == nil {
		return nil
	}
	return a.http.addr()
}

// CoAPAddrs returns the bound UDP address of each CoAP adapter, by name.
func (a *App) CoAPAddrs() map[string]net.Addr {
	out := map[string]net.Addr{}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.adapters {
		if r.coap != nil {
			out[r.name] = r.coap.Addr()
		}
	}
	return out
}
