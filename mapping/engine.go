package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/causeway/causeway/bridge"
)

type payloadKind uint8

const (
	payJSON payloadKind = iota
	payValue
	paySenML
)

// compiled is a validated route, ready for Map.
type compiled struct {
	Route
	glob     glob
	topic    template
	payload  payloadKind
	perPoint bool // the topic holds {point}: one message per point
	rbe      bool // reports by exception: its state is in Engine.rbe
}

// Engine maps frames to messages with a fixed list of routes. It is safe
// for concurrent use. Its routes never change; the only state it keeps is
// that of routes that report by exception (see the package documentation).
type Engine struct {
	gateway    string
	gatewayEsc string     // gateway id escaped for a JSON string
	routes     []compiled // the config's routes, then the default route
	rbe        *rbeState  // nil when no route reports by exception
}

// Stack space for the per-frame scratch of Map; larger frames or route lists
// allocate.
const (
	stackRoutes = 64
	stackPoints = 64
)

// New compiles routes (in file order) for the gateway id. It reports every
// problem at once, joined, each prefixed with the route's index in routes:
// "route[2]: topic: ...".
func New(gatewayID string, routes []Route) (*Engine, error) {
	var errs []error
	if err := bridge.CheckGatewayID(gatewayID); err != nil {
		errs = append(errs, err)
	}
	e := &Engine{
		gateway:    gatewayID,
		gatewayEsc: string(appendEscaped(nil, gatewayID)),
		routes:     make([]compiled, 0, len(routes)+1),
	}
	for i, r := range routes {
		if rerrs := ValidateRoute(r); len(rerrs) > 0 {
			for _, err := range rerrs {
				errs = append(errs, fmt.Errorf("route[%d]: %w", i, err))
			}
			continue
		}
		e.routes = append(e.routes, compile(r, gatewayID))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e.routes = append(e.routes, compile(DefaultRoute(), gatewayID))
	for i := range e.routes {
		if e.routes[i].rbe {
			e.rbe = newRBEState()
			break
		}
	}
	return e, nil
}

// compile builds a route that ValidateRoute accepted.
func compile(r Route, gateway string) compiled {
	c := compiled{Route: r}
	c.glob, _ = compileGlob(r.Match)
	if r.Drop {
		return c
	}
	c.topic, _ = compileTemplate(r.Topic, gateway)
	c.perPoint = c.topic.hasPoint
	c.rbe = r.rbe()
	switch r.Payload {
	case PayloadValue:
		c.payload = payValue
	case PayloadSenML:
		c.payload = paySenML
	}
	return c
}

// Routes returns the number of configured routes (the default route not
// counted).
func (e *Engine) Routes() int { return len(e.routes) - 1 }

// Select returns the index of the route the point takes, or -1 for the
// default route. It does not check names.
func (e *Engine) Select(adapter, device, point string) int {
	for i := range e.routes[:len(e.routes)-1] {
		if e.routes[i].glob.match(adapter, device, point) {
			return i
		}
	}
	return -1
}

// Map appends to dst the messages for frame f and returns the extended
// slice. See the package documentation for what it publishes and skips.
// For routes that report by exception, the frame arrives now
// ([Engine.MapAt] with time.Now()).
func (e *Engine) Map(f *bridge.Frame, dst []bridge.Message) []bridge.Message {
	dst, _ = e.MapCountAt(time.Time{}, f, dst)
	return dst
}

// MapAt is [Engine.Map] for a frame that arrived at now: the time that
// min_interval and max_interval count from (see "Report by exception" in
// the package documentation). It is not the frame's Time, which payloads
// carry: device clocks drift, and frames wait in the bus. A zero now
// means time.Now(), read only when a route reports by exception.
func (e *Engine) MapAt(now time.Time, f *bridge.Frame, dst []bridge.Message) []bridge.Message {
	dst, _ = e.MapCountAt(now, f, dst)
	return dst
}

// MapCount is [Engine.Map] that also returns how many points it skipped for
// an unusable adapter, device or point name, or because their topic would be
// longer than MQTT allows or start with '$'; the caller should count them as
// refused input. Points discarded by a drop route, points a payload
// format has no form for (bad quality in "value" and "senml"), and points
// that report by exception held back or skipped, are not counted.
func (e *Engine) MapCount(f *bridge.Frame, dst []bridge.Message) ([]bridge.Message, int) {
	return e.MapCountAt(time.Time{}, f, dst)
}

// MapCountAt is [Engine.MapCount] for a frame that arrived at now, as
// [Engine.MapAt].
func (e *Engine) MapCountAt(now time.Time, f *bridge.Frame, dst []bridge.Message) ([]bridge.Message, int) {
	if f == nil || len(f.Points) == 0 {
		return dst, 0
	}
	if !bridge.NameOK(f.Adapter) || !bridge.NameOK(f.Device) || bridge.ReservedDevice(f.Device) {
		return dst, len(f.Points)
	}
	skipped := 0

	// Which user routes can match this adapter/device at all.
	user := e.routes[:len(e.routes)-1]
	var maskBuf [stackRoutes]uint8
	masks := maskBuf[:0]
	if len(user) > stackRoutes {
		masks = make([]uint8, 0, len(user))
	}
	candidates := false
	for i := range user {
		m := user[i].glob.prefix(f.Adapter, f.Device)
		masks = append(masks, m)
		candidates = candidates || m != 0
	}

	// Select a route per point; keys sort by route, then point index.
	var keyBuf [stackPoints]uint64
	keys := keyBuf[:0]
	if len(f.Points) > stackPoints {
		keys = make([]uint64, 0, len(f.Points))
	}
	def := uint64(len(user))
	sorted := true
	for i := range f.Points {
		name := f.Points[i].Name
		if !bridge.NameOK(name) || bridge.ReservedPoint(name) {
			skipped++
			continue
		}
		r := def
		if candidates {
			for j := range user {
				if masks[j] != 0 && user[j].glob.point(masks[j], name) {
					r = uint64(j)
					break
				}
			}
		}
		if e.routes[r].Drop {
			continue
		}
		k := r<<32 | uint64(i)
		if len(keys) > 0 && k < keys[len(keys)-1] {
			sorted = false
		}
		keys = append(keys, k)
	}
	if !sorted {
		slices.Sort(keys)
	}
	if e.rbe == nil {
		return e.build(f, keys, dst, skipped)
	}
	var evicted []*rbeEntry
	keys, evicted = e.filter(now, f, keys)
	dst, skipped = e.build(f, keys, dst, skipped)
	if len(evicted) > 0 {
		dst = e.appendEntries(dst, evicted)
	}
	return dst, skipped
}

// build appends the messages for the points of f at keys (route << 32 |
// point index, sorted) and adds to skipped the points whose topic cannot
// be published.
func (e *Engine) build(f *bridge.Frame, keys []uint64, dst []bridge.Message, skipped int) ([]bridge.Message, int) {
	// Plan: count messages, topic bytes and payload bytes.
	nmsg, topicLen, payloadLen := 0, 0, 0
	needTime, needBT := false, false
	for g := keys; len(g) > 0; {
		c, grp := e.group(g)
		g = g[len(grp):]
		if !c.perPoint {
			if c.payload == paySenML && !anySenML(f, grp) {
				continue
			}
			n, ok := c.topic.length(f.Adapter, f.Device, "")
			if !ok {
				skipped += len(grp)
				continue
			}
			nmsg++
			topicLen += n
			payloadLen += 48 + len(e.gatewayEsc) + len(f.Adapter) + len(f.Device)
			for _, k := range grp {
				payloadLen += estimate(&f.Points[uint32(k)])
			}
			needTime = needTime || c.payload == payJSON
			needBT = needBT || c.payload == paySenML
			continue
		}
		for _, k := range grp {
			p := &f.Points[uint32(k)]
			if !emits(c, p) {
				continue
			}
			n, ok := c.topic.length(f.Adapter, f.Device, p.Name)
			if !ok {
				skipped++
				continue
			}
			topicLen += n
			nmsg++
			payloadLen += estimate(p)
			if c.payload != payValue {
				payloadLen += 48 + len(e.gatewayEsc) + len(f.Adapter) + len(f.Device)
			}
			needTime = needTime || c.payload == payJSON
			needBT = needBT || c.payload == paySenML
		}
	}
	if nmsg == 0 {
		return dst, skipped
	}

	// Build. All topics of the frame live in one string, all payloads in one
	// buffer.
	ft := frameText{f: f, gateway: e.gatewayEsc}
	var tsBuf, btBuf [32]byte
	if needTime {
		ft.ts = appendTime(tsBuf[:0], f.Time)
	}
	if needBT {
		ft.bt = appendEpoch(btBuf[:0], f.Time)
	}
	var topics strings.Builder
	topics.Grow(topicLen)
	buf := make([]byte, 0, payloadLen)
	dst = slices.Grow(dst, nmsg)
	emit := func(c *compiled, point string, start int) {
		ts := topics.Len()
		c.topic.write(&topics, f.Adapter, f.Device, point)
		dst = append(dst, bridge.Message{
			Topic:   topics.String()[ts:],
			Payload: buf[start:len(buf):len(buf)],
			QoS:     c.QoS,
			Retain:  c.Retain,
			Uplink:  c.Uplink,
		})
	}
	for g := keys; len(g) > 0; {
		c, grp := e.group(g)
		g = g[len(grp):]
		if !c.perPoint {
			if c.payload == paySenML && !anySenML(f, grp) {
				continue
			}
			if _, ok := c.topic.length(f.Adapter, f.Device, ""); !ok {
				continue
			}
			start := len(buf)
			if c.payload == paySenML {
				buf = appendSenML(buf, &ft, grp)
			} else {
				buf = appendJSONObject(buf, &ft, grp)
			}
			emit(c, "", start)
			continue
		}
		for j, k := range grp {
			p := &f.Points[uint32(k)]
			if !emits(c, p) {
				continue
			}
			if _, ok := c.topic.length(f.Adapter, f.Device, p.Name); !ok {
				continue
			}
			start := len(buf)
			switch c.payload {
			case payValue:
				buf = p.Value.AppendText(buf)
			case paySenML:
				buf = appendSenML(buf, &ft, grp[j:j+1])
			default:
				buf = appendJSONObject(buf, &ft, grp[j:j+1])
			}
			emit(c, p.Name, start)
		}
	}
	return dst, skipped
}

// group returns the route of keys[0] and the leading keys that share it.
func (e *Engine) group(keys []uint64) (*compiled, []uint64) {
	r := keys[0] >> 32
	n := 1
	for n < len(keys) && keys[n]>>32 == r {
		n++
	}
	return &e.routes[r], keys[:n]
}

// emits reports whether a per-point route publishes p.
func emits(c *compiled, p *bridge.Point) bool {
	switch c.payload {
	case payValue:
		return hasValue(p)
	case paySenML:
		return senmlOK(p)
	}
	return true
}

func anySenML(f *bridge.Frame, grp []uint64) bool {
	for _, k := range grp {
		if senmlOK(&f.Points[uint32(k)]) {
			return true
		}
	}
	return false
}
