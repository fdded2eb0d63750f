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

	"github.com/causeway/causeway/adapters/coap"
	"github.com/causeway/causeway/adapters/modbus"
	"github.com/causeway/causeway/adapters/uart"
	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
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
}

// App is one running gateway.
type App struct {
	cfg  *config.Config
	log  *slog.Logger
	opts Options

	engine   *mapping.Engine
	bus      *bridge.Bus
	sup      *bridge.Supervisor
	adapters []bridge.Adapter
	coaps    []*coap.Adapter
	// commanders are the adapters that execute commands, by name.
	commanders map[string]bridge.Commander

	mu     sync.Mutex
	broker mqttcore.Broker
	uplink mqttcore.Uplink
	// out is where availability and command results go once Run has
	// started the sinks.
	out atomic.Pointer[sinks]
	// cmdIn takes command messages (from the built-in broker and the
	// uplink) once the command dispatcher runs.
	cmdIn atomic.Pointer[func(topic string, payload []byte)]
}

// New validates the assembly (no I/O): it builds the mapping engine and the
// adapters from cfg.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*App, error) {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = time.Second
	}
	routes := make([]mapping.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, mapping.Route{
			Match: r.Match, Topic: r.Topic, Payload: r.Payload, QoS: byte(r.QoS),
			Retain: r.Retain, Uplink: r.Uplink, Drop: r.Drop,
		})
	}
	engine, err := mapping.New(cfg.Gateway.ID, routes)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	a := &App{
		cfg: cfg, log: log, opts: opts, engine: engine,
		bus:        bridge.NewBus(BusCapacity),
		sup:        bridge.NewSupervisor(log, bridge.Backoff{Min: 500 * time.Millisecond, Max: time.Minute}),
		commanders: map[string]bridge.Commander{},
	}
	for _, c := range cfg.CoAP {
		rl := coap.RateLimit{PerSecond: c.RateLimit, Burst: c.RateBurst}
		if c.RateLimit == 0 {
			rl.PerSecond = -1 // rate_limit = 0: no limit
		}
		ad, err := coap.New(c, coap.Deps{Log: log.With("adapter", c.Name), Availability: a.availability(c.Name), RateLimit: rl})
		if err != nil {
			return nil, fmt.Errorf("coap %q: %w", c.Name, err)
		}
		a.adapters = append(a.adapters, ad)
		a.coaps = append(a.coaps, ad)
		if ad.HasCommandDevices() { // [[coap.device]] with a command_path
			a.commanders[c.Name] = ad
		}
	}
	for _, c := range cfg.Modbus {
		ad, err := modbus.New(c, modbus.Deps{Log: log.With("adapter", c.Name), Availability: a.availability(c.Name)})
		if err != nil {
			return nil, fmt.Errorf("modbus %q: %w", c.Name, err)
		}
		a.adapters = append(a.adapters, ad)
		a.commanders[c.Name] = ad
	}
	for _, c := range cfg.UART {
		ad, err := uart.New(c, uart.Deps{Log: log.With("adapter", c.Name), Availability: a.availability(c.Name)})
		if err != nil {
			return nil, fmt.Errorf("uart %q: %w", c.Name, err)
		}
		a.adapters = append(a.adapters, ad)
		a.commanders[c.Name] = ad
	}
	return a, nil
}

func (a *App) statusTopic() string { return a.cfg.Gateway.ID + "/status" }

