package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/causeway/causeway/adapters/modbus/wire"
	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/serialport"
)

// Tuning.
const (
	// MaxBackoff caps the wait between two attempts at a device that does
	// not answer (the backoff starts at its interval and doubles).
	MaxBackoff = 30 * time.Second
	// ReplanAfter is how long a plan split around unreadable registers is
	// kept before the device's points are merged again (the device may
	// have been reconfigured or repaired meanwhile).
	ReplanAfter = 10 * time.Minute
	// logEvery rate-limits the error log lines of one device.
	logEvery = 10 * time.Second
)

// Deps are what an Adapter needs from the gateway.
type Deps struct {
	// Log already carries adapter=<name>. Nil discards.
	Log *slog.Logger
	// Availability receives device online/offline transitions. Nil: none.
	Availability bridge.AvailabilityFunc
	// Ports resolves usb = "vid:pid" to a device path (zero value: the
	// real sysfs).
	Ports serialport.FS
}

// Adapter is one [[modbus]] block: one physical line (a serial port or a
// TCP connection) and the devices (unit ids) on it. One goroutine owns the
// line: every request, poll or write, goes through it, one at a time.
type Adapter struct {
	cfg   config.Modbus
	log   *slog.Logger
	avail bridge.AvailabilityFunc
	ports serialport.FS

	devices []*device
	byName  map[string]*device
	cmds    chan *cmdJob

	timeout time.Duration
	retries int
	stats   counters
}

// device is one [[modbus.device]]: its points, its current plan and its
// schedule. Only the line goroutine touches it (except the immutable
// fields read by Command).
type device struct {
	name     string
	unit     byte
	interval time.Duration
	maxGap   int
	points   []Point
	byName   map[string]int
	all      []Read // the plan of every point, as merged as max_gap allows
	reads    []Read // the plan in use (split around unreadable registers)
	splitAt  time.Time

	next     time.Time // next tick
	retryAt  time.Time // not before (backoff of a device that does not answer)
	failures int       // consecutive cycles without any answer
	online   int8      // 0 unknown, 1 online, -1 offline
	logLimit bridge.Limiter

	// per-cycle scratch
	vals []bridge.Value
	bad  []string
}

// New builds the adapter from a validated [[modbus]] block.
func New(c config.Modbus, deps Deps) (*Adapter, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		cfg: c, log: deps.Log, avail: deps.Availability, ports: deps.Ports,
		byName:  make(map[string]*device, len(c.Devices)),
		cmds:    make(chan *cmdJob), // unbuffered: a command is taken by a running line or not at all
		timeout: c.Timeout.D(),
		retries: c.Retries,
	}
	if a.timeout <= 0 {
		a.timeout = 500 * time.Millisecond
	}
	for _, dc := range c.Devices {
		d := &device{
			name: dc.Name, unit: byte(dc.UnitID), interval: dc.Interval.D(), maxGap: dc.MaxGap,
			byName:   make(map[string]int, len(dc.Points)),
			logLimit: bridge.Limiter{Every: logEvery},
		}
		if d.interval <= 0 {
			d.interval = time.Second
		}
		for _, pc := range dc.Points {
			p, err := NewPoint(pc)
			if err != nil {
				return nil, fmt.Errorf("device %s point %s: %w", dc.Name, pc.Name, err)
			}
			d.byName[p.Name] = len(d.points)
			d.points = append(d.points, p)
		}
		d.all = Plan(d.points, nil, d.maxGap)
		d.reads = d.all
		d.vals = make([]bridge.Value, len(d.points))
		d.bad = make([]string, len(d.points))
		a.devices = append(a.devices, d)
		a.byName[d.name] = d
	}
	return a, nil
}

// Name implements bridge.Adapter.
func (a *Adapter) Name() string { return a.cfg.Name }

// Kind implements bridge.Adapter.
func (a *Adapter) Kind() string { return "modbus" }

// Plans returns each device's read plan, for `gateway modbus plan`.
func (a *Adapter) Plans() []DevicePlan {
	out := make([]DevicePlan, 0, len(a.devices))
	for _, d := range a.devices {
		out = append(out, DevicePlan{Device: d.name, Unit: int(d.unit), Points: d.points, Reads: d.all})
	}
	return out
}

// DevicePlan is one device's points and the reads of one cycle.
type DevicePlan struct {
	Device string
	Unit   int
	Points []Point
	Reads  []Read
}

