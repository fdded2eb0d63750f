package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mapping"
	"github.com/causeway/causeway/mqttcore"
)

// Command handling bounds.
const (
	// commandQueue is how many commands may wait per adapter; beyond it a
	// command is refused at once with an error result.
	commandQueue = 64
	// commandTimeout bounds one command (writes and read-back).
	commandTimeout = 30 * time.Second
)

// startCommands subscribes to the command topics on the built-in broker
// (and takes those the uplink receives with subscribe_commands) and
// dispatches them to the command worker of their adapter (started with the
// adapter), which runs them in arrival order. The returned function waits
// for the dispatcher after ctx ended.
func (a *App) startCommands(ctx context.Context) (wait func(), err error) {
	b := a.Broker()
	var wg sync.WaitGroup
	gw := a.gw
	// The broker calls handle inline, from the publisher's goroutine: it
	// only copies the message to the dispatcher (publishing from inside
	// the broker's callback could deadlock it).
	type inMsg struct {
		topic   string
		payload []byte
		reply   *reply
	}
	inbox := make(chan inMsg, commandQueue)
	var dropped bridge.Limiter
	dropped.Every = 10 * time.Second
	handle := func(r mqttcore.Request, viaUplink bool) {
		m := inMsg{topic: r.Topic, payload: append([]byte(nil), r.Payload...)}
		if r.ResponseTopic != "" {
			m.reply = &reply{uplink: viaUplink, topic: r.ResponseTopic, correlation: append([]byte(nil), r.CorrelationData...)}
		}
		select {
		case inbox <- m:
		default:
			if ok, n := dropped.Allow(time.Now()); ok {
				a.log.Warn("command refused: too many commands waiting", "topic", r.Topic, "suppressed", n)
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var m inMsg
			select {
			case <-ctx.Done():
				return
			case m = <-inbox:
			}
			adapter, device, _, ok := mapping.CommandTarget(gw, m.topic)
			if !ok {
				continue
			}
			cmd, err := mapping.ParseCommand(gw, m.topic, m.payload)
			if err != nil {
				a.publishResult(adapter, device, nil, fmt.Errorf("invalid command: %w", err), m.reply)
				continue
			}
			r := a.adapterNamed(adapter)
			if r == nil {
				a.publishResult(adapter, device, nil, fmt.Errorf("no adapter named %s", adapter), m.reply)
				continue
			}
			running, full := r.offer(queuedCommand{cmd: cmd, reply: m.reply})
			switch {
			case !running && r.cmd == nil:
				a.publishResult(adapter, device, nil, fmt.Errorf("adapter %s (%s) does not accept commands", adapter, r.kind), m.reply)
			case !running:
				a.publishResult(adapter, device, nil, fmt.Errorf("adapter %s is not running", adapter), m.reply)
			case full:
				a.publishResult(adapter, device, nil, fmt.Errorf("too many commands waiting for adapter %s (%d); try again later", adapter, commandQueue), m.reply)
			}
		}
	}()
	a.cmdIn.Store(&handle) // commands from the uplink (subscribe_commands)
	var unsubs []func()
	for _, f := range mapping.CommandFilters(gw) {
		if b == nil {
			break // no built-in broker: commands come from the uplink only
		}
		var unsub func()
		var err error
		if rb, ok := b.(requestBroker); ok { // MQTT 5 requests get their answer
			unsub, err = rb.SubscribeRequests(f, func(r mqttcore.Request) { handle(r, false) })
		} else {
			unsub, err = b.Subscribe(f, func(topic string, payload []byte) {
				handle(mqttcore.Request{Topic: topic, Payload: payload}, false)
			})
		}
		if err != nil {
			for _, u := range unsubs {
				u()
			}
			return wg.Wait, fmt.Errorf("subscribe %s: %w", f, err)
		}
		unsubs = append(unsubs, unsub)
	}
	return func() {
		a.cmdIn.Store(nil)
		for _, u := range unsubs {
			u()
		}
		wg.Wait()
	}, nil
}

// requestBroker is a broker that passes the MQTT 5 request properties and
// answers on a response topic.
type requestBroker interface {
	SubscribeRequests(filter string, fn func(mqttcore.Request)) (func(), error)
	PublishResponse(topic string, payload, correlation []byte) error
}

// responder is an uplink that answers requests that came through it.
type responder interface {
	Respond(ctx context.Context, topic string, payload, correlation []byte) error
}

// reply is where the outcome of an MQTT 5 request goes besides
// set/result: its response topic, on the broker it came from, with its
// correlation data.
type reply struct {
	uplink      bool
	topic       string
	correlation []byte
}

// queuedCommand is a command waiting for its adapter's worker.
type queuedCommand struct {
	cmd   bridge.Command
	reply *reply
}

func (a *App) commandWorker(ctx context.Context, c bridge.Commander, ch <-chan queuedCommand) {
	for {
		select {
		case <-ctx.Done():
			return
		case qc := <-ch:
			cmd := qc.cmd
			cctx, cancel := context.WithTimeout(ctx, commandTimeout)
			vals, err := c.Command(cctx, cmd)
			if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no outcome within %s: %w", commandTimeout, err)
			}
			cancel()
			if ctx.Err() != nil && err != nil {
				err = fmt.Errorf("gateway shutting down: %w", err)
			}
			a.log.Info("command", "adapter", cmd.Adapter, "device", cmd.Device, "points", len(cmd.Values), "ok", err == nil, "err", err)
			a.publishResult(cmd.Adapter, cmd.Device, vals, err, qc.reply)
		}
	}
}

