// Command coapload is a CoAP load generator for benchmarking the gateway.
//
// Each client owns one UDP socket (one go-coap connection) and POSTs JSON
// readings with Content-Format 50 to /{device}, device names dev0..devK-1
// spread over the clients. Every payload carries the run id, a global
// sequence number and the send time in microseconds since the Unix epoch,
// padded to exactly -size bytes:
//
//	{"run":123,"seq":42,"ts":1764064800123456,"pad":"xxxx"}
//
// so that a subscriber (cmd/mqttcount) can count loss, duplicates and
// end-to-end latency. With -rate 0 the load is saturating: a confirmable
// client sends its next request when the previous one is answered; in NON
// mode every client keeps up to -window requests outstanding. With -rate R
// all clients share one steady schedule of R requests per second.
//
// Sending stops after -duration (default 10s unless -count is set), after
// -count requests in total (sent, whether answered or not; sequence numbers
// 0..count-1), or on SIGINT/SIGTERM, whichever comes first; requests still
// in flight then get their response or time out before coapload exits.
//
// The target may go away and come back on the same address (the gateway
// restarting) without ending the run: requests meanwhile time out or fail
// and are counted, the worker that saw the failure pauses for -pause, a
// connection that go-coap closed (its connected socket got an ICMP port
// unreachable) is replaced by a new one, and sending goes on.
//
// With -acked FILE the sequence number of every request answered with a
// 2.xx code is appended to FILE, one decimal number per line, through a
// buffer flushed every 100 ms and when the run ends (also on SIGINT or
// SIGTERM), so the file is complete once coapload has exited.
//
// It reports requests sent, responses by code, timeouts and errors, the
// achieved rate and request→response latency percentiles; -json prints the
// summary as one JSON object on stdout.
//
// A coaps:// URL (default port 5684) sends over DTLS 1.2 with the pre-shared
// key -psk-key (hex) under -psk-identity, cipher suites
// TLS_PSK_WITH_AES_128_CCM_8 and TLS_PSK_WITH_AES_128_GCM_SHA256: each client
// is then one DTLS session, handshaken when it is dialed (within -timeout).
//
// This is benchmark tooling only; nothing in the gateway imports it.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/causeway/causeway/bench/benchkit"
	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

