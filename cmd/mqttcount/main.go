// Command mqttcount is a counting MQTT 5 subscriber for benchmarking the
// gateway together with cmd/coapload.
//
// It subscribes to -topic on -broker and parses each message's JSON payload
// for the integer members "run", "seq" and "ts" (send time, microseconds
// since the Unix epoch) that coapload puts in every reading and the gateway
// passes through. It counts messages, unique sequence numbers, duplicates,
// missing sequence numbers (of 0..-expect-1, or of 0..the highest seen),
// per-topic reordering and end-to-end latency (receive time − ts), and the
// message rate over the receive window. It stops when every expected
// sequence number has been seen, when every one of -expect-file has, after
// -idle without a counted message (once one has arrived), after -duration,
// or on SIGINT/SIGTERM, and prints a summary; -json prints it as one JSON
// object on stdout.
//
// -expect-file FILE names the seqs that must arrive: those the gateway
// acknowledged, as written by coapload -acked (one decimal number per line,
// duplicates allowed). The summary reports how many distinct seqs the file
// holds (expected_acked), how many of them never arrived (missing_acked) and
// the lowest 20 of those (missing_acked_examples). FILE may appear later:
// mqttcount looks for it every 100 ms and reads it once it exists and is not
// empty; from then on it also stops as soon as all of its seqs have arrived
// (stop reason "acked"). So FILE should appear complete — let coapload write
// elsewhere and rename the file into place once coapload has exited. For
// the summary FILE is read again at the end, so the figures always hold for
// what it contains then. If FILE never appeared, expected_acked is 0 and
// "error" says so. Only seqs of the run counted are matched against FILE: one
// coapload run per file.
//
// Messages of another run id than -run (default: the first one seen) and
// payloads without the fields are counted apart and otherwise ignored.
//
// The MQTT client is a minimal one written for throughput: buffered reads,
// batched acknowledgements and no allocation per message.
//
// This is benchmark tooling only; nothing in the gateway imports it.
package main

import (
	"context"
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/causeway/causeway/bench/benchkit"
)

type config struct {
	addr       string
	filters    []string
	qos        int
	run        int64
	expect     int64
	idle       time.Duration
	duration   time.Duration
	clientID   string
	username   string
	password   string
	keepAlive  time.Duration
	readyFile  string
	expectFile string
	json       bool
	verbose    bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mqttcount:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqttcount:", err)
		os.Exit(1)
	}
	if cfg.json {
		res.printHuman(os.Stderr)
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "mqttcount:", err)
			os.Exit(1)
		}
	} else {
		res.printHuman(os.Stdout)
	}
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("mqttcount", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg config
	broker := fs.String("broker", "mqtt://127.0.0.1:1883", "broker `URL` (mqtt:// or tcp://)")
	topics := fs.String("topic", "#", "topic filter; several separated by commas")
	fs.IntVar(&cfg.qos, "qos", 1, "subscription QoS: 0, 1 or 2")
	fs.Int64Var(&cfg.run, "run", 0, "count only this run id (0 = the first run id seen)")
	fs.Int64Var(&cfg.expect, "expect", 0, "sequence numbers 0..N-1 are expected; stop when all have arrived (0 = judge by the highest seq seen)")
	fs.DurationVar(&cfg.idle, "idle", 5*time.Second, "stop after this long without a counted message, once one has arrived (0 = never)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after this long in any case (0 = no limit)")
	fs.StringVar(&cfg.clientID, "client-id", "", "MQTT client id (default: mqttcount-RANDOM)")
	fs.StringVar(&cfg.username, "user", "", "MQTT user name")
	fs.StringVar(&cfg.password, "pass", "", "MQTT password")
	fs.DurationVar(&cfg.keepAlive, "keepalive", 30*time.Second, "MQTT keep-alive")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "create this file once subscribed (for scripts)")
	fs.StringVar(&cfg.expectFile, "expect-file", "", "`file` of seqs that must arrive, one per line (coapload -acked); read once it exists and is not empty, then stop when all have arrived; reread for the summary")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as one JSON object on stdout (the human summary goes to stderr)")
	fs.BoolVar(&cfg.verbose, "v", false, "print progress every second on stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mqttcount [flags]\n\nCounts coapload readings {\"run\",\"seq\",\"ts\"} arriving over MQTT: loss, duplicates, latency, rate.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	u, err := url.Parse(*broker)
	if err != nil {
		return cfg, fmt.Errorf("-broker: %w", err)
	}
	if u.Scheme != "mqtt" && u.Scheme != "tcp" {
		return cfg, fmt.Errorf("-broker: scheme %q: only mqtt:// and tcp:// are supported", u.Scheme)
	}
	cfg.addr = u.Host
	if u.Port() == "" {
		cfg.addr = net.JoinHostPort(u.Hostname(), "1883")
	}
	for _, f := range strings.Split(*topics, ",") {
		if f = strings.TrimSpace(f); f != "" {
			cfg.filters = append(cfg.filters, f)
		}
	}
	switch {
	case len(cfg.filters) == 0:
		return cfg, errors.New("-topic: no filter")
	case cfg.qos < 0 || cfg.qos > 2:
		return cfg, errors.New("-qos must be 0, 1 or 2")
	case cfg.expect < 0 || cfg.idle < 0 || cfg.duration < 0:
		return cfg, errors.New("-expect, -idle and -duration must not be negative")
	case cfg.keepAlive < 0 || cfg.keepAlive > 65535*time.Second:
		return cfg, errors.New("-keepalive out of range")
	}
	if cfg.clientID == "" {
		cfg.clientID = fmt.Sprintf("mqttcount-%08x", rand.Uint32())
	}
	return cfg, nil
}