// Run implements bridge.Adapter: it opens the line and polls every device
// until ctx ends. It returns an error (and the supervisor opens the line
// again after a backoff) when a serial port fails.
func (a *Adapter) Run(ctx context.Context, bus *bridge.Bus, ready func()) error {
	tr, serial, err := a.open(ctx)
	if err != nil {
		a.setAllOffline()
		return err
	}
	defer func() { _ = tr.Close() }()
	defer a.setAllOffline()
	ready()
	a.log.Info("modbus line open", "url", a.cfg.URL, "devices", len(a.devices))

	now := time.Now()
	for _, d := range a.devices {
		d.next, d.retryAt = now, time.Time{} // first poll at start
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d := a.nextDevice()
		if wait := time.Until(d.due()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case j := <-a.cmds:
				if err := a.execute(ctx, tr, serial, j); err != nil {
					return err
				}
				continue
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := a.cycle(ctx, tr, serial, bus, d); err != nil {
			return err
		}
	}
}

// open creates the transport from the url.
func (a *Adapter) open(ctx context.Context) (tr wire.Transport, serial bool, err error) {
	u, err := url.Parse(a.cfg.URL)
	if err != nil {
		return nil, false, fmt.Errorf("modbus url %q: %w", a.cfg.URL, err)
	}
	switch u.Scheme {
	case "tcp":
		return wire.NewTCP(u.Host, wire.TCPOptions{DialTimeout: max(a.timeout, 3*time.Second), Log: a.log}), false, nil
	case "rtuovertcp":
		return wire.NewRTUOverTCP(u.Host, wire.TCPOptions{DialTimeout: max(a.timeout, 3*time.Second), Log: a.log}), false, nil
	case "rtu":
		path := u.Path
		if a.cfg.USB != "" {
			if path, err = a.ports.ResolveInterface(a.cfg.USB, a.cfg.USBSerial, a.cfg.USBInterface); err != nil {
				return nil, true, fmt.Errorf("modbus serial port: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, true, err
		}
		parity := byte('N')
		if a.cfg.Parity != "" {
			parity = a.cfg.Parity[0]
		}
		p, err := serialport.Open(path, a.cfg.Baud, a.cfg.DataBits, parity, a.cfg.StopBits)
		if err != nil {
			return nil, true, fmt.Errorf("modbus serial port %s: %w", path, err)
		}
		return wire.NewRTU(p, wire.RTUOptions{Baud: a.cfg.Baud, DataBits: a.cfg.DataBits, StopBits: a.cfg.StopBits, Parity: parity, Log: a.log}), true, nil
	}
	return nil, false, fmt.Errorf("modbus url %q: unknown scheme", a.cfg.URL)
}

func (d *device) due() time.Time {
	if d.retryAt.After(d.next) {
		return d.retryAt
	}
	return d.next
}

func (a *Adapter) nextDevice() *device {
	best := a.devices[0]
	for _, d := range a.devices[1:] {
		if d.due().Before(best.due()) {
			best = d
		}
	}
	return best
}

// cycle polls one device once: every read of its plan, splitting a read
// that the device refuses with an exception, and sends one frame holding
// every point (unreadable ones with bad quality and the reason).
func (a *Adapter) cycle(ctx context.Context, tr wire.Transport, serial bool, bus *bridge.Bus, d *device) error {
	start := time.Now()
	if !d.splitAt.IsZero() && start.Sub(d.splitAt) >= ReplanAfter {
		d.reads, d.splitAt = d.all, time.Time{}
	}
	for i := range d.points {
		d.vals[i], d.bad[i] = bridge.Value{}, ""
	}
	a.stats.cycles.Add(1)
	queue := append([]Read(nil), d.reads...)
	kept := make([]Read, 0, len(queue))
	answered, silent := false, ""
	split := false
	for i := 0; i < len(queue); i++ {
		r := queue[i]
		if err := a.serveCommands(ctx, tr, serial); err != nil {
			return err
		}
		if silent != "" {
			// The device answered nothing yet and the first read failed:
			// do not spend timeout x retries on each of the others.
			a.markBad(d, r, silent)
			kept = append(kept, r)
			continue
		}
		resp, err := a.do(ctx, tr, readRequest(d.unit, r))
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			answered = true
			a.decode(d, r, resp)
			kept = append(kept, r)
		case isException(err):
			answered = true
			if parts := Split(r, d.points); parts != nil {
				a.logf(d, slog.LevelInfo, "read refused; splitting it to isolate the unreadable point", r, err)
				queue = append(queue[:i+1], append(parts, queue[i+1:]...)...)
				split = true
				continue
			}
			a.logf(d, slog.LevelWarn, "point unreadable", r, err)
			a.markBad(d, r, reason(err))
			kept = append(kept, r)
		default:
			if serial && isLineFailure(err) {
				return fmt.Errorf("modbus serial line: %w", err)
			}
			a.logf(d, slog.LevelWarn, "read failed", r, err)
			a.markBad(d, r, reason(err))
			kept = append(kept, r)
			if !answered && isSilence(err) {
				silent = reason(err)
			}
		}
	}
	d.reads = kept
	if split {
		d.splitAt = start
	}

	// Availability first: a consumer sees the device online before its
	// first reading, offline before the frame of bad points.
	now := time.Now()
	if answered {
		d.failures, d.retryAt = 0, time.Time{}
		a.setOnline(d, true)
	} else {
		d.failures++
		d.retryAt = now.Add(bridge.Backoff{Min: d.interval, Max: max(MaxBackoff, d.interval)}.Delay(d.failures))
		a.setOnline(d, false)
	}
	f := bridge.Frame{Adapter: a.cfg.Name, Device: d.name, Time: start, Points: make([]bridge.Point, len(d.points))}
	for i := range d.points {
		p := &d.points[i]
		f.Points[i] = bridge.Point{Name: p.Name, Value: d.vals[i], Unit: p.Unit, Bad: d.bad[i]}
	}
	if err := bus.Send(ctx, f); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		a.stats.frameErrors.Add(1)
		a.log.Warn("frame not accepted", "device", d.name, "err", err)
	} else {
		a.stats.frames.Add(1)
	}

	// The next tick; a cycle that overran skips the ticks it covered
	// rather than running them back to back.
	d.next = d.next.Add(d.interval)
	if !d.next.After(now) {
		skipped := now.Sub(d.next)/d.interval + 1
		d.next = d.next.Add(skipped * d.interval)
		a.stats.skipped.Add(uint64(skipped))
		if ok, n := d.logLimit.Allow(now); ok {
			a.log.Warn("poll cycle overran its interval; ticks skipped", "device", d.name,
				"cycle", now.Sub(start).Round(time.Millisecond), "interval", d.interval, "skipped", int64(skipped), "suppressed", n)
		}
	}
	return nil
}

// do sends req with up to retries more attempts after a timeout, a CRC
// error or a malformed answer (never after an exception).
func (a *Adapter) do(ctx context.Context, tr wire.Transport, req wire.Request) (wire.Response, error) {
	var err error
	for attempt := 0; attempt <= a.retries; attempt++ {
		var resp wire.Response
		a.stats.requests.Add(1)
		resp, err = tr.Do(ctx, req, a.timeout)
		if err == nil {
			return resp, nil
		}
		a.count(err)
		if ctx.Err() != nil || !retryable(err) {
			return resp, err
		}
	}
	return wire.Response{}, err
}

func (a *Adapter) count(err error) {
	var exc *wire.ExceptionError
	switch {
	case errors.As(err, &exc):
		a.stats.exceptions.Add(1)
	case errors.Is(err, wire.ErrTimeout):
		a.stats.timeouts.Add(1)
	case errors.Is(err, wire.ErrCRC):
		a.stats.crcErrors.Add(1)
	case errors.Is(err, wire.ErrMalformed):
		a.stats.malformed.Add(1)
	default:
		a.stats.connErrors.Add(1)
	}
}

// isException reports a Modbus exception response. (A function, so that
// the error path's errors.As target does not escape on every read.)
func isException(err error) bool {
	var exc *wire.ExceptionError
	return errors.As(err, &exc)
}

func retryable(err error) bool {
	return errors.Is(err, wire.ErrTimeout) || errors.Is(err, wire.ErrCRC) || errors.Is(err, wire.ErrMalformed)
}

// isSilence reports an error that means the device did not answer at all.
func isSilence(err error) bool {
	var exc *wire.ExceptionError
	return !errors.As(err, &exc) && !errors.Is(err, wire.ErrCRC) && !errors.Is(err, wire.ErrMalformed)
}

// isLineFailure reports an error of the serial port itself (unplugged
// adapter, closed port), as opposed to a device's answer or silence.
func isLineFailure(err error) bool {
	var exc *wire.ExceptionError
	return !errors.As(err, &exc) && !retryable(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// reason is the short text published under "errors" for a bad point.
func reason(err error) string {
	var exc *wire.ExceptionError
	switch {
	case errors.As(err, &exc):
		return exc.Error()
	case errors.Is(err, wire.ErrTimeout):
		return "timeout"
	case errors.Is(err, wire.ErrCRC):
		return "crc error"
	case errors.Is(err, wire.ErrMalformed):
		return err.Error()
	}
	return "connection error: " + err.Error()
}

func readRequest(unit byte, r Read) wire.Request {
	fc := byte(wire.FuncReadHoldingRegisters)
	switch r.Table {
	case TableCoil:
		fc = wire.FuncReadCoils
	case TableDiscrete:
		fc = wire.FuncReadDiscreteInputs
	case TableInput:
		fc = wire.FuncReadInputRegisters
	}
	return wire.Request{Unit: unit, Function: fc, Address: r.Address, Count: r.Count}
}

// decode stores the values of r's points from resp.
func (a *Adapter) decode(d *device, r Read, resp wire.Response) {
	for _, i := range r.Points {
		p := &d.points[i]
		off := int(p.Address) - int(r.Address)
		if p.IsBit() {
			if off < 0 || off >= len(resp.Bits) {
				d.bad[i] = "malformed response: short"
				continue
			}
			d.vals[i] = p.DecodeBit(resp.Bits[off])
			continue
		}
		w := p.Width()
		if off < 0 || off+w > len(resp.Registers) {
			d.bad[i] = "malformed response: short"
			continue
		}
		v, err := p.Decode(resp.Registers[off : off+w])
		if err != nil {
			d.bad[i] = err.Error()
			a.stats.decodeErrors.Add(1)
			continue
		}
		d.vals[i] = v
	}
}

func (a *Adapter) markBad(d *device, r Read, why string) {
	for _, i := range r.Points {
		d.bad[i] = why
	}
}

func (a *Adapter) logf(d *device, level slog.Level, msg string, r Read, err error) {
	ok, n := d.logLimit.Allow(time.Now())
	if !ok {
		return
	}
	a.log.Log(context.Background(), level, msg, "device", d.name, "unit", d.unit,
		"table", r.Table.String(), "address", r.Address, "count", r.Count, "points", pointNames(d, r), "err", err, "suppressed", n)
}

func pointNames(d *device, r Read) []string {
	names := make([]string, 0, len(r.Points))
	for _, i := range r.Points {
		names = append(names, d.points[i].Name)
	}
	return names
}

func (a *Adapter) setOnline(d *device, online bool) {
	s := int8(-1)
	if online {
		s = 1
	}
	if d.online == s {
		return
	}
	d.online = s
	if !online {
		a.log.Warn("device not answering", "device", d.name, "unit", d.unit, "failures", d.failures, "retry_in", time.Until(d.retryAt).Round(time.Millisecond))
	} else {
		a.log.Info("device online", "device", d.name, "unit", d.unit)
	}
	if a.avail != nil {
		a.avail(d.name, online)
	}
}

func (a *Adapter) setAllOffline() {
	for _, d := range a.devices {
		if d.online == 1 && a.avail != nil {
			a.avail(d.name, false)
		}
		d.online = 0
		d.failures = 0
	}
}

// counters are the adapter's statistics, kept across restarts of Run.
type counters struct {
	cycles, frames, frameErrors, skipped                             atomic.Uint64
	requests, timeouts, exceptions, crcErrors, malformed, connErrors atomic.Uint64
	decodeErrors, writes, writeErrors                                atomic.Uint64
}

// Stats is a snapshot of an adapter's counters.
type Stats struct {
	Cycles, Frames, FrameErrors, SkippedTicks                        uint64
	Requests, Timeouts, Exceptions, CRCErrors, Malformed, ConnErrors uint64
	DecodeErrors, Writes, WriteErrors                                uint64
}

// Stats returns a snapshot of the counters.
func (a *Adapter) Stats() Stats {
	s := &a.stats
	return Stats{
		Cycles: s.cycles.Load(), Frames: s.frames.Load(), FrameErrors: s.frameErrors.Load(), SkippedTicks: s.skipped.Load(),
		Requests: s.requests.Load(), Timeouts: s.timeouts.Load(), Exceptions: s.exceptions.Load(),
		CRCErrors: s.crcErrors.Load(), Malformed: s.malformed.Load(), ConnErrors: s.connErrors.Load(),
		DecodeErrors: s.decodeErrors.Load(), Writes: s.writes.Load(), WriteErrors: s.writeErrors.Load(),
	}
}
