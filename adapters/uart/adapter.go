package uart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/serialport"
)

// Tuning.
const (
	// readTimeout bounds one Read, so that the loop sees commands and the
	// end of its context at least this often. go.bug.st/serial returns
	// (0, nil) when it expires.
	readTimeout = 100 * time.Millisecond
	// logEvery rate-limits the log lines of bad frames.
	logEvery = 10 * time.Second
	// readBuf is the size of one read from the port.
	readBuf = 4096
)

// Deps are what an Adapter needs from the gateway.
type Deps struct {
	// Log already carries adapter=<name>. Nil discards.
	Log *slog.Logger
	// Availability receives device online/offline transitions. Nil: none.
	Availability bridge.AvailabilityFunc
	// Ports resolves usb = "vid:pid" (zero value: the real sysfs).
	Ports serialport.FS
}

// Adapter is one [[uart]] block: one serial port, its framing, checksum
// and parser. One goroutine reads the port and also performs the writes
// of commands, between two reads.
type Adapter struct {
	cfg   config.UART
	log   *slog.Logger
	avail bridge.AvailabilityFunc
	ports serialport.FS

	framer Framer
	check  Checksum
	parser Parser
	cmds   chan *cmdJob

	online     map[string]bool // devices seen on the port while it is open (line goroutine only)
	points     []bridge.Point  // parse scratch (line goroutine only)
	badLog     bridge.Limiter
	stats      counters
	portIsOpen atomic.Bool

	fsMu sync.Mutex
	fs   FramerStats // the framer's counters, copied after each Feed
}

// New builds the adapter from a validated [[uart]] block.
func New(c config.UART, deps Deps) (*Adapter, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	fr, err := NewFramer(c)
	if err != nil {
		return nil, fmt.Errorf("framing: %w", err)
	}
	ck, err := NewChecksum(c.Checksum)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	ps, err := NewParser(c)
	if err != nil {
		return nil, fmt.Errorf("parser: %w", err)
	}
	if c.Device == "" {
		c.Device = c.Name
	}
	return &Adapter{
		cfg: c, log: deps.Log, avail: deps.Availability, ports: deps.Ports,
		framer: fr, check: ck, parser: ps,
		cmds:   make(chan *cmdJob),
		online: map[string]bool{},
		badLog: bridge.Limiter{Every: logEvery},
	}, nil
}

// Name implements bridge.Adapter.
func (a *Adapter) Name() string { return a.cfg.Name }

// Kind implements bridge.Adapter.
func (a *Adapter) Kind() string { return "uart" }

// path resolves the port to open: the configured path (a /dev name or a
// /dev/serial/by-id link), or the port whose USB identity matches.
func (a *Adapter) path() (string, error) {
	if a.cfg.USB == "" {
		return a.cfg.Port, nil
	}
	p, err := a.ports.ResolveInterface(a.cfg.USB, a.cfg.USBSerial, a.cfg.USBInterface)
	if err != nil {
		return "", fmt.Errorf("uart serial port: %w", err)
	}
	return p, nil
}

// Run implements bridge.Adapter: it opens the port and turns what it reads
// into frames until ctx ends. When the port fails (a USB adapter pulled
// out) it returns the error: the supervisor opens it again after a backoff,
// under whatever /dev name the adapter comes back as when it is selected by
// USB identity.
func (a *Adapter) Run(ctx context.Context, bus *bridge.Bus, ready func()) error {
	path, err := a.path()
	if err != nil {
		return err
	}
	parity := byte('N')
	if a.cfg.Parity != "" {
		parity = a.cfg.Parity[0]
	}
	p, err := serialport.Open(path, a.cfg.Baud, a.cfg.DataBits, parity, a.cfg.StopBits)
	if err != nil {
		return fmt.Errorf("uart serial port: %w", err)
	}
	defer func() { _ = p.Close() }()
	if err := p.SetReadTimeout(readTimeout); err != nil {
		return fmt.Errorf("uart serial port %s: set read timeout: %w", path, err)
	}
	a.framer.Reset()
	a.portIsOpen.Store(true)
	defer a.portIsOpen.Store(false)
	defer a.setAllOffline()
	a.log.Info("serial port open", "port", path, "baud", a.cfg.Baud, "framing", a.cfg.Framing, "parser", a.cfg.Parser)
	if !namesDevices(a.cfg) {
		a.setOnline(a.cfg.Device) // the port is the device
	}
	ready()

	emit := func(frame []byte) { a.onFrame(ctx, bus, frame) }
	buf := make([]byte, readBuf)
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-a.cmds:
			if err := a.execute(p, j); err != nil {
				return err
			}
			continue
		default:
		}
		n, err := p.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if n > 0 {
			a.stats.bytes.Add(uint64(n))
			a.framer.Feed(buf[:n], emit)
			fs := a.framer.Stats()
			a.fsMu.Lock()
			a.fs = fs
			a.fsMu.Unlock()
		}
		if err != nil {
			a.log.Warn("serial port lost", "port", path, "err", err)
			return fmt.Errorf("uart serial port %s: read: %w", path, err)
		}
		// n == 0 and no error: the read timeout expired (go.bug.st/serial
		// reports it so, not as an error); loop to look at ctx and commands.
	}
}

// namesDevices reports whether the parser may take device names from the
// data (then a device is online once it sent a frame); otherwise every
// frame is the block's device, online as soon as the port is open.
func namesDevices(c config.UART) bool {
	switch c.Parser {
	case "json", "kv":
		return true
	case "csv":
		return slices.Contains(c.Columns, "device")
	case "regex", "":
		re, err := regexp.Compile(c.Pattern)
		return err == nil && slices.Contains(re.SubexpNames(), "device")
	}
	return false
}

