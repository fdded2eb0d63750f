package app

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/queue"
)

// ErrNotRunning is returned by Reload before Run has started the gateway or
// once it is shutting down.
var ErrNotRunning = errors.New("gateway not running")

// ReloadFile reads the configuration file (Options.ConfigPath) again and
// applies it with Reload. A file with errors is refused, with every error,
// and the running configuration stays in force.
func (a *App) ReloadFile() error {
	if a.opts.ConfigPath == "" {
		return errors.New("no configuration file to reload from")
	}
	cfg, err := config.Load(a.opts.ConfigPath, os.LookupEnv)
	if err != nil {
		a.metrics.Reload(false)
		a.log.Error("configuration reload refused; the running configuration stays in force",
			"file", a.opts.ConfigPath, "err", err)
		return fmt.Errorf("%s: %w", a.opts.ConfigPath, err)
	}
	return a.Reload(cfg)
}

// Reload applies cfg to the running gateway, or refuses it and keeps the
// configuration in force. Everything that can fail is checked before
// anything changes: the routes, every new or changed adapter (built, not
// started), the uplink client, and the keys that only a restart can
// change (gateway id and data_dir, [broker], [queue]).
//
// Then, in order: the routes swap between two frames; adapters whose block
// was removed or changed stop (their serial ports and sockets are free
// again); changed and new ones start; untouched adapters keep running
// without a pause. A changed [uplink] replaces the uplink client but not
// the offline queue: what it held, or held in flight, is sent by the new
// client. Log level and format, stats_interval and the HTTP listener
// follow the new values.
func (a *App) Reload(cfg *config.Config) (err error) {
	defer func() {
		a.metrics.Reload(err == nil)
		if err != nil {
			a.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
		}
	}()
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.runCtx == nil {
		return ErrNotRunning
	}
	old := a.cfg.Load()
	if fixed := restartOnly(old, cfg); len(fixed) > 0 {
		return fmt.Errorf("changes to %s need a restart (systemctl restart causeway)", strings.Join(fixed, ", "))
	}
	if (old.Gateway.LogLevel != cfg.Gateway.LogLevel || old.Gateway.LogFormat != cfg.Gateway.LogFormat) && a.opts.SetLogging == nil {
		return errors.New("changes to log_level or log_format need a restart")
	}
	engine, err := newEngine(cfg)
	if err != nil {
		return err
	}
	a.mu.Lock()
	current := append([]*adapterRun(nil), a.adapters...)
	oldUp, oldHTTP := a.up, a.http
	a.mu.Unlock()
	runs, err := a.buildAdapters(cfg, current)
	if err != nil {
		return err
	}
	var newUp *uplinkRun
	uplinkChanged := !reflect.DeepEqual(old.Uplink, cfg.Uplink)
	if uplinkChanged && cfg.Uplink != nil {
		var q *queue.Queue // nil: open it
		if oldUp != nil {
			q = oldUp.q
		}
		if newUp, err = a.newUplink(cfg, q); err != nil {
			return err
		}
	}
	var newHTTP *httpServer
	httpChanged := !reflect.DeepEqual(old.HTTP, cfg.HTTP)
	if httpChanged && cfg.HTTP != nil {
		if oldHTTP != nil {
			oldHTTP.close() // free the address first: it may be the same
			a.mu.Lock()
			a.http = nil
			a.mu.Unlock()
		}
		if newHTTP, err = a.startHTTP(cfg.HTTP.Listen); err != nil {
			if oldHTTP != nil {
				if h, rerr := a.startHTTP(old.HTTP.Listen); rerr == nil {
					a.mu.Lock()
					a.http = h
					a.mu.Unlock()
				}
			}
			if newUp != nil && oldUp == nil {
				newUp.closeQueue()
			}
			return fmt.Errorf("http: %w", err)
		}
	}

	// Checked: apply.
	if cfg.Gateway.LogLevel != old.Gateway.LogLevel || cfg.Gateway.LogFormat != old.Gateway.LogFormat {
		if err := a.opts.SetLogging(cfg.Gateway.LogLevel, cfg.Gateway.LogFormat); err != nil {
			a.log.Error("log settings not applied", "err", err)
		}
	}
	a.engine.Store(engine)

	keep := make(map[*adapterRun]bool, len(runs))
	for _, r := range runs {
		keep[r] = true
	}
	names := make(map[string]bool, len(runs))
	for _, r := range runs {
		names[r.name] = true
	}
	var stopped, started, kept []string
	for _, r := range current {
		if !keep[r] {
			r.stopRun()
			a.clearAvailability(r.name)
			if !names[r.name] { // removed, not changed: its series go
				a.metrics.ForgetAdapter(r.name)
			}
			stopped = append(stopped, r.name)
		}
	}
	a.mu.Lock()
	a.adapters = runs
	a.mu.Unlock()
	for _, r := range runs {
		if !r.started() {
			a.startAdapter(a.runCtx, r, nil)
			started = append(started, r.name)
		} else {
			kept = append(kept, r.name)
		}
	}

	if uplinkChanged {
		a.sinkMu.Lock()
		a.mu.Lock()
		a.up = newUp
		a.mu.Unlock()
		a.storeSinks()
		a.sinkMu.Unlock()
		// No message goes to the old client any more.
		if oldUp != nil {
			oldUp.stop(a.opts.DrainTimeout)
			if newUp == nil {
				oldUp.closeQueue()
			}
		}
		if newUp != nil {
			newUp.start(a.runCtx)
		}
	}
	if httpChanged {
		if cfg.HTTP == nil && oldHTTP != nil {
			oldHTTP.close()
		}
		a.mu.Lock()
		a.http = newHTTP
		a.mu.Unlock()
	}
	a.cfg.Store(cfg)
	if a.ha != nil {
		a.ha.sync(nil, false)
	}
	if old.Gateway.StatsInterval != cfg.Gateway.StatsInterval {
		select {
		case a.statsReset <- struct{}{}:
		default:
		}
	}
	a.log.Info("configuration reloaded", "adapters_started", started, "adapters_stopped", stopped,
		"adapters_unchanged", kept, "uplink_restarted", uplinkChanged, "routes", len(cfg.Routes))
	return nil
}

// restartOnly lists the settings that differ between old and cfg and that
// only a restart can apply.
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	if old.Gateway.ID != cfg.Gateway.ID {
		out = append(out, "gateway.id")
	}
	if old.Gateway.DataDir != cfg.Gateway.DataDir {
		out = append(out, "gateway.data_dir")
	}
	if !reflect.DeepEqual(old.Broker, cfg.Broker) {
		out = append(out, "[broker]")
	}
	if !reflect.DeepEqual(old.Queue, cfg.Queue) {
		out = append(out, "[queue]")
	}
	if !reflect.DeepEqual(old.HomeAssistant, cfg.HomeAssistant) {
		out = append(out, "[homeassistant]")
	}
	return out
}
