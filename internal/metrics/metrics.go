package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxDevicesPerAdapter is the default of
// Options.MaxDevicesPerAdapter.
const DefaultMaxDevicesPerAdapter = 1000

// OtherDevice is the device label value that frames of devices beyond
// Options.MaxDevicesPerAdapter are counted under (and the adapter label
// value of commands and frames beyond maxAdapters adapters).
const OtherDevice = "_other"

// maxAdapters bounds the adapter label values of the series counted here
// (frames, commands). Adapters come from the configuration, so this is a
// safety net, not a limit anyone should meet: a command topic naming an
// adapter that does not exist must not create a series per name.
const maxAdapters = 256

// Options configures New. Zero values take defaults.
type Options struct {
	// MaxDevicesPerAdapter bounds the distinct device label values of
	// causeway_frames_total per adapter (CoAP devices are named by the
	// network: any client can POST to /anything). Frames of further
	// devices are counted under device="_other" and in
	// causeway_frames_overflow_total. Default 1000.
	MaxDevicesPerAdapter int
	// Version is the gateway's version, exported as a label of
	// causeway_build_info ("" is exported as "unknown").
	Version string
	// Start is when the gateway started, for uptime_s in StatsJSON.
	// Default: when New is called.
	Start time.Time
	// Log receives the errors met while serving a scrape (a metric that
	// could not be built, a client gone). Nil: discarded.
	Log *slog.Logger
}

// Metrics holds the gateway's metrics and its own prometheus.Registry.
// Its methods are safe for concurrent use.
type Metrics struct {
	source  func() Snapshot
	max     int
	start   time.Time
	now     func() time.Time // time.Now; tests replace it
	reg     *prometheus.Registry
	handler http.Handler

	mu     sync.RWMutex
	frames map[string]*adapterFrames // by adapter name as given to Frame

	lat latency

	cmdMu    sync.Mutex
	commands map[string]*[2]uint64 // by adapter: ok, error

	reloadsOK, reloadsErr atomic.Uint64
	lastReloadFailed      atomic.Bool
	lastReloadOK          atomic.Int64 // unix nanoseconds

	statsMu sync.Mutex
	prevLat [numBuckets]uint64 // latency bucket counts at the previous StatsJSON
}

// adapterFrames counts the frames of one adapter. The map and tracked are
// guarded by Metrics.mu; the counters are atomic.
type adapterFrames struct {
	label    string                    // adapter label value
	devices  map[string]*atomic.Uint64 // by device label value; OtherDevice maps to &other
	tracked  int                       // device series, OtherDevice excluded
	other    atomic.Uint64             // device="_other"
	overflow atomic.Uint64             // frames counted under _other because of the cap
}

