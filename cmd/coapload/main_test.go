package main

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

func TestDeviceSet(t *testing.T) {
	cases := []struct {
		c, clients, devices int
		want                []int
	}{
		{0, 8, 8, []int{0}},
		{7, 8, 8, []int{7}},
		{1, 4, 10, []int{1, 5, 9}},
		{3, 4, 10, []int{3, 7}},
		{5, 8, 3, []int{2}}, // fewer devices than clients: shared
	}
	for _, c := range cases {
		if got := deviceSet(c.c, c.clients, c.devices); !slices.Equal(got, c.want) {
			t.Errorf("deviceSet(%d,%d,%d) = %v, want %v", c.c, c.clients, c.devices, got, c.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-url", "coap://127.0.0.1:9999/base/", "-non", "-clients", "3", "-run", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.target != "127.0.0.1:9999" || cfg.prefix != "/base" || cfg.con || cfg.devices != 3 ||
		cfg.duration != 10*time.Second || cfg.run != 5 {
		t.Fatalf("%+v", cfg)
	}
	cfg, err = parseFlags([]string{"-url", "coap://localhost", "-count", "10"}, io.Discard)
	if err != nil || cfg.target != "localhost:5683" || cfg.duration != 0 || !cfg.con || cfg.run == 0 {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, bad := range [][]string{{"-url", "coaps://x"}, {"-clients", "0"}, {"-rate", "-1"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
}

func TestCodeString(t *testing.T) {
	for c, want := range map[codes.Code]string{codes.Changed: "2.04", codes.ServiceUnavailable: "5.03", codes.NotFound: "4.04"} {
		if got := codeString(c); got != want {
			t.Errorf("codeString(%v) = %q, want %q", c, got, want)
		}
	}
}

// received is what the test server saw.
type received struct {
	mu      sync.Mutex
	seqs    map[int64]int
	paths   map[string]int
	types   map[message.Type]int
	badSize int
	badCF   int
	runs    map[int64]int
}

// startServer runs an in-process CoAP server that answers every POST with
// code and records the payloads.
func startServer(t *testing.T, code codes.Code) (string, *received) {
	t.Helper()
	rec := &received{seqs: map[int64]int{}, paths: map[string]int{}, types: map[message.Type]int{}, runs: map[int64]int{}}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		body, _ := io.ReadAll(m.Body())
		var v struct {
			Run, Seq, TS int64
			Pad          string
		}
		p, _ := m.Path()
		cf, _ := m.ContentFormat()
		rec.mu.Lock()
		if err := json.Unmarshal(body, &v); err == nil {
			rec.seqs[v.Seq]++
			rec.runs[v.Run]++
		}
		if len(body) != 64 {
			rec.badSize++
		}
		if cf != message.AppJSON {
			rec.badCF++
		}
		rec.paths[p]++
		rec.types[m.Type()]++
		rec.mu.Unlock()
		_ = w.SetResponse(code, message.TextPlain, nil)
	}))
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); _ = l.Close() })
	return l.LocalAddr().String(), rec
}

func TestRunAgainstServer(t *testing.T) {
	for _, con := range []bool{true, false} {
		name := map[bool]string{true: "CON", false: "NON"}[con]
		t.Run(name, func(t *testing.T) {
			addr, rec := startServer(t, codes.Changed)
			cfg := config{target: addr, prefix: "/p", clients: 3, window: 4, devices: 5, size: 64,
				count: 600, con: con, timeout: 5 * time.Second, run: 77}
			res, err := run(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 600 || res.OK != 600 || res.Responses != 600 || res.Codes["2.04"] != 600 ||
				res.Timeouts != 0 || res.Errors != 0 || res.Mode != name || res.LastSeq != 599 {
				t.Fatalf("%+v", res)
			}
			if res.P50us <= 0 || res.P99us < res.P50us || res.MaxUs < res.P99us || res.Rate <= 0 {
				t.Fatalf("implausible latency/rate %+v", res)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for seq := range int64(600) {
				if rec.seqs[seq] != 1 {
					t.Fatalf("seq %d received %d times", seq, rec.seqs[seq])
				}
			}
			if len(rec.seqs) != 600 || rec.runs[77] != 600 || rec.badSize != 0 || rec.badCF != 0 {
				t.Fatalf("seqs %d runs %v badSize %d badCF %d", len(rec.seqs), rec.runs, rec.badSize, rec.badCF)
			}
			want := message.Confirmable
			if !con {
				want = message.NonConfirmable
			}
			if rec.types[want] != 600 {
				t.Fatalf("message types %v", rec.types)
			}
			if len(rec.paths) != 5 {
				t.Fatalf("paths %v", rec.paths)
			}
			for p, n := range rec.paths {
				if !strings.HasPrefix(p, "/p/dev") || n < 1 {
					t.Fatalf("paths %v", rec.paths)
				}
			}
		})
	}
}

func TestRunRateAndCodes(t *testing.T) {
	addr, _ := startServer(t, codes.ServiceUnavailable)
	// NON with a window, so that a slow response (a loaded machine, -race)
	// does not hold the schedule back.
	cfg := config{target: addr, clients: 4, window: 8, devices: 4, size: 100, rate: 500,
		duration: time.Second, con: false, timeout: time.Second, run: 1}
	start := time.Now()
	res, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a 1s run took %v", took)
	}
	// 500/s for 1s: about 500 requests, never a burst above it. (No lower
	// bound: on a starved machine slots pass unused, by design.)
	if res.Sent == 0 || res.Sent > 510 || res.Codes["5.03"] != res.Responses ||
		res.Responses+res.Timeouts != res.Sent || res.OK != 0 {
		t.Fatalf("%+v", res)
	}
	t.Logf("sent %d at a target of 500/s", res.Sent)
}

func TestRunTimeouts(t *testing.T) {
	// A UDP port where nothing answers: every request times out.
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := config{target: l.LocalAddr().String(), clients: 2, window: 3, devices: 2, size: 64,
		count: 6, con: false, timeout: 200 * time.Millisecond, run: 1}
	res, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 6 || res.Timeouts != 6 || res.Responses != 0 {
		t.Fatalf("%+v", res)
	}
}
