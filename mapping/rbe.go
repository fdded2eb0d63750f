package mapping

import (
	"bytes"
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causeway/causeway/bridge"
)

// MaxTracked is how many points an Engine tracks for report by exception,
// over all its routes: one per route, adapter, device and point. Beyond it,
// the point whose last reading is the oldest is forgotten (see "Report by
// exception" in the package documentation).
const MaxTracked = 50_000

// RBEStats is what an Engine's report by exception holds and has evicted.
type RBEStats struct {
	Tracked int    // points tracked now
	Held    int    // points with a value held back by min_interval
	Evicted uint64 // points forgotten because MaxTracked was reached (carried over by Adopt)
}

// rbeKey names one tracked point. The strings are owned by the entry
// (cloned from the frame when the entry is made).
type rbeKey struct {
	route                  uint32 // index in Engine.routes
	adapter, device, point string
}

// rbeEntry is the state of one tracked point.
type rbeEntry struct {
	key rbeKey
	ord int // the point's index in the frame that last updated it: order in messages

	// The newest reading: what a held value or a heartbeat publishes.
	last     bridge.Value
	unit     string
	lastTime time.Time // the reading's time (the frame's Time), for payloads

	sent   bridge.Value // the value published last: what deadband compares to
	sentAt time.Time    // when it was published (the arrival clock)
	held   bool         // last waits for sentAt+MinInterval

	due     time.Time // when Due must publish it; zero: not scheduled
	heapIdx int       // index in rbeState.heap, -1 when not scheduled

	newer, older *rbeEntry // the recency list, by last reading
}

// rbeState is the report-by-exception state of one Engine.
type rbeState struct {
	mu      sync.Mutex
	max     int
	m       map[rbeKey]*rbeEntry
	heap    dueHeap
	newest  *rbeEntry // recency list: newest reading first
	oldest  *rbeEntry
	held    int
	evicted uint64
	// retired: Adopt gave this state to another engine. Map passes every
	// point through; what is left is only held values, for Flush.
	retired bool
}

func newRBEState() *rbeState {
	return &rbeState{max: MaxTracked, m: make(map[rbeKey]*rbeEntry)}
}

// filter applies report by exception to the keys (sorted by route) of
// routes that have it, and returns the keys to publish (in place) and the
// entries evicted to make room that held a value, which the caller must
// publish.
func (e *Engine) filter(now time.Time, f *bridge.Frame, keys []uint64) ([]uint64, []*rbeEntry) {
	found := false
	for _, k := range keys {
		if e.routes[k>>32].rbe {
			found = true
			break
		}
	}
	if !found {
		return keys, nil
	}
	if now.IsZero() {
		now = time.Now()
	}
	st := e.rbe
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.retired {
		return keys, nil
	}
	out := keys[:0]
	var evicted []*rbeEntry
	for g := keys; len(g) > 0; {
		c, grp := e.group(g)
		g = g[len(grp):]
		if !c.rbe {
			out = append(out, grp...)
			continue
		}
		route := uint32(grp[0] >> 32)
		groupOK := true
		if !c.perPoint {
			_, groupOK = c.topic.length(f.Adapter, f.Device, "")
		}
		for _, k := range grp {
			p := &f.Points[uint32(k)]
			keep := true
			switch {
			case !groupOK:
				// Skipped, and counted, by build.
			case p.Bad != "":
				// Errors always pass, and reset the point: the next
				// value is published as a first one.
				st.forget(rbeKey{route, f.Adapter, f.Device, p.Name})
			case !publishes(c, p):
				// No form in this payload format: not a reading to track.
			case c.perPoint && !topicOK(c, f, p.Name):
				// Skipped, and counted, by build.
			default:
				var ev *rbeEntry
				keep, ev = st.admit(c, now, rbeKey{route, f.Adapter, f.Device, p.Name}, f, p, int(uint32(k)))
				if ev != nil {
					evicted = append(evicted, ev)
				}
			}
			if keep {
				out = append(out, k)
			}
		}
	}
	return out, evicted
}

// publishes reports whether route c has a form for good point p.
func publishes(c *compiled, p *bridge.Point) bool {
	switch c.payload {
	case payValue:
		return hasValue(p)
	case paySenML:
		return senmlOK(p)
	}
	return true
}

func topicOK(c *compiled, f *bridge.Frame, point string) bool {
	_, ok := c.topic.length(f.Adapter, f.Device, point)
	return ok
}

