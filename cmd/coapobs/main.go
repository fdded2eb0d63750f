// Command coapobs is an observable CoAP server for benchmarking the gateway
// as a CoAP client of devices ([[coap.device]] with observe = true).
//
// It serves -resources resources /r0../rN-1 on one UDP socket. A GET with
// Observe 0 registers the sender (RFC 7641): the response carries Observe
// and the current value, and from then on the resource sends the registered
// client a non-confirmable 2.05 notification every -period, until the client
// deregisters (GET with Observe 1), registers again (the new registration
// replaces the old one) or its connection ends. A GET without Observe gets
// the current value. Each resource's notifications start at a random offset
// within the period, so that N resources spread their load over it.
//
// Every payload is a JSON object (Content-Format 50) in the form that
// cmd/mqttcount counts:
//
//	{"run":123,"seq":42,"ts":1764064800123456,"v":7}
//
// v is the resource's Observe sequence number. Outside a counted window run
// is 0 and seq is the resource's own counter, so that mqttcount -run R
// ignores them. SIGUSR1 opens a counted window of -window: its notifications
// carry run -run, a global seq 0,1,2,… and the send time ts in microseconds
// since the Unix epoch. When the window ends, coapobs writes a summary of it
// as one JSON object to -result (see windowResult) and carries on as before.
// SIGINT or SIGTERM stops it; -json then prints the overall counters on
// stdout.
//
// This is benchmark tooling only; nothing in the gateway imports it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

type config struct {
	listen    string
	resources int
	period    time.Duration
	window    time.Duration
	run       int64
	result    string
	readyFile string
	json      bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "coapobs:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	srv := newServer(cfg)
	if err := srv.serve(ctx, usr1); err != nil {
		fmt.Fprintln(os.Stderr, "coapobs:", err)
		os.Exit(1)
	}
	st := srv.stats()
	fmt.Fprintf(os.Stderr, "coapobs: %d registrations, %d deregistrations, %d notifications sent, %d write errors\n",
		st.Registrations, st.Deregistrations, st.Notifications, st.WriteErrors)
	if cfg.json {
		_ = json.NewEncoder(os.Stdout).Encode(st)
	}
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("coapobs", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg config
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:5683", "UDP `host:port` to serve on (port 0: any free port, see -ready-file)")
	fs.IntVar(&cfg.resources, "resources", 100, "observable resources /r0../rN-1")
	fs.DurationVar(&cfg.period, "period", time.Second, "each resource notifies each of its observers this often")
	fs.DurationVar(&cfg.window, "window", 10*time.Second, "length of a counted window (opened by SIGUSR1)")
	fs.Int64Var(&cfg.run, "run", 0, "run id of the counted window's notifications (0 = random)")
	fs.StringVar(&cfg.result, "result", "", "write the summary of each counted window to this `file` (JSON), else to stderr")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "write the listening address to this `file` once serving")
	fs.BoolVar(&cfg.json, "json", false, "print the overall counters as one JSON object on stdout at exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: coapobs [flags]\n\nServes observable CoAP resources /r0../rN-1 that notify every -period; SIGUSR1 opens a counted window.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case cfg.resources < 1:
		return cfg, errors.New("-resources must be at least 1")
	case cfg.period <= 0:
		return cfg, errors.New("-period must be positive")
	case cfg.window <= 0:
		return cfg, errors.New("-window must be positive")
	}
	if cfg.run == 0 {
		cfg.run = rand.Int64N(1_000_000_000) + 1
	}
	return cfg, nil
}

// Stats are the overall counters, printed by -json.
type Stats struct {
	Resources       int    `json:"resources"`
	Observers       int    `json:"observers"` // registered now
	Registrations   uint64 `json:"registrations"`
	Deregistrations uint64 `json:"deregistrations"`
	Notifications   uint64 `json:"notifications"` // sent, responses to registrations not included
	WriteErrors     uint64 `json:"write_errors"`
	Windows         int    `json:"windows"`
}

