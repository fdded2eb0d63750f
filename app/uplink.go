package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/mapping"
	"github.com/causeway/causeway/mqttcore"
	"github.com/causeway/causeway/queue"
)

// uplinkRun is the uplink client and the offline queue it sends from. A
// reload that changes [uplink] replaces the client and keeps the queue.
type uplinkRun struct {
	up   mqttcore.Uplink
	q    *queue.Queue
	a    *App
	once sync.Once

	cancel context.CancelFunc
	done   chan struct{}
}

// newUplink builds the uplink client of cfg (no I/O). It sends from q, or
// from the queue it opens in data_dir when q is nil.
func (a *App) newUplink(cfg *config.Config, q *queue.Queue) (*uplinkRun, error) {
	u := cfg.Uplink
	ownQueue := false
	if q == nil {
		var err error
		if q, err = a.openQueue(cfg); err != nil {
			return nil, err
		}
		ownQueue = true
	}
	uo := mqttcore.UplinkOptions{
		URL: u.URL, ClientID: u.ClientID, Username: u.Username, Password: string(u.Password),
		CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile,
		Keepalive:   u.Keepalive.D(),
		TopicPrefix: u.TopicPrefix,
		StatusTopic: a.statusTopic(),
		Queue:       q,
		Inflight:    cfg.Queue.Inflight,
		Protocol:    u.Protocol,
		Log:         a.log, // mqttcore adds component=uplink
	}
	if u.SubscribeCommands {
		// Commands for adapters that take none get an error result: the
		// subscription does not depend on which adapters run, so a reload
		// that adds one needs no new connection.
		uo.Subscriptions = mapping.CommandFilters(a.gw)
	}
	if a.ha != nil {
		// Home Assistant may use the uplink broker: its birth message
		// asks for the discovery messages again.
		uo.Subscriptions = append(uo.Subscriptions, a.ha.statusTopic())
	}
	if len(uo.Subscriptions) > 0 {
		uo.OnRequest = a.fromUplink
		uo.OnMessage = func(topic string, payload []byte) { // MQTT 3.1.1
			a.fromUplink(mqttcore.Request{Topic: topic, Payload: payload})
		}
	}
	up, err := mqttcore.NewUplink(uo)
	if err != nil {
		if ownQueue {
			_ = q.Close()
		}
		return nil, fmt.Errorf("uplink: %w", err)
	}
	return &uplinkRun{up: up, q: q, a: a}, nil
}

// start runs the uplink client until stop. Its context is detached from
// ctx's cancellation: shutdown closes the uplink in order (flush, offline
// status) before its connection ends.
func (r *uplinkRun) start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		if err := r.up.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			r.a.log.Error("uplink stopped", "err", err)
		}
	}()
}

// stop closes the client, waiting at most drain for what is in flight to
// be acknowledged (the rest stays in the queue), and waits for it to end.
// The queue stays open.
func (r *uplinkRun) stop(drain time.Duration) {
	r.once.Do(func() {
		dctx, cancel := context.WithTimeout(context.Background(), drain)
		if err := r.up.Close(dctx); err != nil {
			r.a.log.Warn("uplink close", "err", err)
		}
		cancel()
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	})
}

// closeQueue closes the offline queue (after stop).
func (r *uplinkRun) closeQueue() {
	if err := r.q.Close(); err != nil {
		r.a.log.Error("offline queue close", "err", err)
	}
}

// fromUplink takes a message that arrived on one of the uplink's
// subscriptions: Home Assistant's status or a command.
func (a *App) fromUplink(r mqttcore.Request) {
	if a.ha != nil && r.Topic == a.ha.statusTopic() {
		a.homeAssistantStatus(r.Payload)
		return
	}
	if in := a.cmdIn.Load(); in != nil {
		(*in)(r, true)
	}
}
