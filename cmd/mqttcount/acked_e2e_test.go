package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// buildCoapload builds cmd/coapload into a temporary directory.
func buildCoapload(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coapload")
	out, err := exec.Command("go", "build", "-o", bin, "../coapload").CombinedOutput()
	if err != nil {
		t.Fatalf("build coapload: %v\n%s", err, out)
	}
	return bin
}

// fakeGateway is a CoAP server that publishes every reading to an MQTT
// broker at QoS 1 and answers 2.04 once the broker has it, or answers 5.03
// without publishing when refuse says so, or answers 2.04 without
// publishing (a lost acknowledged reading) when lose says so.
type fakeGateway struct {
	t      *testing.T
	addr   string
	broker string
	prefix string // topics are PREFIX/coap/{device}
	refuse func(seq int64) bool
	lose   func(seq int64) bool

	mu   sync.Mutex
	lost map[int64]bool // seqs acknowledged but never published
	stop func()
}

func (g *fakeGateway) start() {
	g.t.Helper()
	nc, err := net.Dial("tcp", g.broker)
	if err != nil {
		g.t.Error(err)
		return
	}
	pub := paho.NewClient(paho.ClientConfig{Conn: nc})
	if _, err := pub.Connect(context.Background(), &paho.Connect{ClientID: clientID(g.t, "gw"), CleanStart: true, KeepAlive: 30}); err != nil {
		g.t.Error(err)
		return
	}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		body, _ := io.ReadAll(m.Body())
		var v struct{ Seq int64 }
		if json.Unmarshal(body, &v) != nil || g.refuse(v.Seq) {
			_ = w.SetResponse(codes.ServiceUnavailable, message.TextPlain, nil)
			return
		}
		if g.lose(v.Seq) {
			g.mu.Lock()
			g.lost[v.Seq] = true
			g.mu.Unlock()
		} else {
			p, _ := m.Path()
			if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: g.prefix + "/coap" + p, QoS: 1, Payload: body}); err != nil {
				_ = w.SetResponse(codes.ServiceUnavailable, message.TextPlain, nil)
				return
			}
		}
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	var l *coapnet.UDPConn
	for range 50 {
		if l, err = coapnet.NewListenUDP("udp", g.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		g.t.Error(err)
		_ = pub.Disconnect(&paho.Disconnect{})
		return
	}
	s := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
	go func() { _ = s.Serve(l) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() { s.Stop(); _ = l.Close(); _ = nc.Close() }) // killed: no goodbye to the broker
	}
}

// TestAckedReadingsThroughRestarts runs the real coapload against a fake
// gateway that is killed and restarted twice, with mqttcount counting on a
// real mosquitto: every seq coapload lists in -acked reaches the broker
// (missing_acked 0, stop "acked"); and when the gateway loses acknowledged
// readings, mqttcount names exactly those.
func TestAckedReadingsThroughRestarts(t *testing.T) {
	addr := startMosquitto(t)
	coapload := buildCoapload(t)
	for _, lossy := range []bool{false, true} {
		name := map[bool]string{false: "faithful", true: "lossy"}[lossy]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			coapAddr := c.LocalAddr().String()
			_ = c.Close()
			g := &fakeGateway{t: t, addr: coapAddr, broker: addr, prefix: name, lost: map[int64]bool{},
				refuse: func(seq int64) bool { return seq%7 == 0 },
				lose:   func(seq int64) bool { return lossy && seq%50 == 3 },
			}
			g.start()
			t.Cleanup(func() { g.stop() })

			dir := t.TempDir()
			file := filepath.Join(dir, "acked")
			cfg := config{addr: addr, filters: []string{name + "/#"}, qos: 1, expectFile: file,
				duration: 60 * time.Second, keepAlive: 30 * time.Second}
			if lossy {
				cfg.idle = 2 * time.Second // the lost ones never come
			}
			done := startCounter(t, cfg)

			cmd := exec.Command(coapload, "-url", "coap://"+coapAddr, "-clients", "4", "-rate", "300",
				"-count", "900", "-timeout", "500ms", "-pause", "50ms", "-acked", file+".part", "-json")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, io.Discard
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for range 2 { // kill the gateway twice, 300 ms down each time
				time.Sleep(700 * time.Millisecond)
				g.stop()
				time.Sleep(300 * time.Millisecond)
				g.start()
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("coapload: %v", err)
			}
			var ls struct {
				Sent, OK, Acked, Timeouts, Errors, Reconnects int64
			}
			if err := json.Unmarshal(out.Bytes(), &ls); err != nil {
				t.Fatalf("coapload output %q: %v", out.String(), err)
			}
			if err := os.Rename(file+".part", file); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res == nil {
				t.FailNow()
			}
			t.Logf("coapload %+v; mqttcount stop %s expected_acked %d missing_acked %d %v unique %d dups %d",
				ls, res.Stop, res.ExpectedAcked, res.MissingAcked, res.MissingAckedExamples, res.Unique, res.Duplicates)
			if ls.Sent != 900 || ls.Acked != ls.OK || ls.OK == 0 || ls.OK >= ls.Sent || int64(res.ExpectedAcked) != ls.OK {
				t.Fatalf("coapload %+v, mqttcount %+v", ls, *res)
			}
			if ls.Reconnects == 0 {
				t.Errorf("the gateway restarts went unnoticed: %+v", ls)
			}
			g.mu.Lock()
			var lostAcked []int64
			for s := range g.lost {
				lostAcked = append(lostAcked, s)
			}
			g.mu.Unlock()
			if !lossy {
				if res.Stop != "acked" || res.MissingAcked != 0 || res.Error != "" {
					t.Fatalf("%+v", *res)
				}
				return
			}
			// Every lost one was acknowledged (2.04) and is in the file, so
			// mqttcount must report each of them, and nothing else.
			if res.Stop != "idle" || res.MissingAcked != int64(len(lostAcked)) || len(lostAcked) == 0 {
				t.Fatalf("lost %v; %+v", lostAcked, *res)
			}
			for _, s := range res.MissingAckedExamples {
				if !g.lost[s] {
					t.Fatalf("seq %d reported missing but was published", s)
				}
			}
			if want := min(len(lostAcked), maxMissingExamples); len(res.MissingAckedExamples) != want {
				t.Fatalf("%d examples, want %d", len(res.MissingAckedExamples), want)
			}
		})
	}
}
