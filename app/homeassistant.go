package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/homeassistant"
	"github.com/causeway/causeway/mapping"
)

// maxDiscovered bounds the entities announced for points seen in frames
// (CoAP and serial devices name themselves): beyond it new points are not
// announced (logged once).
const maxDiscovered = 10000

// discovery announces the gateway's points to Home Assistant: the Modbus
// points of the configuration at start, the points of CoAP and serial
// devices when a frame first carries them. Announced entities are kept in
// data_dir/homeassistant.json, so that after a restart the gateway
// announces them again at once and removes those whose device left the
// configuration (their config is retained on the uplink broker).
type discovery struct {
	a      *App
	prefix string
	gw     homeassistant.Gateway
	file   string

	syncMu    sync.Mutex
	mu        sync.Mutex
	announced map[string]homeassistant.Entity // by Key
	kinds     map[string]string               // adapter name -> kind, of the configuration in force
	lastSave  time.Time
	dirty     bool
	full      bool
	max       int // maxDiscovered; smaller in tests
}

func newDiscovery(a *App, cfg *config.Config) *discovery {
	if !cfg.HomeAssistant.Enabled {
		return nil
	}
	return &discovery{
		a: a, prefix: cfg.HomeAssistant.DiscoveryPrefix,
		gw:        homeassistant.Gateway{ID: a.gw, Version: a.opts.Version},
		file:      filepath.Join(cfg.Gateway.DataDir, "homeassistant.json"),
		announced: map[string]homeassistant.Entity{},
		max:       maxDiscovered,
	}
}

// statusTopic is where Home Assistant says "online" after it (re)starts.
func (d *discovery) statusTopic() string { return d.prefix + "/status" }

// static returns the entities the configuration declares: Modbus points.
func (d *discovery) static(cfg *config.Config, engine *mapping.Engine) map[string]homeassistant.Entity {
	out := map[string]homeassistant.Entity{}
	for _, m := range cfg.Modbus {
		for _, dev := range m.Devices {
			for _, p := range dev.Points {
				e := homeassistant.Entity{
					Adapter: m.Name, Device: dev.Name, Point: p.Name, AdapterKind: "modbus",
					Unit: p.Unit, Writable: p.Writable, Availability: true,
				}
				switch p.Type {
				case "bool":
					e.Kind = homeassistant.Bool
				case "string":
					e.Kind = homeassistant.String
				default:
					if p.Scale != 0 && p.Scale != 1 {
						e.Step = homeassistant.StepOf(bridge.Decimals(p.Scale))
					}
				}
				if d.place(&e, engine) {
					out[e.Key()] = e
				}
			}
		}
	}
	return out
}

// place sets where e's value is published; false if the routes drop it.
func (d *discovery) place(e *homeassistant.Entity, engine *mapping.Engine) bool {
	topic, payload, ok := engine.Describe(e.Adapter, e.Device, e.Point)
	e.StateTopic, e.Payload = topic, payload
	return ok
}

func adapterKinds(cfg *config.Config) map[string]string {
	k := map[string]string{}
	for _, c := range cfg.CoAP {
		k[c.Name] = "coap"
	}
	for _, c := range cfg.Modbus {
		k[c.Name] = "modbus"
	}
	for _, c := range cfg.UART {
		k[c.Name] = "uart"
	}
	return k
}

// sync makes the announced entities those of cfg: the static ones, plus
// the seen ones (from frames, or from the file at start) whose adapter
// still exists and is not Modbus. Entities that leave are removed, those
// whose state topic or attributes changed are announced again, and with
// all set, every one is announced (Home Assistant came online).
//
// It reads the configuration and routes in force when it runs, under
// syncMu: of a reload and a Home Assistant restart at once, the later
// sync sees the newer configuration.
func (d *discovery) sync(seen []homeassistant.Entity, all bool) {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	cfg, engine := d.a.cfg.Load(), d.a.engine.Load()
	want := d.static(cfg, engine)
	kinds := adapterKinds(cfg)
	d.mu.Lock()
	for _, e := range seen {
		if _, ok := d.announced[e.Key()]; !ok {
			d.announced[e.Key()] = e
		}
	}
	for k, e := range d.announced {
		if kind, ok := kinds[e.Adapter]; ok && kind != "modbus" && kind == e.AdapterKind {
			if _, dup := want[k]; !dup && d.place(&e, engine) {
				want[k] = e
			}
		}
	}
	var msgs []bridge.Message
	if all || len(d.announced) == 0 {
		m := homeassistant.GatewayConfig(d.prefix, d.gw)
		msgs = append(msgs, d.retained(m.Topic, m.Payload))
	}
	for k, old := range d.announced {
		e, keep := want[k]
		oldTopic := homeassistant.ConfigTopic(d.prefix, d.gw.ID, old)
		if !keep || homeassistant.ConfigTopic(d.prefix, d.gw.ID, e) != oldTopic {
			msgs = append(msgs, d.retained(oldTopic, nil)) // removes the entity
		}
	}
	for k, e := range want {
		if old, ok := d.announced[k]; all || !ok || old != e {
			m := homeassistant.Config(d.prefix, d.gw, e)
			msgs = append(msgs, d.retained(m.Topic, m.Payload))
		}
	}
	d.announced = want
	d.kinds = kinds
	d.dirty = true
	d.mu.Unlock()
	d.a.deliver(msgs, nil)
	d.save(true)
}

