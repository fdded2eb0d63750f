package logging

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
)

// maxKeptBuf is the largest prefix buffer a sink keeps between lines.
const maxKeptBuf = 64 << 10

// sink is the logger's writer: one mutex for all the inner handlers, old and
// new, so that records never interleave, even across a format change.
type sink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // for prefixed lines; guarded by mu
}

// lineWriter is the writer of one inner slog handler. slog's handlers write
// each record, newline included, with one Write call; under journald the
// line gets its syslog priority prefix in front, still in one Write.
type lineWriter struct {
	s      *sink
	prefix bool
	json   bool
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	s := lw.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if pri := lw.priority(p); pri != 0 {
		b := append(s.buf[:0], '<', pri, '>')
		b = append(b, p...)
		_, err = s.w.Write(b)
		if cap(b) <= maxKeptBuf {
			s.buf = b[:0]
		} else {
			s.buf = nil
		}
	} else {
		_, err = s.w.Write(p)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

var (
	textLevel = []byte("level=")
	jsonLevel = []byte(`{"level":"`)
)

// priority returns the syslog priority digit for line p, or 0 for no
// prefix. Without a time (journald mode) slog's handlers start every line
// with the level: level=WARN ... or {"level":"WARN",...; custom levels read
// like INFO+2.
func (lw *lineWriter) priority(p []byte) byte {
	if !lw.prefix {
		return 0
	}
	var rest []byte
	var ok bool
	if lw.json {
		rest, ok = bytes.CutPrefix(p, jsonLevel)
	} else {
		rest, ok = bytes.CutPrefix(p, textLevel)
	}
	if !ok {
		return 0
	}
	end := bytes.IndexAny(rest, "\" \n")
	if end < 0 {
		return 0
	}
	l, ok := parseLevel(rest[:end])
	if !ok {
		return 0
	}
	return syslogPriority(l)
}

// levelNames are slog's level names, as Level.String writes them.
var levelNames = [...]struct {
	name  string
	level slog.Level
}{{"DEBUG", slog.LevelDebug}, {"INFO", slog.LevelInfo}, {"WARN", slog.LevelWarn}, {"ERROR", slog.LevelError}}

// parseLevel reads a level as Level.String writes it: a name, then maybe a
// signed offset (INFO+2, DEBUG-4). Unlike Level.UnmarshalText, it does not
// allocate.
func parseLevel(b []byte) (slog.Level, bool) {
	for _, n := range levelNames {
		rest, ok := bytes.CutPrefix(b, []byte(n.name))
		if !ok {
			continue
		}
		if len(rest) == 0 {
			return n.level, true
		}
		if len(rest) < 2 || len(rest) > 6 || (rest[0] != '+' && rest[0] != '-') {
			return 0, false
		}
		off := 0
		for _, c := range rest[1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			off = off*10 + int(c-'0')
		}
		if rest[0] == '-' {
			off = -off
		}
		return n.level + slog.Level(off), true
	}
	return 0, false
}

// syslogPriority maps a slog level to the syslog priority digit journald
// reads: err, warning, info, debug.
func syslogPriority(l slog.Level) byte {
	switch {
	case l >= slog.LevelError:
		return '3'
	case l >= slog.LevelWarn:
		return '4'
	case l >= slog.LevelInfo:
		return '6'
	default:
		return '7'
	}
}