type config struct {
	target   string // host:port
	prefix   string // path prefix from the URL, without trailing slash
	clients  int
	window   int
	devices  int
	size     int
	rate     float64
	duration time.Duration
	count    int64
	con      bool
	timeout  time.Duration
	pause    time.Duration // after a failed request, before the worker's next
	acked    string        // file the seqs of 2.xx responses are appended to
	run      int64
	json     bool
	verbose  bool
	psk      []byte // coaps://: DTLS with this pre-shared key
	identity string // coaps://: its PSK identity
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "coapload:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if res == nil {
		fmt.Fprintln(os.Stderr, "coapload:", err)
		os.Exit(1)
	}
	if cfg.json {
		res.printHuman(os.Stderr)
		enc := json.NewEncoder(os.Stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "coapload:", err)
			os.Exit(1)
		}
	} else {
		res.printHuman(os.Stdout)
	}
	if err != nil { // the run happened, but the -acked file is incomplete
		fmt.Fprintln(os.Stderr, "coapload:", err)
		os.Exit(1)
	}
	if res.Sent == 0 {
		os.Exit(1)
	}
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("coapload", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg config
	rawURL := fs.String("url", "coap://127.0.0.1:5683", "CoAP server `URL`; requests go to URL-path/{device}")
	fs.IntVar(&cfg.clients, "clients", 8, "concurrent clients, each with its own UDP socket")
	fs.IntVar(&cfg.window, "window", 16, "NON only: requests outstanding per client at saturation")
	fs.IntVar(&cfg.devices, "devices", 0, "number of devices dev0..devK-1 spread over the clients (0 = one per client)")
	fs.IntVar(&cfg.size, "size", 64, "payload size in bytes (the JSON is padded to exactly this)")
	fs.Float64Var(&cfg.rate, "rate", 0, "total requests per second over all clients (0 = saturate)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop sending after this long (default 10s unless -count is set)")
	fs.Int64Var(&cfg.count, "count", 0, "stop after this many requests in total, answered or not: seqs 0..N-1 (0 = no limit)")
	con := fs.Bool("con", true, "send confirmable requests")
	non := fs.Bool("non", false, "send non-confirmable requests (overrides -con)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "per-request timeout (a request without a response by then is a timeout)")
	fs.DurationVar(&cfg.pause, "pause", 100*time.Millisecond, "after a request timed out or failed, wait this long before that worker sends again (0 = no pause)")
	fs.StringVar(&cfg.acked, "acked", "", "append the seq of every request answered 2.xx to this `file`, one per line (flushed every 100ms and at exit)")
	fs.Int64Var(&cfg.run, "run", 0, "run id carried in every payload (0 = random)")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as one JSON object on stdout (the human summary goes to stderr)")
	fs.BoolVar(&cfg.verbose, "v", false, "print progress every second and the first errors on stderr")
	fs.StringVar(&cfg.identity, "psk-identity", "", "coaps:// only: DTLS PSK identity")
	pskKey := fs.String("psk-key", "", "coaps:// only: DTLS pre-shared key in hex")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: coapload [flags]\n\nPOSTs JSON readings {\"run\",\"seq\",\"ts\",\"pad\"} to coap://HOST:PORT/{device} and reports rate and latency.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.con = *con && !*non
	u, err := url.Parse(*rawURL)
	if err != nil {
		return cfg, fmt.Errorf("-url: %w", err)
	}
	port := "5683"
	switch u.Scheme {
	case "coap":
		if cfg.identity != "" || *pskKey != "" {
			return cfg, errors.New("-psk-identity and -psk-key need a coaps:// URL")
		}
	case "coaps":
		port = "5684"
		if cfg.identity == "" || *pskKey == "" {
			return cfg, errors.New("-url coaps:// needs -psk-identity and -psk-key")
		}
		if cfg.psk, err = hex.DecodeString(*pskKey); err != nil || len(cfg.psk) == 0 {
			return cfg, errors.New("-psk-key: want a non-empty hex string")
		}
	default:
		return cfg, fmt.Errorf("-url: scheme %q: only coap:// and coaps:// are supported", u.Scheme)
	}
	cfg.target = u.Host
	if u.Port() == "" {
		cfg.target = net.JoinHostPort(u.Hostname(), port)
	}
	cfg.prefix = strings.TrimRight(u.Path, "/")
	switch {
	case cfg.clients < 1:
		return cfg, errors.New("-clients must be at least 1")
	case cfg.window < 1:
		return cfg, errors.New("-window must be at least 1")
	case cfg.devices < 0:
		return cfg, errors.New("-devices must not be negative")
	case cfg.rate < 0:
		return cfg, errors.New("-rate must not be negative")
	case cfg.count < 0 || cfg.duration < 0:
		return cfg, errors.New("-count and -duration must not be negative")
	case cfg.timeout <= 0:
		return cfg, errors.New("-timeout must be positive")
	case cfg.pause < 0:
		return cfg, errors.New("-pause must not be negative")
	case cfg.size < 0 || cfg.size > 60000:
		return cfg, errors.New("-size must be 0..60000 (one UDP datagram)")
	}
	if cfg.devices == 0 {
		cfg.devices = cfg.clients
	}
	if cfg.duration == 0 && cfg.count == 0 {
		cfg.duration = 10 * time.Second
	}
	if cfg.run == 0 {
		cfg.run = rand.Int64N(1_000_000_000) + 1
	}
	return cfg, nil
}

// deviceSet returns the device names client c of n sends to: devices are
// dealt round-robin, so each device belongs to one client when there are at
// least as many devices as clients, and clients share devices otherwise.
func deviceSet(c, clients, devices int) []int {
	if devices <= clients {
		return []int{c % devices}
	}
	var ds []int
	for d := c; d < devices; d += clients {
		ds = append(ds, d)
	}
	return ds
}

// workerStats is owned by one worker goroutine; merged at the end.
type workerStats struct {
	hist     benchkit.Histogram
	codes    [256]uint64
	sent     uint64
	timeouts uint64
	errors   uint64
	oversize uint64
	lastSend time.Time
	firstErr error // first error other than a timeout
}

// shared is the state all workers of one run share.
type shared struct {
	cfg       config
	seq       atomic.Int64
	sent      atomic.Uint64 // progress only
	answered  atomic.Uint64 // progress only
	pacer     *pacer
	acked     *ackLog // nil without -acked
	connErrs  atomic.Uint64
	errSample atomic.Pointer[string]
}

// Result is the summary of a run, printed by -json.
type Result struct {
	Run          int64             `json:"run"`
	Mode         string            `json:"mode"`
	DTLS         bool              `json:"dtls,omitempty"` // coaps://: one DTLS session per client
	Clients      int               `json:"clients"`
	Window       int               `json:"window"`
	Devices      int               `json:"devices"`
	Size         int               `json:"size"`
	TargetRate   float64           `json:"target_rate"`
	Sent         uint64            `json:"sent"`
	Responses    uint64            `json:"responses"`
	OK           uint64            `json:"ok"` // 2.xx responses
	Codes        map[string]uint64 `json:"codes"`
	Timeouts     uint64            `json:"timeouts"`
	Errors       uint64            `json:"errors"`
	ConnErrors   uint64            `json:"conn_errors"`
	Reconnects   uint64            `json:"reconnects"` // connections replaced after go-coap closed them
	Acked        uint64            `json:"acked"`      // seqs written to -acked
	AckedFile    string            `json:"acked_file,omitempty"`
	Oversize     uint64            `json:"oversize"`
	FirstSeq     int64             `json:"first_seq"`
	LastSeq      int64             `json:"last_seq"` // sequence numbers used: first_seq..last_seq
	SendSeconds  float64           `json:"send_s"`
	TotalSeconds float64           `json:"total_s"`
	Rate         float64           `json:"rate"`    // sent per second of the sending window
	OKRate       float64           `json:"ok_rate"` // 2.xx responses per second of the sending window
	P50us        int64             `json:"p50_us"`
	P90us        int64             `json:"p90_us"`
	P99us        int64             `json:"p99_us"`
	P999us       int64             `json:"p999_us"`
	MaxUs        int64             `json:"max_us"`
	MeanUs       float64           `json:"mean_us"`
	FirstError   string            `json:"first_error,omitempty"`
}

// codeString formats a CoAP code as class.detail, e.g. "2.04".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", c>>5, c&31)
}

// run runs the load. It returns a nil result with an error when the run
// could not start, and a result with an error when the run happened but the
// -acked file could not be written completely.
func run(ctx context.Context, cfg config, logw io.Writer) (res *Result, err error) {
	sh := &shared{cfg: cfg}
	perClient := 1
	if !cfg.con {
		perClient = cfg.window
	}
	if cfg.acked != "" {
		al, err := openAckLog(cfg.acked, ackFlushEvery)
		if err != nil {
			return nil, fmt.Errorf("-acked: %w", err)
		}
		sh.acked = al
		defer func() {
			if cerr := al.close(); cerr != nil && err == nil {
				err = fmt.Errorf("-acked %s: %w", cfg.acked, cerr)
			}
		}()
	}
	opts := []udp.Option{
		options.WithBlockwise(false, blockwise.SZX1024, time.Second),
		options.WithLimitClientParallelRequest(int64(perClient)),
		options.WithLimitClientEndpointParallelRequest(int64(perClient)),
		options.WithErrors(func(err error) {
			sh.connErrs.Add(1)
			msg := err.Error()
			sh.errSample.CompareAndSwap(nil, &msg)
		}),
	}
	dial := func() (*udpclient.Conn, error) {
		if cfg.psk != nil {
			return dialDTLS(cfg, opts)
		}
		cc, err := udp.Dial(cfg.target, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", cfg.target, err)
		}
		return cc, nil
	}
	clients := make([]*client, cfg.clients)
	for i := range clients {
		cl, err := newClient(dial)
		if err != nil {
			for _, c := range clients[:i] {
				c.close()
			}
			return nil, err
		}
		clients[i] = cl
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()

	sendCtx := ctx
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	start := time.Now()
	if cfg.rate > 0 {
		sh.pacer = newPacer(cfg.rate, start)
	}
	if cfg.verbose {
		done := make(chan struct{})
		defer close(done)
		go progress(sh, start, logw, done)
	}

	paths := make([]string, cfg.devices)
	for d := range paths {
		paths[d] = cfg.prefix + "/dev" + strconv.Itoa(d)
	}
	stats := make([]*workerStats, cfg.clients*perClient)
	var wg sync.WaitGroup
	for c := range cfg.clients {
		devs := deviceSet(c, cfg.clients, cfg.devices)
		for w := range perClient {
			st := &workerStats{}
			stats[c*perClient+w] = st
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Requests in flight when sending stops (deadline, count,
				// signal) still get their response or timeout.
				worker(context.Background(), sendCtx, sh, clients[c], paths, devs, w, st)
			}()
		}
	}
	wg.Wait()
	end := time.Now()

	res = &Result{
		Run: cfg.run, Mode: "CON", Clients: cfg.clients, Window: perClient,
		Devices: cfg.devices, Size: cfg.size, TargetRate: cfg.rate,
		Codes: map[string]uint64{}, ConnErrors: sh.connErrs.Load(),
		TotalSeconds: end.Sub(start).Seconds(), AckedFile: cfg.acked, DTLS: cfg.psk != nil,
	}
	for _, c := range clients {
		res.Reconnects += c.reconnects()
	}
	if sh.acked != nil {
		res.Acked = sh.acked.count()
	}
	if !cfg.con {
		res.Mode = "NON"
	}
	var hist benchkit.Histogram
	var codeCounts [256]uint64
	lastSend := start
	for _, st := range stats {
		hist.Merge(&st.hist)
		res.Sent += st.sent
		res.Timeouts += st.timeouts
		res.Errors += st.errors
		res.Oversize += st.oversize
		for i, n := range st.codes {
			codeCounts[i] += n
		}
		if st.lastSend.After(lastSend) {
			lastSend = st.lastSend
		}
		if st.firstErr != nil && res.FirstError == "" {
			res.FirstError = st.firstErr.Error()
		}
	}
	if res.FirstError == "" {
		if s := sh.errSample.Load(); s != nil {
			res.FirstError = *s
		}
	}
	for i, n := range codeCounts {
		if n == 0 {
			continue
		}
		res.Codes[codeString(codes.Code(i))] = n
		res.Responses += n
		if i>>5 == 2 {
			res.OK += n
		}
	}
	// Sequence numbers are taken in order; every one taken is sent unless
	// building the request failed (counted as an error).
	used := sh.seq.Load()
	if cfg.count > 0 && used > cfg.count {
		used = cfg.count
	}
	res.FirstSeq, res.LastSeq = 0, used-1
	// The sending window ends at the deadline when -duration ended the run,
	// else (-count reached, interrupted) at the last send.
	countDone := cfg.count > 0 && sh.seq.Load() >= cfg.count
	if !countDone && ctx.Err() == nil && errors.Is(sendCtx.Err(), context.DeadlineExceeded) {
		lastSend = start.Add(cfg.duration)
	}
	res.SendSeconds = lastSend.Sub(start).Seconds()
	if res.SendSeconds > 0 {
		res.Rate = float64(res.Sent) / res.SendSeconds
		res.OKRate = float64(res.OK) / res.SendSeconds
	}
	res.P50us = hist.Percentile(50)
	res.P90us = hist.Percentile(90)
	res.P99us = hist.Percentile(99)
	res.P999us = hist.Percentile(99.9)
	res.MaxUs = hist.Max()
	res.MeanUs = hist.Mean()
	return res, nil
}

// dialDTLS opens one DTLS session to the target with the pre-shared key and
// completes its handshake within -timeout.
func dialDTLS(cfg config, opts []udp.Option) (*udpclient.Conn, error) {
	raw, err := net.Dial("udp", cfg.target)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.target, err)
	}
	psk := cfg.psk
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		piondtls.WithPSKIdentityHint([]byte(cfg.identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256),
	)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("DTLS client for %s: %w", cfg.target, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	err = dc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("DTLS handshake with %s (identity %q): %w", cfg.target, cfg.identity, err)
	}
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}