// onFrame verifies, parses and publishes one frame.
func (a *Adapter) onFrame(ctx context.Context, bus *bridge.Bus, frame []byte) {
	payload, err := a.check(frame)
	if err != nil {
		a.stats.badChecksum.Add(1)
		a.logBad("frame dropped: bad checksum", frame, err)
		return
	}
	dev, pts, err := a.parser.Parse(payload, a.points[:0])
	a.points = pts[:0]
	if errors.Is(err, ErrEmpty) {
		a.stats.empty.Add(1) // a blank line: not an error
		return
	}
	if err != nil {
		a.stats.parseErrors.Add(1)
		a.logBad("frame dropped: cannot parse", payload, err)
		return
	}
	if dev == "" {
		dev = a.cfg.Device
	}
	if len(pts) == 0 {
		a.stats.empty.Add(1)
		return
	}
	f := bridge.Frame{Adapter: a.cfg.Name, Device: dev, Time: time.Now(), Points: make([]bridge.Point, len(pts))}
	copy(f.Points, pts)
	a.setOnline(dev)
	if err := bus.Send(ctx, f); err != nil {
		if ctx.Err() == nil {
			a.stats.frameErrors.Add(1)
			a.log.Warn("frame not accepted", "device", dev, "err", err)
		}
		return
	}
	a.stats.frames.Add(1)
}

func (a *Adapter) logBad(msg string, data []byte, err error) {
	ok, n := a.badLog.Allow(time.Now())
	if !ok {
		return
	}
	const show = 64
	d := data
	if len(d) > show {
		d = d[:show]
	}
	a.log.Warn(msg, "err", err, "frame", fmt.Sprintf("%q", d), "bytes", len(data), "suppressed", n)
}

func (a *Adapter) setOnline(dev string) {
	if a.online[dev] {
		return
	}
	a.online[dev] = true
	if a.avail != nil {
		a.avail(dev, true)
	}
}

func (a *Adapter) setAllOffline() {
	for dev := range a.online {
		if a.avail != nil {
			a.avail(dev, false)
		}
		delete(a.online, dev)
	}
}

// cmdJob is a command handed to the line goroutine.
type cmdJob struct {
	ctx  context.Context
	data [][]byte
	vals []bridge.PointValue
	done chan error
}

// Command implements bridge.Commander: each value is written to the port
// with the block's `write` template ({device}, {point}, {value}: the value
// in its bare text form), between two reads. The result's values are the
// values written (a serial device gives no read-back).
func (a *Adapter) Command(ctx context.Context, cmd bridge.Command) ([]bridge.PointValue, error) {
	if a.cfg.Write == "" {
		return nil, fmt.Errorf("uart %s has no write template: it takes no commands", a.cfg.Name)
	}
	j := &cmdJob{ctx: ctx, vals: cmd.Values, done: make(chan error, 1)}
	for _, pv := range cmd.Values {
		j.data = append(j.data, []byte(render(a.cfg.Write, cmd.Device, pv)))
	}
	if !a.portIsOpen.Load() {
		return nil, fmt.Errorf("uart %s: serial port not open", a.cfg.Name)
	}
	select {
	case a.cmds <- j:
	case <-ctx.Done():
		return nil, fmt.Errorf("uart %s busy or its port not open: %w", a.cfg.Name, ctx.Err())
	}
	select {
	case err := <-j.done:
		if err != nil {
			return nil, err
		}
		return cmd.Values, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no outcome from uart %s: %w", a.cfg.Name, ctx.Err())
	}
}

func (a *Adapter) execute(p serialport.Port, j *cmdJob) error {
	if j.ctx.Err() != nil {
		return nil
	}
	for _, b := range j.data {
		if _, err := p.Write(b); err != nil {
			a.stats.writeErrors.Add(1)
			j.done <- fmt.Errorf("write to the serial port: %w", err)
			return fmt.Errorf("uart serial port: write: %w", err)
		}
		a.stats.writes.Add(1)
	}
	j.done <- nil
	return nil
}

// render fills the write template.
func render(tmpl, device string, pv bridge.PointValue) string {
	r := strings.NewReplacer("{device}", device, "{point}", pv.Name, "{value}", string(pv.Value.AppendText(nil)))
	return r.Replace(tmpl)
}

// counters are the adapter's statistics, kept across restarts of Run.
type counters struct {
	bytes, frames, frameErrors, badChecksum, parseErrors, empty, writes, writeErrors atomic.Uint64
}

// Stats is a snapshot of an adapter's counters.
type Stats struct {
	Bytes, Frames, FrameErrors, BadChecksum, ParseErrors, Empty, Writes, WriteErrors uint64
	Framer                                                                           FramerStats
}

// Stats returns a snapshot of the counters.
func (a *Adapter) Stats() Stats {
	s := &a.stats
	a.fsMu.Lock()
	fs := a.fs
	a.fsMu.Unlock()
	return Stats{
		Bytes: s.bytes.Load(), Frames: s.frames.Load(), FrameErrors: s.frameErrors.Load(),
		BadChecksum: s.badChecksum.Load(), ParseErrors: s.parseErrors.Load(), Empty: s.empty.Load(),
		Writes: s.writes.Load(), WriteErrors: s.writeErrors.Load(), Framer: fs,
	}
}

var (
	_ bridge.Adapter   = (*Adapter)(nil)
	_ bridge.Commander = (*Adapter)(nil)
)