// Result is the summary of a run, printed by -json.
type Result struct {
	Run        int64  `json:"run"`
	Topic      string `json:"topic"`
	QoS        int    `json:"qos"` // granted
	Stop       string `json:"stop"`
	Messages   uint64 `json:"messages"` // all received
	Matched    uint64 `json:"matched"`  // of the run, with a seq
	OtherRun   uint64 `json:"other_run"`
	Unparsed   uint64 `json:"unparsed"`
	Invalid    uint64 `json:"invalid"`
	Unique     uint64 `json:"unique"`
	Duplicates uint64 `json:"duplicates"`
	Missing    int64  `json:"missing"`
	Expected   int64  `json:"expected"` // -expect, or max seq + 1
	MaxSeq     int64  `json:"max_seq"`
	Reordered  uint64 `json:"reordered"`
	// ReorderedByTopic lists the topics with messages that arrived after a
	// higher seq on the same topic, and how many; topics not listed had none.
	ReorderedByTopic map[string]uint64 `json:"reordered_by_topic"`
	Topics           int               `json:"topics"` // distinct topics counted (order tracked for up to 100,000)
	// -expect-file: distinct seqs in the file, how many of them never
	// arrived, and the lowest of those (at most 20).
	ExpectFile           string  `json:"expect_file,omitempty"`
	ExpectedAcked        uint64  `json:"expected_acked"`
	MissingAcked         int64   `json:"missing_acked"`
	MissingAckedExamples []int64 `json:"missing_acked_examples"`
	WindowSecs           float64 `json:"window_s"`
	Rate                 float64 `json:"rate"`
	P50us                int64   `json:"p50_us"`
	P90us                int64   `json:"p90_us"`
	P99us                int64   `json:"p99_us"`
	P999us               int64   `json:"p999_us"`
	MaxUs                int64   `json:"max_us"`
	MeanUs               float64 `json:"mean_us"`
	Error                string  `json:"error,omitempty"`
}