// worker sends requests on cl until sendCtx is done or the count is
// reached; each request's context derives from ctx, with -timeout. A failed
// request (timeout, closed connection, target unreachable) is counted and
// followed by a pause of -pause; the worker never gives up before the end.
func worker(ctx, sendCtx context.Context, sh *shared, cl *client, paths []string, devs []int, w int, st *workerStats) {
	cfg := sh.cfg
	buf := make([]byte, 0, cfg.size+64)
	rd := bytes.NewReader(nil)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pause := func() {
		if cfg.pause <= 0 {
			return
		}
		timer.Reset(cfg.pause)
		select {
		case <-timer.C:
		case <-sendCtx.Done():
			timer.Stop()
		}
	}
	next := w % len(devs)
	for sendCtx.Err() == nil {
		if cfg.count > 0 && sh.seq.Load() >= cfg.count {
			return
		}
		if sh.pacer != nil {
			if err := sh.pacer.wait(sendCtx, timer); err != nil || sendCtx.Err() != nil {
				return
			}
		}
		cc, err := cl.conn()
		if err != nil {
			st.fail(err, false)
			pause()
			continue
		}
		seq := sh.seq.Add(1) - 1
		if cfg.count > 0 && seq >= cfg.count {
			return
		}
		path := paths[devs[next]]
		next++
		if next == len(devs) {
			next = 0
		}
		now := time.Now()
		buf = appendPayload(buf[:0], cfg.run, seq, now.UnixMicro(), cfg.size)
		if len(buf) != cfg.size {
			st.oversize++
		}
		rd.Reset(buf)
		rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		req, err := cc.NewPostRequest(rctx, path, message.AppJSON, rd)
		if err != nil {
			cancel()
			st.fail(err, false)
			continue
		}
		if !cfg.con {
			req.SetType(message.NonConfirmable)
		}
		st.sent++
		st.lastSend = now
		sh.sent.Add(1)
		resp, err := cc.Do(req)
		lat := time.Since(now)
		cc.ReleaseMessage(req)
		cancel()
		if err != nil {
			st.fail(err, errors.Is(err, context.DeadlineExceeded))
			pause()
			continue
		}
		code := resp.Code()
		st.codes[uint8(code)]++
		cc.ReleaseMessage(resp)
		if code>>5 == 2 && sh.acked != nil {
			sh.acked.add(seq)
		}
		st.hist.Record(lat.Microseconds())
		sh.answered.Add(1)
	}
}