// windowResult is the summary of one counted window, written to -result.
type windowResult struct {
	Run       int64   `json:"run"`
	Sent      int64   `json:"sent"`      // notifications of the window: seqs 0..sent-1
	Observers int     `json:"observers"` // registered when the window opened
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"rate"` // sent per second
	Errors    uint64  `json:"write_errors"`
}

type server struct {
	cfg   config
	paths map[string]int // "/r7" → 7

	counting atomic.Bool
	seq      atomic.Int64 // next seq of the counted window

	registrations, deregistrations, notifications, writeErrors atomic.Uint64

	mu      sync.Mutex
	obs     map[obsKey]*observer
	windows int
}

// obsKey names an observation: one client connection on one resource.
type obsKey struct {
	conn mux.Conn
	res  int
}

type observer struct {
	stop chan struct{}
	once sync.Once
}

func (o *observer) cancel() { o.once.Do(func() { close(o.stop) }) }

func newServer(cfg config) *server {
	s := &server{cfg: cfg, paths: make(map[string]int, cfg.resources), obs: map[obsKey]*observer{}}
	for i := range cfg.resources {
		s.paths["/r"+strconv.Itoa(i)] = i
	}
	return s
}

func (s *server) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Resources: s.cfg.resources, Observers: len(s.obs),
		Registrations: s.registrations.Load(), Deregistrations: s.deregistrations.Load(),
		Notifications: s.notifications.Load(), WriteErrors: s.writeErrors.Load(), Windows: s.windows,
	}
}

// payload returns the JSON body of a notification with Observe value v of
// a resource whose own counter is n.
func (s *server) payload(buf []byte, v uint32, n int64) []byte {
	run, seq := int64(0), n
	if s.counting.Load() {
		run, seq = s.cfg.run, s.seq.Add(1)-1
	}
	buf = append(buf[:0], `{"run":`...)
	buf = strconv.AppendInt(buf, run, 10)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, `,"ts":`...)
	buf = strconv.AppendInt(buf, time.Now().UnixMicro(), 10)
	buf = append(buf, `,"v":`...)
	buf = strconv.AppendUint(buf, uint64(v), 10)
	return append(buf, '}')
}

func (s *server) handle(w mux.ResponseWriter, r *mux.Message) {
	path, _ := r.Path()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	res, ok := s.paths[path]
	if !ok {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	if r.Code() != codes.GET {
		_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
		return
	}
	cc := w.Conn()
	key := obsKey{conn: cc, res: res}
	obs, err := r.Options().Observe()
	register := err == nil && obs == 0
	if err == nil && obs == 1 { // deregistration
		s.mu.Lock()
		if o := s.obs[key]; o != nil {
			o.cancel()
			delete(s.obs, key)
			s.deregistrations.Add(1)
		}
		s.mu.Unlock()
	}
	v := uint32(2)
	body := s.payload(nil, v, 0)
	if err := w.SetResponse(codes.Content, message.AppJSON, bytes.NewReader(body)); err != nil {
		return
	}
	if !register {
		return
	}
	w.Message().SetObserve(v)
	token := append([]byte(nil), r.Token()...)
	o := &observer{stop: make(chan struct{})}
	s.mu.Lock()
	if old := s.obs[key]; old != nil {
		old.cancel() // a new registration of the same client replaces the old one
	}
	s.obs[key] = o
	s.mu.Unlock()
	s.registrations.Add(1)
	go s.notify(cc, key, o, token, v+1)
}

// notify sends the observer a notification every period until it is
// cancelled or its connection ends.
func (s *server) notify(cc mux.Conn, key obsKey, o *observer, token []byte, v uint32) {
	defer func() {
		s.mu.Lock()
		if s.obs[key] == o {
			delete(s.obs, key)
		}
		s.mu.Unlock()
	}()
	// a random phase within the period spreads the resources' notifications
	first := time.NewTimer(time.Duration(rand.Int64N(int64(s.cfg.period))) + 1)
	select {
	case <-first.C:
	case <-o.stop:
		first.Stop()
		return
	case <-cc.Context().Done():
		first.Stop()
		return
	}
	t := time.NewTicker(s.cfg.period)
	defer t.Stop()
	var buf []byte
	for n := int64(1); ; n++ {
		buf = s.payload(buf, v, n)
		m := cc.AcquireMessage(cc.Context())
		m.SetCode(codes.Content)
		m.SetType(message.NonConfirmable)
		m.SetToken(token)
		m.SetObserve(v)
		m.SetContentFormat(message.AppJSON)
		m.SetBody(bytes.NewReader(buf))
		err := cc.WriteMessage(m)
		cc.ReleaseMessage(m)
		if err != nil {
			s.writeErrors.Add(1)
		} else {
			s.notifications.Add(1)
		}
		v = (v + 1) & (1<<24 - 1) // Observe is 24 bits
		select {
		case <-t.C:
		case <-o.stop:
			return
		case <-cc.Context().Done():
			return
		}
	}
}

// serve runs the server until ctx ends; each signal on usr1 opens a
// counted window (one at a time).
func (s *server) serve(ctx context.Context, usr1 <-chan os.Signal) error {
	l, err := coapnet.NewListenUDP("udp", s.cfg.listen)
	if err != nil {
		return err
	}
	defer l.Close()
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(s.handle))
	// An observer sends nothing after registering (the notifications are
	// non-confirmable), so go-coap's default inactivity timeout (16 s)
	// would end every observation: a day instead.
	srv := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}),
		options.WithInactivityMonitor(24*time.Hour, func(cc *udpclient.Conn) { _ = cc.Close() }))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer srv.Stop()
	addr := l.LocalAddr().String()
	fmt.Fprintf(os.Stderr, "coapobs: %d resources on %s, period %v\n", s.cfg.resources, addr, s.cfg.period)
	if s.cfg.readyFile != "" {
		if err := os.WriteFile(s.cfg.readyFile, []byte(addr+"\n"), 0o644); err != nil {
			return err
		}
	}
	var windowEnd <-chan time.Time
	var start time.Time
	var errs0 uint64
	var observers int
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			return err
		case <-usr1:
			if windowEnd != nil {
				continue // a window is open already
			}
			s.mu.Lock()
			observers = len(s.obs)
			s.windows++
			s.mu.Unlock()
			errs0 = s.writeErrors.Load()
			s.seq.Store(0)
			start = time.Now()
			s.counting.Store(true)
			windowEnd = time.After(s.cfg.window)
		case <-windowEnd:
			s.counting.Store(false)
			secs := time.Since(start).Seconds()
			windowEnd = nil
			// a notification that took its seq just before the switch may
			// still be on its way out; give it a moment
			time.Sleep(50 * time.Millisecond)
			sent := s.seq.Load()
			res := windowResult{Run: s.cfg.run, Sent: sent, Observers: observers, Seconds: secs,
				Rate: float64(sent) / secs, Errors: s.writeErrors.Load() - errs0}
			b, _ := json.Marshal(res)
			b = append(b, '\n')
			if s.cfg.result == "" {
				_, _ = os.Stderr.Write(b)
			} else if err := writeFileAtomic(s.cfg.result, b); err != nil {
				return err
			}
		}
	}
}

// writeFileAtomic writes b to a temporary file and renames it to name, so
// that a reader sees either nothing or the whole file.
func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