// Run starts the gateway and serves until ctx ends, then shuts down in
// order: adapters (sources) first, then the pipeline drains the bus, then
// the uplink flushes (bounded by DrainTimeout) and the broker stops.
// ready, if not nil, is called once every adapter is serving.
func (a *App) Run(ctx context.Context, ready func()) error {
	// Sinks first.
	if a.cfg.Broker.Enabled {
		b, err := mqttcore.StartBroker(mqttcore.BrokerOptions{
			Listen: a.cfg.Broker.Listen,
			Log:    a.log,
		})
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

	var upWG sync.WaitGroup
	upCtx, upCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer upCancel()
	if u := a.cfg.Uplink; u != nil {
		q, err := a.openQueue()
		if err != nil {
			a.stopBroker()
			return err
		}
		defer func() {
			if err := q.Close(); err != nil {
				a.log.Error("offline queue close", "err", err)
			}
		}()
		uo := mqttcore.UplinkOptions{
			URL: u.URL, ClientID: u.ClientID, Username: u.Username, Password: string(u.Password),
			CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile,
			Keepalive:   u.Keepalive.D(),
			TopicPrefix: u.TopicPrefix,
			StatusTopic: a.statusTopic(),
			Queue:       q,
			Inflight:    a.cfg.Queue.Inflight,
			Log:         a.log, // mqttcore adds component=uplink
		}
		if u.SubscribeCommands && len(a.commanders) > 0 {
			uo.Subscriptions = mapping.CommandFilters(a.cfg.Gateway.ID)
			uo.OnMessage = func(topic string, payload []byte) {
				if in := a.cmdIn.Load(); in != nil {
					(*in)(topic, payload)
				}
			}
		}
		up, err := mqttcore.NewUplink(uo)
		if err != nil {
			a.stopBroker()
			return fmt.Errorf("uplink: %w", err)
		}
		a.mu.Lock()
		a.uplink = up
		a.mu.Unlock()
		upWG.Add(1)
		go func() {
			defer upWG.Done()
			if err := up.Run(upCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("uplink stopped", "err", err)
			}
		}()
	}

	// The pipeline: one consumer keeps frames in order. The sinks are fixed
	// from here on, so it takes them once rather than per frame.
	a.mu.Lock()
	sinks := sinks{broker: a.broker, uplink: a.uplink}
	a.mu.Unlock()
	a.out.Store(&sinks)
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		a.pipeline(sinks)
	}()

	// Sources last.
	srcCtx, srcCancel := context.WithCancel(ctx)
	defer srcCancel()
	cmdDone, err := a.startCommands(srcCtx)
	if err != nil {
		a.log.Error("commands disabled", "err", err)
	}
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		a.sup.Run(srcCtx, a.bus, a.adapters, func() {
			a.log.Info("gateway ready", a.readyAttrs()...)
			if ready != nil {
				ready()
			}
		})
	}()

	<-ctx.Done()
	a.log.Info("shutting down")
	srcCancel()
	<-supDone // every adapter has returned: nothing sends any more
	cmdDone()
	a.bus.Close()
	<-pipeDone // every frame on the bus is published or queued

	a.mu.Lock()
	up := a.uplink
	a.mu.Unlock()
	if up != nil {
		dctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
		if err := up.Close(dctx); err != nil {
			a.log.Warn("uplink close", "err", err)
		}
		cancel()
	}
	upCancel()
	upWG.Wait()
	a.stopBroker()
	a.log.Info("stopped")
	return nil
}

// openQueue opens the durable offline queue in data_dir/queue.
func (a *App) openQueue() (*queue.Queue, error) {
	qc := a.cfg.Queue
	whenFull, err := mqttcore.ParseWhenFull(qc.WhenFull)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	fsync, err := queue.ParseFsync(qc.Fsync)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q, err := queue.Open(filepath.Join(a.cfg.Gateway.DataDir, "queue"), queue.Options{
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
	attrs := []any{"gateway", a.cfg.Gateway.ID}
	for _, c := range a.coaps {
		if addr := c.Addr(); addr != nil {
			attrs = append(attrs, c.Name(), addr.String())
		}
	}
	return attrs
}

// pipeline maps every frame and hands its messages to the sinks. The
// frame is acknowledged once every message is published on the built-in
// broker and accepted by the offline queue for the uplink (durable by the
// queue's fsync policy), or with the reasons it was not.
func (a *App) pipeline(s sinks) {
	msgs := make([]bridge.Message, 0, 16)
	for f := range a.bus.Frames() {
		msgs = a.engine.Map(&f, msgs[:0])
		s.deliver(msgs, f.Ack)
	}
}

// sinks are where the pipeline hands messages; either may be nil.
type sinks struct {
	broker mqttcore.Broker
	uplink mqttcore.Uplink
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

// CoAPAddrs returns the bound UDP address of each CoAP adapter, by name.
func (a *App) CoAPAddrs() map[string]net.Addr {
	out := map[string]net.Addr{}
	for _, c := range a.coaps {
		out[c.Name()] = c.Addr()
	}
	return out
}