func (st *workerStats) fail(err error, timeout bool) {
	if timeout {
		st.timeouts++
	} else {
		st.errors++
	}
	if st.firstErr == nil && !timeout {
		st.firstErr = err
	}
}

func progress(sh *shared, start time.Time, w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastAns uint64
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			s, a := sh.sent.Load(), sh.answered.Load()
			fmt.Fprintf(w, "%6.1fs  sent %d (%d/s)  answered %d (%d/s)  conn errors %d\n",
				now.Sub(start).Seconds(), s, s-lastSent, a, a-lastAns, sh.connErrs.Load())
			lastSent, lastAns = s, a
		}
	}
}

func (r *Result) printHuman(w io.Writer) {
	rate := "saturating"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("target %.0f/s", r.TargetRate)
	}
	mode := r.Mode
	if r.DTLS {
		mode += " over DTLS"
	}
	fmt.Fprintf(w, "coapload run=%d %s clients=%d window=%d devices=%d size=%dB %s\n",
		r.Run, mode, r.Clients, r.Window, r.Devices, r.Size, rate)
	keys := make([]string, 0, len(r.Codes))
	for k := range r.Codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cs []string
	for _, k := range keys {
		cs = append(cs, fmt.Sprintf("%s=%d", k, r.Codes[k]))
	}
	fmt.Fprintf(w, "  sent %d (seq %d..%d) in %.2fs: %.0f req/s, 2.xx %.0f/s\n",
		r.Sent, r.FirstSeq, r.LastSeq, r.SendSeconds, r.Rate, r.OKRate)
	fmt.Fprintf(w, "  responses %d [%s]  timeouts %d  errors %d  conn errors %d  reconnects %d\n",
		r.Responses, strings.Join(cs, " "), r.Timeouts, r.Errors, r.ConnErrors, r.Reconnects)
	if r.AckedFile != "" {
		fmt.Fprintf(w, "  acked %d seqs appended to %s\n", r.Acked, r.AckedFile)
	}
	fmt.Fprintf(w, "  latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		benchkit.FormatMicros(r.P50us), benchkit.FormatMicros(r.P90us), benchkit.FormatMicros(r.P99us), benchkit.FormatMicros(r.P999us), benchkit.FormatMicros(r.MaxUs), benchkit.FormatMicros(int64(r.MeanUs)))
	if r.Oversize > 0 {
		fmt.Fprintf(w, "  warning: %d payloads were larger than -size %d (too small for the fields)\n", r.Oversize, r.Size)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
}
