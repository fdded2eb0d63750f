// Package logging builds the gateway's log/slog logger: text or JSON lines on
// one writer (standard error), a level and a format that can be changed at run
// time (configuration reload), journald-friendly output under systemd, and
// rate limiting of repeated warnings and errors.
//
// Output. Text is slog's key=value format, JSON is one object per line. Each
// record is written with exactly one Write call, whatever the number of
// goroutines logging.
//
// Journald. When Options.Journald is set (see UnderJournald) the time is left
// out, since journald stamps every line itself, and every line, text or JSON,
// starts with a syslog priority prefix: "<3>" error, "<4>" warning, "<6>"
// info, "<7>" debug. journald strips the prefix (SyslogLevelPrefix=yes, the
// default) and files the line under that priority, so journalctl -p warning
// shows the warnings and errors only. The level= / "level" field stays in the
// line.
//
// Rate limiting. A warning or error is identified by its level, its message
// and the values of the attributes adapter, device, component, port, peer and
// err, whether given to With or to the call. Within RepeatWindow, the first
// Burst records with one identity are written and the rest are counted; the
// first one written after the window carries suppressed=N. Debug and info
// records are never limited. The limiter remembers at most MaxKeys
// identities (least recently seen evicted first): its memory is bounded
// whatever the values (peer addresses, error texts) come from. It runs inside
// the handler, under a mutex; there is no goroutine to stop.
package logging

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultRepeatWindow = 10 * time.Second
	DefaultBurst        = 1
	DefaultMaxKeys      = 1024
)

// Options configure a logger. The zero value is usable: info level, text,
// timestamps, repeated warnings and errors limited to one per 10 s.
type Options struct {
	// Level is debug | info | warn | error; "" means info.
	Level string
	// Format is text | json; "" means text.
	Format string
	// Journald leaves the time out and prefixes every line with its syslog
	// priority ("<4>" for a warning): for standard error connected to the
	// journal, see UnderJournald.
	Journald bool
	// RepeatWindow: a warning or error repeated within the window (same
	// level, message, and values of adapter, device, component, port, peer,
	// err) is written Burst times, then counted; the first one written after
	// the window carries suppressed=N. 0 means DefaultRepeatWindow; a
	// negative window turns rate limiting off.
	RepeatWindow time.Duration
	// Burst is how many records of one identity are written per window;
	// 0 means DefaultBurst.
	Burst int
	// MaxKeys caps the identities the rate limiter remembers; 0 means
	// DefaultMaxKeys.
	MaxKeys int
	// Now, when set, replaces the clock: it stamps the records and drives
	// the rate limiter. For tests.
	Now func() time.Time
}

// Validate reports unknown Level and Format values.
func (o Options) Validate() error {
	_, err := o.settings()
	return err
}

// settings is Options checked and with defaults applied.
type settings struct {
	level    slog.Level
	json     bool
	journald bool
	window   time.Duration // <= 0: no rate limiting
	burst    int
	maxKeys  int
	now      func() time.Time
}

// settings returns the settings for o; for an invalid Level or Format it
// returns an error and, in the settings, the default for that field.
func (o Options) settings() (settings, error) {
	st := settings{
		journald: o.Journald,
		window:   o.RepeatWindow,
		burst:    o.Burst,
		maxKeys:  o.MaxKeys,
		now:      o.Now,
	}
	var errs []error
	switch o.Level {
	case "debug":
		st.level = slog.LevelDebug
	case "", "info":
		st.level = slog.LevelInfo
	case "warn":
		st.level = slog.LevelWarn
	case "error":
		st.level = slog.LevelError
	default:
		st.level = slog.LevelInfo
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", o.Level))
	}
	switch o.Format {
	case "", "text":
	case "json":
		st.json = true
	default:
		errs = append(errs, fmt.Errorf("log format %q: want text or json", o.Format))
	}
	if st.window == 0 {
		st.window = DefaultRepeatWindow
	}
	if st.burst <= 0 {
		st.burst = DefaultBurst
	}
	if st.maxKeys <= 0 {
		st.maxKeys = DefaultMaxKeys
	}
	return st, errors.Join(errs...)
}

// options returns the canonical Options for st: Set(options()) changes nothing.
func (st settings) options() Options {
	o := Options{
		Level:        "info",
		Format:       "text",
		Journald:     st.journald,
		RepeatWindow: st.window,
		Burst:        st.burst,
		MaxKeys:      st.maxKeys,
		Now:          st.now,
	}
	switch st.level {
	case slog.LevelDebug:
		o.Level = "debug"
	case slog.LevelWarn:
		o.Level = "warn"
	case slog.LevelError:
		o.Level = "error"
	}
	if st.json {
		o.Format = "json"
	}
	return o
}

// config is one applied set of options. Handlers read it with one atomic
// load per record; gen changes only when the inner handler is replaced.
type config struct {
	settings
	gen  uint64
	root slog.Handler // slog's text or JSON handler writing to the sink
}

// state is what a logger from New and every logger derived from it share.
type state struct {
	level slog.LevelVar
	cur   atomic.Pointer[config]
	mu    sync.Mutex // serializes apply
	out   sink
	lim   limiter
	seed  maphash.Seed
}

// apply makes st the current settings.
func (s *state) apply(st settings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	c := &config{settings: st}
	if old != nil && old.json == st.json && old.journald == st.journald {
		c.gen, c.root = old.gen, old.root
	} else {
		if old != nil {
			c.gen = old.gen + 1
		}
		w := &lineWriter{s: &s.out, prefix: st.journald, json: st.json}
		ho := &slog.HandlerOptions{Level: &s.level}
		if st.json {
			c.root = slog.NewJSONHandler(w, ho)
		} else {
			c.root = slog.NewTextHandler(w, ho)
		}
	}
	s.lim.setMax(st.maxKeys)
	s.level.Set(st.level)
	s.cur.Store(c)
}

// Control changes the options of a logger from New, and of every logger
// derived from it, while they are in use.
type Control struct {
	s *state
}

// New returns a logger writing to w, and its Control. Invalid Level or Format
// values fall back to info and text, and the logger's first line is a
// warning naming them; call opts.Validate first to refuse them instead.
func New(w io.Writer, opts Options) (*slog.Logger, *Control) {
	s := &state{seed: maphash.MakeSeed()}
	s.out.w = w
	st, err := opts.settings()
	s.apply(st)
	l := slog.New(&Handler{s: s})
	if err != nil {
		l.Warn("invalid logging options; using the defaults for them", "err", err)
	}
	return l, &Control{s: s}
}

// Set replaces all the options (zero fields take their defaults, as in New):
// the level, the format, journald mode and the rate limiting change for every
// logger derived from New's, including those made with With and WithGroup
// before the call, which keep their attributes and groups. Records being
// written during the call come out in the old or the new format, each whole.
// Set returns an error, and changes nothing, for an unknown Level or Format.
// To change only some fields, start from Options().
func (c *Control) Set(opts Options) error {
	st, err := opts.settings()
	if err != nil {
		return err
	}
	c.s.apply(st)
	return nil
}

// Options returns the options in effect, with the defaults filled in.
func (c *Control) Options() Options {
	return c.s.cur.Load().options()
}
