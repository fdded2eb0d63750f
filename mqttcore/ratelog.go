package mqttcore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// logInterval is the minimum time between two log lines with the same key
// from a rateLimiter: at most one line per key per interval, the lines held
// back are counted and reported with the next one.
const logInterval = 10 * time.Second

// maxLimiterKeys bounds the number of keys a rateLimiter remembers; keys are
// static message texts, so this is only a safety net.
const maxLimiterKeys = 256

// rateLimiter decides whether a log line may be written now.
type rateLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	keys     map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed int
}

func newRateLimiter(interval time.Duration) *rateLimiter {
	return &rateLimiter{interval: interval, keys: make(map[string]*limitState)}
}

// allow reports whether a line with key may be logged at now, and how many
// lines with that key were held back since the last one logged.
func (r *rateLimiter) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.keys[key]
	if !ok {
		if len(r.keys) >= maxLimiterKeys {
			clear(r.keys)
		}
		r.keys[key] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < r.interval {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// log writes msg at level unless a line with the same msg was logged less
// than the interval ago; a "suppressed" attribute counts the lines held back.
func (r *rateLimiter) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	ok, n := r.allow(msg, time.Now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, slog.Int("suppressed", n))
	}
	l.Log(context.Background(), level, msg, args...)
}

// pahoLogger adapts slog to paho's log.Logger (Println/Printf).
type pahoLogger struct {
	l     *slog.Logger
	level slog.Level
}

func (p pahoLogger) Println(v ...any) {
	if p.l.Enabled(context.Background(), p.level) {
		p.l.Log(context.Background(), p.level, strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if p.l.Enabled(context.Background(), p.level) {
		p.l.Log(context.Background(), p.level, strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

// mochiHandler routes mochi-mqtt's slog output into the gateway's logger:
// mochi's Info lines (start/stop chatter) become Debug, per-connection
// errors with an empty message (a client that went away) become Debug, and
// Warn/Error lines are rate-limited per message so a misbehaving client
// cannot flood the log.
type mochiHandler struct {
	h   slog.Handler
	lim *rateLimiter
}

// mochiHotPath reports mochi's per-message log lines, rate-limited at any level.
func mochiHotPath(msg string) bool {
	return msg == "failed publishing packet" || msg == "failed to publish retained message"
}

func newMochiHandler(h slog.Handler) *mochiHandler {
	return &mochiHandler{h: h, lim: newRateLimiter(logInterval)}
}

func (m *mochiHandler) Enabled(ctx context.Context, level slog.Level) bool {
	if level < slog.LevelWarn {
		level = slog.LevelDebug
	}
	return m.h.Enabled(ctx, level)
}

func (m *mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := r.Level, r.Message
	switch {
	case level < slog.LevelWarn:
		level = slog.LevelDebug
	case msg == "":
		level, msg = slog.LevelDebug, "mqtt client connection ended"
	}
	if !m.h.Enabled(ctx, level) {
		return nil
	}
	nr := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		// mochi attaches whole packets (payload included): keep the topic.
		if a.Key == "packet" || a.Key == "pk" {
			switch pk := a.Value.Any().(type) {
			case packets.Packet:
				nr.AddAttrs(slog.String("topic", pk.TopicName))
			case *packets.Packet:
				nr.AddAttrs(slog.String("topic", pk.TopicName))
			}
			return true
		}
		nr.AddAttrs(a)
		return true
	})
	if level >= slog.LevelWarn || mochiHotPath(msg) {
		ok, n := m.lim.allow(msg, r.Time)
		if !ok {
			return nil
		}
		if n > 0 {
			nr.AddAttrs(slog.Int("suppressed", n))
		}
	}
	return m.h.Handle(ctx, nr)
}

func (m *mochiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &mochiHandler{h: m.h.WithAttrs(attrs), lim: m.lim}
}

func (m *mochiHandler) WithGroup(name string) slog.Handler {
	return &mochiHandler{h: m.h.WithGroup(name), lim: m.lim}
}
