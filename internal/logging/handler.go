package logging

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// suppressedKey is the attribute counting the records held back.
const suppressedKey = "suppressed"

// Handler is the slog.Handler of the loggers New returns. It keeps its
// WithAttrs/WithGroup chain so that a format change (Control.Set) reaches
// loggers derived before it: each derived Handler rebuilds its slog text or
// JSON handler from its parent's once per change, on its next record.
type Handler struct {
	s      *state
	parent *Handler    // nil for the root
	group  string      // this node is WithGroup(group) when non-empty,
	attrs  []slog.Attr // else WithAttrs(attrs)
	id     ident       // identifying attributes from the root to here
	built  atomic.Pointer[built]
}

// built caches a derived Handler's inner handler for one config generation.
type built struct {
	gen uint64
	h   slog.Handler
}

// Enabled reports whether level is at or above the current level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.s.level.Level()
}

// Handle rate-limits warnings and errors, then writes r in the current
// format.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	c := h.s.cur.Load()
	now := r.Time
	if c.now != nil {
		now = c.now()
		r.Time = now
	} else if now.IsZero() {
		now = time.Now()
	}
	if r.Level >= slog.LevelWarn && c.window > 0 {
		key, own, hasOwn := h.key(r)
		ok, n := h.s.lim.allow(key, now, c.window, c.burst, own)
		if !ok {
			return nil
		}
		switch {
		case n > 0:
			r = withSuppressed(r, n, hasOwn)
		case hasOwn && own == 0:
			// An upstream limiter's suppressed=0 says nothing: left out.
			r = withoutSuppressed(r)
		}
	}
	if c.journald {
		r.Time = time.Time{} // slog's handlers leave a zero time out
	}
	return h.inner(c).Handle(ctx, r)
}

// inner returns the slog handler for c with this Handler's attributes and
// groups applied.
func (h *Handler) inner(c *config) slog.Handler {
	if h.parent == nil {
		return c.root
	}
	if b := h.built.Load(); b != nil && b.gen == c.gen {
		return b.h
	}
	p := h.parent.inner(c)
	var ih slog.Handler
	if h.group != "" {
		ih = p.WithGroup(h.group)
	} else {
		ih = p.WithAttrs(h.attrs)
	}
	// Two goroutines may build it at once: either result is right.
	h.built.Store(&built{gen: c.gen, h: ih})
	return ih
}

// WithAttrs returns a Handler adding attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	n := &Handler{s: h.s, parent: h, attrs: attrs, id: h.id}
	for _, a := range attrs {
		if i := identIndex(a.Key); i >= 0 {
			n.id.set(i, a.Value.Resolve())
		}
	}
	return n
}

// WithGroup returns a Handler that puts the attributes that follow in group
// name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{s: h.s, parent: h, group: name, id: h.id}
}

// withSuppressed returns r with suppressed=n; when r has its own integer
// suppressed attribute (from a limiter upstream) that one is replaced by the
// sum, so the line has one suppressed attribute counting everything held
// back.
func withSuppressed(r slog.Record, n int64, hasOwn bool) slog.Record {
	if !hasOwn {
		r = r.Clone()
		r.AddAttrs(slog.Int64(suppressedKey, n))
		return r
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == suppressedKey {
			if k, ok := intValue(a.Value.Resolve()); ok {
				n += k
				return true
			}
		}
		nr.AddAttrs(a)
		return true
	})
	nr.AddAttrs(slog.Int64(suppressedKey, n))
	return nr
}

// withoutSuppressed returns r without its suppressed attribute.
func withoutSuppressed(r slog.Record) slog.Record {
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != suppressedKey {
			nr.AddAttrs(a)
		}
		return true
	})
	return nr
}

// intValue returns v as an int64 if it is an integer.
func intValue(v slog.Value) (int64, bool) {
	switch v.Kind() {
	case slog.KindInt64:
		return v.Int64(), true
	case slog.KindUint64:
		return int64(v.Uint64()), true
	}
	return 0, false
}