// admit records a good reading of point p and reports whether to publish
// it now. evicted is an entry forgotten to make room that held a value.
func (st *rbeState) admit(c *compiled, now time.Time, key rbeKey, f *bridge.Frame, p *bridge.Point, ord int) (send bool, evicted *rbeEntry) {
	ent := st.m[key]
	if ent == nil {
		evicted = st.makeRoom()
		key.adapter = strings.Clone(key.adapter)
		key.device = strings.Clone(key.device)
		key.point = strings.Clone(key.point)
		ent = &rbeEntry{key: key, heapIdx: -1}
		st.m[key] = ent
		st.pushNewest(ent)
		ent.update(p, f.Time, ord)
		st.send(c, ent, now)
		return true, evicted
	}
	st.unlink(ent)
	st.pushNewest(ent)
	ent.update(p, f.Time, ord)
	switch {
	case c.Deadband > 0 && !moved(&ent.sent, &ent.last, c.Deadband):
		// Close to what was published: nothing to publish, not even a
		// value held before (the newest reading is the one that counts).
		st.setHeld(ent, false)
		st.schedule(c, ent)
		return false, evicted
	case c.MinInterval > 0 && now.Sub(ent.sentAt) < c.MinInterval:
		st.setHeld(ent, true)
		st.schedule(c, ent)
		return false, evicted
	}
	st.send(c, ent, now)
	return true, evicted
}

// update makes p (read at t) the entry's newest reading. Strings and bytes
// are copied only when they change.
func (ent *rbeEntry) update(p *bridge.Point, t time.Time, ord int) {
	if !sameValue(&ent.last, &p.Value) {
		ent.last = ownValue(&p.Value)
	}
	if ent.unit != p.Unit {
		ent.unit = strings.Clone(p.Unit)
	}
	ent.lastTime = t
	ent.ord = ord
}

// send records that the entry's newest reading is published now.
func (st *rbeState) send(c *compiled, ent *rbeEntry, now time.Time) {
	ent.sent = ent.last
	ent.sentAt = now
	st.setHeld(ent, false)
	st.schedule(c, ent)
}

func (st *rbeState) setHeld(ent *rbeEntry, held bool) {
	if ent.held != held {
		ent.held = held
		if held {
			st.held++
		} else {
			st.held--
		}
	}
}

// schedule sets when Due must look at the entry: the end of min_interval
// for a held value, else the heartbeat.
func (st *rbeState) schedule(c *compiled, ent *rbeEntry) {
	var due time.Time
	switch {
	case ent.held:
		due = ent.sentAt.Add(c.MinInterval)
	case c.MaxInterval > 0:
		due = ent.sentAt.Add(c.MaxInterval)
	}
	switch {
	case due.IsZero():
		if ent.heapIdx >= 0 {
			heap.Remove(&st.heap, ent.heapIdx)
		}
		ent.due = due
	case ent.heapIdx >= 0:
		if !due.Equal(ent.due) {
			ent.due = due
			heap.Fix(&st.heap, ent.heapIdx)
		}
	default:
		ent.due = due
		heap.Push(&st.heap, ent)
	}
}

// makeRoom forgets the entry with the oldest reading when the state is
// full, and returns it if it held a value.
func (st *rbeState) makeRoom() *rbeEntry {
	if len(st.m) < st.max || st.oldest == nil {
		return nil
	}
	victim := st.oldest
	st.remove(victim)
	st.evicted++
	if victim.held {
		return victim
	}
	return nil
}

// forget drops the state of one point, if tracked.
func (st *rbeState) forget(key rbeKey) {
	if ent := st.m[key]; ent != nil {
		st.remove(ent)
	}
}

// remove drops an entry from the map, the schedule and the recency list.
// Its held flag stays set (for the caller to publish it), but no longer
// counts in st.held.
func (st *rbeState) remove(ent *rbeEntry) {
	delete(st.m, ent.key)
	if ent.heapIdx >= 0 {
		heap.Remove(&st.heap, ent.heapIdx)
	}
	st.unlink(ent)
	if ent.held {
		st.held--
	}
}

func (st *rbeState) pushNewest(ent *rbeEntry) {
	ent.older = st.newest
	ent.newer = nil
	if st.newest != nil {
		st.newest.newer = ent
	} else {
		st.oldest = ent
	}
	st.newest = ent
}

func (st *rbeState) unlink(ent *rbeEntry) {
	if ent.newer != nil {
		ent.newer.older = ent.older
	} else if st.newest == ent {
		st.newest = ent.older
	}
	if ent.older != nil {
		ent.older.newer = ent.newer
	} else if st.oldest == ent {
		st.oldest = ent.newer
	}
	ent.newer, ent.older = nil, nil
}