func run(ctx context.Context, cfg config, logw io.Writer) (*Result, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := dialMQTT(dctx, cfg.addr, connectOptions{
		clientID: cfg.clientID, username: cfg.username, password: cfg.password, keepAlive: cfg.keepAlive,
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cfg.addr, err)
	}
	granted, err := c.subscribe(cfg.filters, byte(cfg.qos))
	if err != nil {
		c.disconnect()
		return nil, err
	}
	start := time.Now()
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte("subscribed\n"), 0o644); err != nil {
			c.disconnect()
			return nil, err
		}
	}
	if cfg.verbose {
		fmt.Fprintf(logw, "mqttcount: subscribed to %s on %s, granted QoS %v\n", strings.Join(cfg.filters, ","), cfg.addr, granted)
	}

	tr := newTracker(cfg.run, cfg.expect)
	// With -expect-file the file is loaded into the tracker while the reader
	// runs: mu guards the tracker until the reader has stopped.
	var mu sync.Mutex
	locked := cfg.expectFile != ""
	var lastNs atomic.Int64 // time of the last counted message
	var matched atomic.Uint64
	readDone := make(chan error, 1)
	pingDone := make(chan struct{})
	go c.pinger(pingDone)
	go func() {
		readDone <- c.readLoop(func(topic, payload []byte, now time.Time) bool {
			if locked {
				mu.Lock()
				defer mu.Unlock()
			}
			before := tr.matched
			tr.observe(topic, payload, now)
			if tr.matched != before {
				lastNs.Store(now.UnixNano())
				matched.Store(tr.matched)
			}
			return !tr.done() && !tr.ackedDone()
		})
	}()

	var deadline <-chan time.Time
	if cfg.duration > 0 {
		t := time.NewTimer(cfg.duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var reason, errText string
	// loadExpect reads -expect-file once it exists and is not empty, and
	// hands it to the tracker; it sets reason when that ends the run.
	loaded := false
	loadExpect := func() {
		if cfg.expectFile == "" || loaded {
			return
		}
		if st, err := os.Stat(cfg.expectFile); err != nil || st.Size() == 0 {
			return // not there yet
		}
		set, n, err := readExpectFile(cfg.expectFile)
		if err != nil {
			reason, errText = "error", "-expect-file: "+err.Error()
			return
		}
		loaded = true
		mu.Lock()
		tr.setAcked(set, n)
		done := tr.ackedDone()
		mu.Unlock()
		if done {
			reason = "acked"
		}
		if cfg.verbose {
			fmt.Fprintf(logw, "mqttcount: %s: %d seqs expected\n", cfg.expectFile, n)
		}
	}
	loadExpect()
	lastReport, lastCount := start, uint64(0)
	readerDone := false
	for reason == "" {
		select {
		case err := <-readDone:
			readerDone = true
			switch {
			case tr.done():
				reason = "expect"
			case tr.ackedDone():
				reason = "acked"
			default:
				reason = "error"
				errText = err.Error()
			}
		case <-ctx.Done():
			reason = "signal"
		case <-deadline:
			reason = "duration"
		case now := <-tick.C:
			loadExpect()
			if last := lastNs.Load(); reason == "" && cfg.idle > 0 && last != 0 && now.Sub(time.Unix(0, last)) >= cfg.idle {
				reason = "idle"
			}
			if cfg.verbose && now.Sub(lastReport) >= time.Second {
				n := matched.Load()
				fmt.Fprintf(logw, "%6.1fs  counted %d (%.0f/s)\n", now.Sub(start).Seconds(), n,
					float64(n-lastCount)/now.Sub(lastReport).Seconds())
				lastReport, lastCount = now, n
			}
		}
	}
	c.disconnect()
	if !readerDone {
		<-readDone // the tracker is ours again once the reader has stopped
	}
	close(pingDone)

	res := &Result{
		Run: tr.run, Topic: strings.Join(cfg.filters, ","), QoS: int(granted[0]), Stop: reason,
		Messages: tr.messages, Matched: tr.matched, OtherRun: tr.otherRun, Unparsed: tr.unparsed,
		Invalid: tr.invalid, Unique: tr.unique, Duplicates: tr.dups, Missing: tr.missing(),
		Expected: cfg.expect, MaxSeq: tr.maxSeq, Reordered: tr.reordered,
		WindowSecs: tr.window().Seconds(), Rate: tr.rate(),
		P50us: tr.hist.Percentile(50), P90us: tr.hist.Percentile(90), P99us: tr.hist.Percentile(99),
		P999us: tr.hist.Percentile(99.9), MaxUs: tr.hist.Max(), MeanUs: tr.hist.Mean(), Error: errText,
		ReorderedByTopic: tr.reorderedByTopic(), Topics: len(tr.topics), MissingAckedExamples: []int64{},
	}
	if res.Expected == 0 {
		res.Expected = tr.maxSeq + 1
	}
	if cfg.expectFile != "" {
		res.ExpectFile = cfg.expectFile
		// The file as it is now is what counts, whatever was read before.
		set, n, err := readExpectFile(cfg.expectFile)
		if err != nil && tr.acked != nil && errors.Is(err, os.ErrNotExist) {
			set, n, err = tr.acked, tr.ackedN, nil // gone since it was read
		}
		if err != nil {
			msg := "-expect-file: " + err.Error()
			if res.Error == "" {
				res.Error = msg
			} else if !strings.Contains(res.Error, msg) {
				res.Error += "; " + msg
			}
		} else {
			res.ExpectedAcked = n
			res.MissingAcked, res.MissingAckedExamples = tr.missingFrom(set, maxMissingExamples)
		}
	}
	return res, nil
}

func (r *Result) printHuman(w io.Writer) {
	fmt.Fprintf(w, "mqttcount run=%d topic=%s qos=%d stopped by %s\n", r.Run, r.Topic, r.QoS, r.Stop)
	fmt.Fprintf(w, "  received %d (counted %d, other runs %d, unparsed %d, bad seq %d) over %.2fs: %.0f msg/s\n",
		r.Messages, r.Matched, r.OtherRun, r.Unparsed, r.Invalid, r.WindowSecs, r.Rate)
	fmt.Fprintf(w, "  unique %d  duplicates %d  missing %d of %d  reordered %d\n",
		r.Unique, r.Duplicates, r.Missing, r.Expected, r.Reordered)
	if len(r.ReorderedByTopic) > 0 {
		type tc struct {
			topic string
			n     uint64
		}
		var ts []tc
		for k, v := range r.ReorderedByTopic {
			ts = append(ts, tc{k, v})
		}
		sort.Slice(ts, func(i, j int) bool {
			if ts[i].n != ts[j].n {
				return ts[i].n > ts[j].n
			}
			return ts[i].topic < ts[j].topic
		})
		var parts []string
		for i, x := range ts {
			if i == 10 {
				parts = append(parts, fmt.Sprintf("and %d more topics", len(ts)-10))
				break
			}
			parts = append(parts, fmt.Sprintf("%s=%d", x.topic, x.n))
		}
		fmt.Fprintf(w, "  reordered by topic (of %d topics): %s\n", r.Topics, strings.Join(parts, " "))
	}
	if r.ExpectFile != "" {
		fmt.Fprintf(w, "  acked (%s) %d  missing %d", r.ExpectFile, r.ExpectedAcked, r.MissingAcked)
		if len(r.MissingAckedExamples) > 0 {
			fmt.Fprintf(w, "  e.g. %v", r.MissingAckedExamples)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		benchkit.FormatMicros(r.P50us), benchkit.FormatMicros(r.P90us), benchkit.FormatMicros(r.P99us), benchkit.FormatMicros(r.P999us), benchkit.FormatMicros(r.MaxUs), benchkit.FormatMicros(int64(r.MeanUs)))
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}