// publishResult publishes a command's outcome on
// {gateway}/{adapter}/{device}/set/result (QoS 1, not retained), on the
// built-in broker and through the uplink.
//
// A command that came as an MQTT 5 request with a response topic is also
// answered there, with its correlation data, on the broker it came from.
func (a *App) publishResult(adapter, device string, vals []bridge.PointValue, err error, rp *reply) {
	a.metrics.CommandResult(adapter, err == nil)
	m := bridge.Message{
		Topic:   mapping.ResultTopic(a.gw, adapter, device),
		Payload: mapping.AppendResult(nil, vals, err),
		QoS:     1, Uplink: true,
	}
	a.deliver([]bridge.Message{m}, nil)
	if rp != nil {
		if rerr := a.respond(rp, m.Payload); rerr != nil {
			a.log.Warn("command response not sent", "adapter", adapter, "device", device, "response_topic", rp.topic, "err", rerr)
		}
	}
}

// respond publishes payload on the request's response topic.
func (a *App) respond(rp *reply, payload []byte) error {
	// The answer must not become a command itself, nor land in the
	// broker's reserved topics: the requester chose the topic.
	if _, _, _, isCmd := mapping.CommandTarget(a.gw, rp.topic); isCmd || strings.HasPrefix(rp.topic, "$") {
		return fmt.Errorf("response topic %q refused: a command or reserved topic", rp.topic)
	}
	if !rp.uplink {
		b, ok := a.Broker().(requestBroker)
		if !ok || b == nil {
			return errors.New("built-in broker gone")
		}
		return b.PublishResponse(rp.topic, payload, rp.correlation)
	}
	a.mu.Lock()
	up := a.up
	a.mu.Unlock()
	if up == nil {
		return errors.New("no uplink")
	}
	r, ok := up.up.(responder)
	if !ok {
		return errors.New("the uplink cannot answer requests (MQTT 3.1.1)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Respond(ctx, rp.topic, payload, rp.correlation)
}

// availability returns the function through which adapter reports its
// devices' availability: retained "online"/"offline" on
// {gateway}/{adapter}/{device}/availability, on the built-in broker and
// through the uplink. The devices reported are remembered, so that a
// reload that stops the adapter can clear their retained state.
func (a *App) availability(adapter string) bridge.AvailabilityFunc {
	return func(device string, online bool) {
		state := "offline"
		if online {
			state = "online"
		}
		a.availMu.Lock()
		if a.availSeen == nil {
			a.availSeen = map[string]map[string]bool{}
		}
		if a.availSeen[adapter] == nil {
			a.availSeen[adapter] = map[string]bool{}
		}
		a.availSeen[adapter][device] = true
		a.availMu.Unlock()
		a.log.Info("device availability", "adapter", adapter, "device", device, "state", state)
		a.deliver([]bridge.Message{{
			Topic:   a.availabilityTopic(adapter, device),
			Payload: []byte(state), QoS: 1, Retain: true, Uplink: true,
		}}, nil)
	}
}

func (a *App) availabilityTopic(adapter, device string) string {
	return a.gw + "/" + adapter + "/" + device + "/availability"
}

// clearAvailability deletes the retained availability of every device
// adapter reported (an empty retained message), after a reload stopped it:
// a device that left the configuration must not stay "online" forever. A
// changed adapter that starts again reports its devices anew.
func (a *App) clearAvailability(adapter string) {
	a.availMu.Lock()
	devices := a.availSeen[adapter]
	delete(a.availSeen, adapter)
	a.availMu.Unlock()
	if len(devices) == 0 {
		return
	}
	msgs := make([]bridge.Message, 0, len(devices))
	for d := range devices {
		msgs = append(msgs, bridge.Message{Topic: a.availabilityTopic(adapter, d), QoS: 1, Retain: true, Uplink: true})
	}
	a.deliver(msgs, nil)
}
