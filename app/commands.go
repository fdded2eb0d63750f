package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mapping"
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
	}
	inbox := make(chan inMsg, commandQueue)
	var dropped bridge.Limiter
	dropped.Every = 10 * time.Second
	handle := func(topic string, payload []byte) {
		select {
		case inbox <- inMsg{topic, append([]byte(nil), payload...)}:
		default:
			if ok, n := dropped.Allow(time.Now()); ok {
				a.log.Warn("command refused: too many commands waiting", "topic", topic, "suppressed", n)
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
				a.publishResult(adapter, device, nil, fmt.Errorf("invalid command: %w", err))
				continue
			}
			r := a.adapterNamed(adapter)
			if r == nil {
				a.publishResult(adapter, device, nil, fmt.Errorf("no adapter named %s", adapter))
				continue
			}
			running, full := r.offer(cmd)
			switch {
			case !running && r.cmd == nil:
				a.publishResult(adapter, device, nil, fmt.Errorf("adapter %s (%s) does not accept commands", adapter, r.kind))
			case !running:
				a.publishResult(adapter, device, nil, fmt.Errorf("adapter %s is not running", adapter))
			case full:
				a.publishResult(adapter, device, nil, fmt.Errorf("too many commands waiting for adapter %s (%d); try again later", adapter, commandQueue))
			}
		}
	}()
	a.cmdIn.Store(&handle) // commands from the uplink (subscribe_commands)
	var unsubs []func()
	for _, f := range mapping.CommandFilters(gw) {
		if b == nil {
			break // no built-in broker: commands come from the uplink only
		}
		unsub, err := b.Subscribe(f, handle)
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

func (a *App) commandWorker(ctx context.Context, c bridge.Commander, ch <-chan bridge.Command) {
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-ch:
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
			a.publishResult(cmd.Adapter, cmd.Device, vals, err)
		}
	}
}

// publishResult publishes a command's outcome on
// {gateway}/{adapter}/{device}/set/result (QoS 1, not retained), on the
// built-in broker and through the uplink.
func (a *App) publishResult(adapter, device string, vals []bridge.PointValue, err error) {
	a.metrics.CommandResult(adapter, err == nil)
	m := bridge.Message{
		Topic:   mapping.ResultTopic(a.gw, adapter, device),
		Payload: mapping.AppendResult(nil, vals, err),
		QoS:     1, Uplink: true,
	}
	a.deliver([]bridge.Message{m}, nil)
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