func (d *discovery) retained(topic string, payload []byte) bridge.Message {
	return bridge.Message{Topic: topic, Payload: payload, QoS: 1, Retain: true, Uplink: true}
}

// observe announces the points of f not announced yet (CoAP and serial
// devices). Called by the pipeline for every frame.
func (d *discovery) observe(f *bridge.Frame, engine *mapping.Engine) {
	d.mu.Lock()
	kind := d.kinds[f.Adapter]
	if kind == "" || kind == "modbus" {
		d.mu.Unlock()
		return
	}
	var msgs []bridge.Message
	for i := range f.Points {
		p := &f.Points[i]
		var k homeassistant.Kind
		switch p.Value.Kind {
		case bridge.KindNumber, bridge.KindInt:
			k = homeassistant.Number
		case bridge.KindBool:
			k = homeassistant.Bool
		case bridge.KindString:
			k = homeassistant.String
		default:
			continue
		}
		key := f.Adapter + "/" + f.Device + "/" + p.Name
		if _, ok := d.announced[key]; ok {
			continue
		}
		if len(d.announced) >= d.max {
			if !d.full {
				d.full = true
				d.a.log.Warn("home assistant discovery: too many entities; new points are not announced", "max", d.max)
			}
			break
		}
		e := homeassistant.Entity{
			Adapter: f.Adapter, Device: f.Device, Point: p.Name, AdapterKind: kind,
			Kind: k, Unit: p.Unit, Availability: kind == "uart",
		}
		if !d.place(&e, engine) {
			continue
		}
		d.announced[key] = e
		d.dirty = true
		m := homeassistant.Config(d.prefix, d.gw, e)
		msgs = append(msgs, d.retained(m.Topic, m.Payload))
	}
	d.mu.Unlock()
	if len(msgs) > 0 {
		d.a.deliver(msgs, nil)
		d.save(false)
	}
}

// save writes the announced entities to the state file, at most once a
// second unless force.
func (d *discovery) save(force bool) {
	d.mu.Lock()
	if !d.dirty || (!force && time.Since(d.lastSave) < time.Second) {
		d.mu.Unlock()
		return
	}
	list := make([]homeassistant.Entity, 0, len(d.announced))
	for _, e := range d.announced {
		list = append(list, e)
	}
	d.dirty = false
	d.lastSave = time.Now()
	d.mu.Unlock()
	slices.SortFunc(list, func(a, b homeassistant.Entity) int {
		if a.Key() < b.Key() {
			return -1
		}
		if a.Key() > b.Key() {
			return 1
		}
		return 0
	})
	if err := writeFileAtomic(d.file, list); err != nil {
		d.a.log.Warn("home assistant discovery: state not saved", "file", d.file, "err", err)
	}
}

// load reads the entities announced by an earlier run.
func (d *discovery) load() []homeassistant.Entity {
	b, err := os.ReadFile(d.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var list []homeassistant.Entity
	if err == nil {
		err = json.Unmarshal(b, &list)
	}
	if err != nil {
		d.a.log.Warn("home assistant discovery: state file unreadable; starting afresh", "file", d.file, "err", err)
		return nil
	}
	return list
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}

// homeAssistantStatus takes a message on {prefix}/status (from the built-in
// broker or the uplink). It only signals: the broker calls it inline.
func (a *App) homeAssistantStatus(payload []byte) {
	if string(payload) != "online" {
		return
	}
	select {
	case a.haOnline <- struct{}{}:
	default:
	}
}

// startDiscovery announces the entities (those of the configuration and
// those an earlier run saw) and re-announces them whenever Home Assistant
// comes online, until ctx ends. The returned function waits for it and
// saves the state.
func (a *App) startDiscovery(ctx context.Context) (wait func()) {
	d := a.ha
	if d == nil {
		return func() {}
	}
	d.sync(d.load(), true)
	var unsub func()
	if b := a.Broker(); b != nil {
		u, err := b.Subscribe(d.statusTopic(), func(_ string, p []byte) { a.homeAssistantStatus(p) })
		if err != nil {
			a.log.Error("home assistant discovery: not re-announced on Home Assistant restarts", "err", err)
		} else {
			unsub = u
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.haOnline:
				a.log.Info("home assistant online: announcing the entities again", "prefix", d.prefix)
				d.sync(nil, true)
			}
		}
	}()
	return func() {
		if unsub != nil {
			unsub()
		}
		<-done
		d.save(true)
	}
}
