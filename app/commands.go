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
// (and takes those the uplink receives with subscribe_commands) and runs
// one worker per adapter that executes commands, in arrival order. The returned function waits for the workers after ctx ended.
func (a *App) startCommands(ctx context.Context) (wait func(), err error) {
	b := a.Broker()
	var wg sync.WaitGroup
	queues := make(map[string]chan bridge.Command, len(a.commanders))
	for name, c := range a.commanders {
		ch := make(chan bridge.Command, commandQueue)
		queues[name] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.commandWorker(ctx, c, ch)
		}()
	}
	gw := a.cfg.Gateway.ID
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
			ch, ok := queues[adapter]
			if !ok {
				a.publishResult(adapter, device, nil, a.noCommandsError(adapter))
				continue
			}
			select {
			case ch <- cmd:
			default:
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

func (a *App) noCommandsError(adapter string) error {
	for _, ad := range a.adapters {
		if ad.Name() == adapter {
			return fmt.Errorf("adapter %s (%s) does not accept commands", adapter, ad.Kind())
		}
	}
	return fmt.Errorf("no adapter named %s", adapter)
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
	s := a.out.Load()
	if s == nil {
		return
	}
	m := bridge.Message{
		Topic:   mapping.ResultTopic(a.cfg.Gateway.ID, adapter, device),
		Payload: mapping.AppendResult(nil, vals, err),
		QoS:     1, Uplink: true,
	}
	s.deliver([]bridge.Message{m}, nil)
}

// availability returns the function through which adapter reports its
// devices' availability: retained "online"/"offline" on
// {gateway}/{adapter}/{device}/availability, on the built-in broker and
// through the uplink.
func (a *App) availability(adapter string) bridge.AvailabilityFunc {
	return func(device string, online bool) {
		s := a.out.Load()
		if s == nil {
			return
		}
		state := "offline"
		if online {
			state = "online"
		}
		a.log.Info("device availability", "adapter", adapter, "device", device, "state", state)
		s.deliver([]bridge.Message{{
			Topic:   a.cfg.Gateway.ID + "/" + adapter + "/" + device + "/availability",
			Payload: []byte(state), QoS: 1, Retain: true, Uplink: true,
		}}, nil)
	}
}