func (st *rbeState) next() time.Time {
	if len(st.heap) == 0 {
		return time.Time{}
	}
	return st.heap[0].due
}

// Due appends the messages whose time has come at now: values held by
// min_interval whose interval has ended, and max_interval heartbeats. It
// returns the extended slice and when Due should be called next (the zero
// time: nothing is scheduled; a later Map may schedule something, see
// [Engine.NextDue]). A zero now means time.Now(). Engines without report by
// exception return at once.
//
// Each message has the route's topic, payload format, QoS, retain and
// uplink, and holds the point's newest reading with that reading's time.
// The points of a route without {point} in its topic that are due together
// share one message when they come from one device and have the same
// reading time.
func (e *Engine) Due(now time.Time, dst []bridge.Message) ([]bridge.Message, time.Time) {
	st := e.rbe
	if st == nil {
		return dst, time.Time{}
	}
	if now.IsZero() {
		now = time.Now()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var due []*rbeEntry
	for len(st.heap) > 0 && !st.heap[0].due.After(now) {
		due = append(due, heap.Pop(&st.heap).(*rbeEntry))
	}
	if len(due) > 0 {
		dst = e.appendEntries(dst, due)
		for _, ent := range due {
			st.send(&e.routes[ent.key.route], ent, now)
		}
	}
	return dst, st.next()
}

// NextDue returns when [Engine.Due] should be called next, or the zero
// time when nothing is scheduled. Map can only make it earlier. It takes
// no lock on an engine without report by exception.
func (e *Engine) NextDue() time.Time {
	st := e.rbe
	if st == nil {
		return time.Time{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.next()
}

// Flush appends a message for every value held by min_interval, at once,
// and forgets all report-by-exception state, as a restart would. Call it
// when the engine is no longer used: at shutdown, once the last frame is
// mapped, and on the old engine once a reload has replaced it (after
// [Engine.Adopt], only the held values of routes the new engine did not
// take over are left).
func (e *Engine) Flush(dst []bridge.Message) []bridge.Message {
	st := e.rbe
	if st == nil {
		return dst
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var held []*rbeEntry
	for _, ent := range st.m {
		if ent.held {
			held = append(held, ent)
		}
	}
	if len(held) > 0 {
		dst = e.appendEntries(dst, held)
	}
	clear(st.m)
	st.heap = nil
	st.newest, st.oldest = nil, nil
	st.held = 0
	return dst
}

// Adopt takes over the report-by-exception state of old, the engine this
// one replaces on a reload; call it before this engine maps anything. The
// state of a point moves when its route is unchanged (every key of the
// route the same; its place in the file may differ) and the point still
// selects that route here. Everything else starts again: its next value is
// published as a first one. Values that old held for routes that changed
// stay in old, for [Engine.Flush]. From then on old reports nothing by
// exception: a frame it still maps (one the swap raced with) publishes all
// its points, so nothing is lost. The evicted count carries over.
func (e *Engine) Adopt(old *Engine) {
	if old == nil || old == e || old.rbe == nil {
		return
	}
	ost := old.rbe
	ost.mu.Lock()
	defer ost.mu.Unlock()
	if ost.retired {
		return
	}
	ost.retired = true
	to := make(map[uint32]uint32) // old route index → new
	if e.rbe != nil {
		taken := make(map[int]bool)
		for j := range old.routes[:len(old.routes)-1] {
			oc := &old.routes[j]
			if !oc.rbe {
				continue
			}
			for i := range e.routes[:len(e.routes)-1] {
				if !taken[i] && e.routes[i].rbe && e.routes[i].Route == oc.Route {
					taken[i] = true
					to[uint32(j)] = uint32(i)
					break
				}
			}
		}
	}
	var ns *rbeState
	if e.rbe != nil {
		ns = e.rbe
		ns.mu.Lock()
		defer ns.mu.Unlock()
		ns.evicted += ost.evicted
	}
	for ent := ost.oldest; ent != nil; {
		newer := ent.newer
		i, ok := to[ent.key.route]
		switch {
		case ok && e.Select(ent.key.adapter, ent.key.device, ent.key.point) == int(i) && len(ns.m) < ns.max:
			ost.remove(ent)
			ent.key.route = i
			ns.m[ent.key] = ent
			ns.pushNewest(ent)
			if ent.held {
				ns.held++
			}
			if !ent.due.IsZero() {
				heap.Push(&ns.heap, ent)
			}
		case !ent.held:
			ost.remove(ent)
		}
		ent = newer
	}
}

// RBEStats reports what the engine's report by exception tracks.
func (e *Engine) RBEStats() RBEStats {
	st := e.rbe
	if st == nil {
		return RBEStats{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return RBEStats{Tracked: len(st.m), Held: st.held, Evicted: st.evicted}
}

// appendEntries appends the messages that publish the newest reading of
// each entry (sorted here): one per entry on a route with {point} in its
// topic, else one per device and reading time.
func (e *Engine) appendEntries(dst []bridge.Message, ents []*rbeEntry) []bridge.Message {
	slices.SortFunc(ents, func(a, b *rbeEntry) int {
		return cmp.Or(
			cmp.Compare(a.key.route, b.key.route),
			strings.Compare(a.key.adapter, b.key.adapter),
			strings.Compare(a.key.device, b.key.device),
			a.lastTime.Compare(b.lastTime),
			cmp.Compare(a.ord, b.ord),
			strings.Compare(a.key.point, b.key.point),
		)
	})
	var pts []bridge.Point
	var keys []uint64
	for len(ents) > 0 {
		// One frame per route, device and reading time: build makes one
		// message of it, or one per point with {point} in the topic.
		first := ents[0]
		n := 1
		for n < len(ents) && ents[n].key.route == first.key.route &&
			ents[n].key.adapter == first.key.adapter && ents[n].key.device == first.key.device &&
			ents[n].lastTime.Equal(first.lastTime) {
			n++
		}
		pts, keys = pts[:0], keys[:0]
		for i, ent := range ents[:n] {
			pts = append(pts, bridge.Point{Name: ent.key.point, Value: ent.last, Unit: ent.unit})
			keys = append(keys, uint64(first.key.route)<<32|uint64(i))
		}
		f := bridge.Frame{Adapter: first.key.adapter, Device: first.key.device, Time: first.lastTime, Points: pts}
		dst, _ = e.build(&f, keys, dst, 0)
		ents = ents[n:]
	}
	return dst
}

// moved reports whether v is at least deadband away from old: numbers and
// integers by their difference (non-finite numbers when not the same),
// other values when they differ.
func moved(old, v *bridge.Value, deadband float64) bool {
	a, aok := number(old)
	b, bok := number(v)
	if !aok || !bok {
		return !sameValue(old, v)
	}
	if old.Kind == bridge.KindInt && v.Kind == bridge.KindInt {
		x, y := old.Int, v.Int
		if x > y {
			x, y = y, x
		}
		return float64(uint64(y)-uint64(x)) >= deadband
	}
	if !finite(a) || !finite(b) {
		return !(a == b || math.IsNaN(a) && math.IsNaN(b))
	}
	return math.Abs(a-b) >= deadband
}

// number returns a number or integer value as a float64. Bools are not
// numbers here: a deadband on them means "changed".
func number(v *bridge.Value) (float64, bool) {
	switch v.Kind {
	case bridge.KindNumber:
		return v.Num, true
	case bridge.KindInt:
		return float64(v.Int), true
	}
	return 0, false
}

// sameValue reports whether a and b are the same value of the same kind
// (NaN is the same as NaN).
func sameValue(a, b *bridge.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case bridge.KindNumber:
		return a.Num == b.Num && math.Signbit(a.Num) == math.Signbit(b.Num) || math.IsNaN(a.Num) && math.IsNaN(b.Num)
	case bridge.KindInt:
		return a.Int == b.Int
	case bridge.KindBool:
		return a.Bool == b.Bool
	case bridge.KindString:
		return a.Str == b.Str
	case bridge.KindBytes:
		return bytes.Equal(a.Bytes, b.Bytes)
	}
	return true
}

// ownValue copies v's meaningful field, so that the state keeps no
// reference into the frame.
func ownValue(v *bridge.Value) bridge.Value {
	switch v.Kind {
	case bridge.KindNumber:
		return bridge.Number(v.Num)
	case bridge.KindInt:
		return bridge.Int(v.Int)
	case bridge.KindBool:
		return bridge.Bool(v.Bool)
	case bridge.KindString:
		return bridge.String(strings.Clone(v.Str))
	case bridge.KindBytes:
		return bridge.Bytes(bytes.Clone(v.Bytes))
	}
	return bridge.Value{}
}

// dueHeap orders scheduled entries by due time.
type dueHeap []*rbeEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h *dueHeap) Push(x any) {
	ent := x.(*rbeEntry)
	ent.heapIdx = len(*h)
	*h = append(*h, ent)
}

func (h *dueHeap) Pop() any {
	old := *h
	ent := old[len(old)-1]
	old[len(old)-1] = nil
	ent.heapIdx = -1
	*h = old[:len(old)-1]
	return ent
}