// New returns the metrics of a gateway. source is called once per scrape
// (and once per StatsJSON) for the values the components count; it must be
// safe for concurrent use. A nil source exports an empty Snapshot (queue
// metrics at zero).
func New(source func() Snapshot, opts Options) *Metrics {
	if source == nil {
		source = func() Snapshot { return Snapshot{} }
	}
	if opts.MaxDevicesPerAdapter <= 0 {
		opts.MaxDevicesPerAdapter = DefaultMaxDevicesPerAdapter
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	m := &Metrics{
		source:   source,
		max:      opts.MaxDevicesPerAdapter,
		start:    opts.Start,
		now:      time.Now,
		reg:      prometheus.NewRegistry(),
		frames:   make(map[string]*adapterFrames),
		commands: make(map[string]*[2]uint64),
	}
	// The initial configuration load counts as the last successful one.
	m.lastReloadOK.Store(opts.Start.UnixNano())

	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "causeway_build_info",
		Help:        "Always 1; the labels give the gateway's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(
		build,
		&collector{m: m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	var errLog promhttp.Logger
	if opts.Log != nil {
		errLog = slogPrintln{opts.Log}
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: errLog,
		// One bad series (say, a duplicate adapter name in the snapshot)
		// must not hide all the others.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
	return m
}

// slogPrintln adapts a slog.Logger to promhttp.Logger.
type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) {
	l.log.Warn("metrics scrape", "err", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Registry returns the registry every metric is registered in (the
// snapshot collector, the Go runtime and process collectors, build info).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format (text
// unless the scraper negotiates otherwise).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Frame counts one frame of device from adapter, as the pipeline takes it
// from the bus. It does not allocate once the (adapter, device) pair has
// been seen; beyond MaxDevicesPerAdapter devices in an adapter the frame is
// counted under device="_other".
func (m *Metrics) Frame(adapter, device string) {
	m.mu.RLock()
	if af := m.frames[adapter]; af != nil {
		if c := af.devices[device]; c != nil {
			c.Add(1)
			m.mu.RUnlock()
			return
		}
		if af.tracked >= m.max {
			af.other.Add(1)
			af.overflow.Add(1)
			m.mu.RUnlock()
			return
		}
	}
	m.mu.RUnlock()
	m.frameSlow(adapter, device)
}

// frameSlow counts a frame of a device not seen yet (or of a name that is
// not valid UTF-8, which is looked up by its cleaned label every time).
func (m *Metrics) frameSlow(adapter, device string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	af := m.frames[adapter]
	if af == nil {
		if len(m.frames) >= maxAdapters {
			adapter = OtherDevice
			af = m.frames[adapter]
		}
		if af == nil {
			af = &adapterFrames{label: clean(adapter), devices: make(map[string]*atomic.Uint64)}
			af.devices[OtherDevice] = &af.other
			m.frames[adapter] = af
		}
	}
	label := clean(device)
	if c := af.devices[label]; c != nil {
		c.Add(1)
		return
	}
	if af.tracked >= m.max {
		af.other.Add(1)
		af.overflow.Add(1)
		return
	}
	c := new(atomic.Uint64)
	c.Add(1)
	af.devices[label] = c
	af.tracked++
}

// clean makes s a valid label value: invalid UTF-8 sequences become U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ForgetAdapter drops the series counted here for adapter name (frames per
// device, commands): for an adapter a configuration reload removed. The
// snapshot-based series of an adapter disappear by themselves once the
// Snapshot no longer lists it. Frames counted for name afterwards start
// new series from zero.
func (m *Metrics) ForgetAdapter(name string) {
	m.mu.Lock()
	delete(m.frames, name)
	m.mu.Unlock()
	m.cmdMu.Lock()
	delete(m.commands, name)
	m.cmdMu.Unlock()
}

// ObserveLatency records one end-to-end publish latency: from the frame's
// arrival on the bus to its messages published on the built-in broker and
// accepted by the offline queue. It does not allocate.
func (m *Metrics) ObserveLatency(d time.Duration) { m.lat.observe(d) }

// CommandResult counts one command executed by adapter, successful or
// not.
func (m *Metrics) CommandResult(adapter string, ok bool) {
	i := 1
	if ok {
		i = 0
	}
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	c := m.commands[adapter]
	if c == nil {
		if len(m.commands) >= maxAdapters {
			adapter = OtherDevice
			c = m.commands[adapter]
		}
		if c == nil {
			c = new([2]uint64)
			m.commands[adapter] = c
		}
	}
	c[i]++
}

// Reload counts one configuration reload, successful or not; a successful
// one also sets causeway_config_last_reload_success_timestamp_seconds.
func (m *Metrics) Reload(ok bool) {
	if ok {
		m.reloadsOK.Add(1)
		m.lastReloadOK.Store(m.now().UnixNano())
		m.lastReloadFailed.Store(false)
		return
	}
	m.reloadsErr.Add(1)
	m.lastReloadFailed.Store(true)
}

// frameCount is one causeway_frames_total series.
type frameCount struct {
	adapter, device string
	n               uint64
}

// adapterCount is the per-adapter figures of the frames counted here.
type adapterCount struct {
	adapter         string
	total, overflow uint64
	devices         int
}

// frameCounts copies the frame counters (not holding the lock while the
// registry consumes them).
func (m *Metrics) frameCounts(withDevices bool) ([]frameCount, []adapterCount) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []frameCount
	ads := make([]adapterCount, 0, len(m.frames))
	for _, af := range m.frames {
		ac := adapterCount{adapter: af.label, overflow: af.overflow.Load(), devices: af.tracked}
		for dev, c := range af.devices {
			n := c.Load()
			ac.total += n
			if withDevices && (dev != OtherDevice || n > 0) {
				out = append(out, frameCount{af.label, dev, n})
			}
		}
		ads = append(ads, ac)
	}
	return out, ads
}

// commandCounts copies the command counters.
func (m *Metrics) commandCounts() map[string][2]uint64 {
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	out := make(map[string][2]uint64, len(m.commands))
	for a, c := range m.commands {
		k := clean(a)
		v := out[k]
		out[k] = [2]uint64{v[0] + c[0], v[1] + c[1]}
	}
	return out
}
