package logging

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// identKeys are the attributes that, with the level and the message, identify
// a repeated warning or error.
var identKeys = [...]string{"adapter", "device", "component", "port", "peer", "err"}

func identIndex(key string) int {
	switch key {
	case "adapter":
		return 0
	case "device":
		return 1
	case "component":
		return 2
	case "port":
		return 3
	case "peer":
		return 4
	case "err":
		return 5
	}
	return -1
}

// ident holds the values of the identifying attributes seen so far; a later
// value of the same attribute replaces an earlier one.
type ident struct {
	mask uint8
	v    [len(identKeys)]slog.Value
}

// set records v, resolved, for identKeys[i].
func (id *ident) set(i int, v slog.Value) {
	id.mask |= 1 << i
	id.v[i] = v
}

// key returns the rate-limiting key of r logged through h, and the value of
// r's own integer suppressed attribute, if it has one.
func (h *Handler) key(r slog.Record) (key uint64, own int64, hasOwn bool) {
	id := h.id
	r.Attrs(func(a slog.Attr) bool {
		if i := identIndex(a.Key); i >= 0 {
			id.set(i, a.Value.Resolve())
		} else if a.Key == suppressedKey {
			if n, ok := intValue(a.Value.Resolve()); ok {
				own += n
				hasOwn = true
			}
		}
		return true
	})
	var hh maphash.Hash
	hh.SetSeed(h.s.seed)
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(int64(r.Level)))
	hh.Write(lb[:])
	writeString(&hh, r.Message)
	for i := range id.v {
		if id.mask&(1<<i) == 0 {
			continue
		}
		hh.WriteByte(byte(i))
		writeValue(&hh, id.v[i])
	}
	return hh.Sum64(), own, hasOwn
}

// writeString writes s, length first, so that no two sequences of strings
// hash the same input.
func writeString(hh *maphash.Hash, s string) {
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(s)))
	hh.Write(lb[:])
	hh.WriteString(s)
}

func writeBytes(hh *maphash.Hash, b []byte) {
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(b)))
	hh.Write(lb[:])
	hh.Write(b)
}

// writeValue writes v's text, without allocating for strings, numbers and
// errors.
func writeValue(hh *maphash.Hash, v slog.Value) {
	var buf [32]byte
	switch v.Kind() {
	case slog.KindString:
		writeString(hh, v.String())
	case slog.KindInt64:
		writeBytes(hh, strconv.AppendInt(buf[:0], v.Int64(), 10))
	case slog.KindUint64:
		writeBytes(hh, strconv.AppendUint(buf[:0], v.Uint64(), 10))
	case slog.KindBool:
		writeString(hh, strconv.FormatBool(v.Bool()))
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			writeString(hh, x.Error())
		case fmt.Stringer:
			writeString(hh, x.String())
		default:
			writeString(hh, v.String())
		}
	default:
		writeString(hh, v.String())
	}
}

// limiter decides which repeated warnings and errors are written. It
// remembers at most max keys, the least recently seen evicted first.
type limiter struct {
	mu   sync.Mutex
	max  int
	m    map[uint64]*entry
	head *entry // most recently seen
	tail *entry // least recently seen
}

type entry struct {
	key        uint64
	start      time.Time // of the window: when the last record was written after one
	count      int       // records written in the window
	suppressed int64     // records held back in the window
	prev, next *entry
}

// allow reports whether a record with key may be written at now, and how
// many records with key were held back since the last one written. own is
// what the record itself counts as suppressed upstream: if it is held back,
// that count is held back with it.
func (l *limiter) allow(key uint64, now time.Time, window time.Duration, burst int, own int64) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		e = l.insert(key)
		e.start, e.count, e.suppressed = now, 1, 0
		return true, 0
	}
	l.touch(e)
	switch {
	case now.Sub(e.start) >= window:
		n := e.suppressed
		e.start, e.count, e.suppressed = now, 1, 0
		return true, n
	case e.count < burst:
		e.count++
		return true, 0
	default:
		e.suppressed += 1 + own
		return false, 0
	}
}

// insert adds an entry for key at the head, evicting the tail when full.
func (l *limiter) insert(key uint64) *entry {
	if l.m == nil {
		l.m = make(map[uint64]*entry)
	}
	var e *entry
	if len(l.m) >= l.max && l.tail != nil {
		e = l.tail
		l.unlink(e)
		delete(l.m, e.key)
		*e = entry{}
	} else {
		e = new(entry)
	}
	e.key = key
	l.m[key] = e
	l.pushFront(e)
	return e
}

// setMax changes the capacity, evicting the least recently seen keys.
func (l *limiter) setMax(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = n
	for len(l.m) > n && l.tail != nil {
		e := l.tail
		l.unlink(e)
		delete(l.m, e.key)
	}
}

// len returns the number of keys remembered.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

func (l *limiter) touch(e *entry) {
	if l.head == e {
		return
	}
	l.unlink(e)
	l.pushFront(e)
}

func (l *limiter) pushFront(e *entry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

func (l *limiter) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
