package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
	"github.com/eclipse/paho.golang/paho"
)

// These tests run mqttcount against a real mosquitto fed by a paho.golang
// publisher. They fail when mosquitto is not installed; -short skips them.

func startMosquitto(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no broker tests")
	}
	m := testpeer.StartMosquitto(t, 0) // fails, never skips, when mosquitto is missing
	return fmt.Sprintf("127.0.0.1:%d", m.Port)
}

// clientID is unique per test and call, also across parallel subtests.
func clientID(t *testing.T, kind string) string {
	return kind + "-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func publisher(t *testing.T, addr string) *paho.Client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc})
	if _, err := c.Connect(context.Background(), &paho.Connect{ClientID: clientID(t, "pub"), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// startCounter runs mqttcount's run in the background and returns once it
// has subscribed.
func startCounter(t *testing.T, cfg config) <-chan *Result {
	t.Helper()
	cfg.readyFile = filepath.Join(t.TempDir(), "ready")
	if cfg.clientID == "" {
		cfg.clientID = clientID(t, "count")
	}
	out := make(chan *Result, 1)
	go func() {
		res, err := run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Error(err)
		}
		out <- res
	}()
	for range 200 {
		if _, err := os.Stat(cfg.readyFile); err == nil {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("mqttcount did not subscribe")
	return nil
}

func payload(run, seq int64) []byte {
	return fmt.Appendf(nil, `{"time":"2026-11-25T10:00:00.123Z","run":%d,"seq":%d,"ts":%d,"pad":"xxxxxxxx"}`,
		run, seq, time.Now().UnixMicro())
}

func TestMosquittoCountsLossDuplicatesAndOrder(t *testing.T) {
	addr := startMosquitto(t)
	for _, qos := range []byte{0, 1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			// In parallel, each under its own gateway id; a generous -idle so
			// that a stalled publisher on a busy machine does not end the count.
			t.Parallel()
			gw := "gw" + strconv.Itoa(int(qos))
			done := startCounter(t, config{addr: addr, filters: []string{gw + "/coap/#"}, qos: int(qos),
				idle: 4 * time.Second, duration: 30 * time.Second, keepAlive: 30 * time.Second})
			pub := publisher(t, addr)
			send := func(topic string, run, seq int64) {
				if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: qos, Payload: payload(run, seq)}); err != nil {
					t.Fatal(err)
				}
			}
			// seqs 0..99 on two devices, without 10 and 20, with 30 three times,
			// 50 sent again after 60 on the same device, a foreign run, a
			// status message and a message outside the filter.
			for seq := int64(0); seq < 100; seq++ {
				if seq == 10 || seq == 20 {
					continue
				}
				topic := gw + "/coap/dev" + strconv.FormatInt(seq%2, 10)
				send(topic, 9, seq)
				if seq == 30 {
					send(topic, 9, seq)
					send(topic, 9, seq)
				}
				if seq == 60 {
					send(gw+"/coap/dev0", 9, 50)
				}
			}
			send(gw+"/coap/dev0", 8, 10)
			send(gw+"/coap/dev0", 8, 20)
			if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: gw + "/coap/status", QoS: qos, Payload: []byte("online")}); err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: gw + "/stats", QoS: qos, Payload: payload(9, 10)}); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res == nil {
				t.FailNow()
			}
			want := Result{Run: 9, QoS: int(qos), Stop: "idle", Messages: 104, Matched: 101, OtherRun: 2, Unparsed: 1,
				Unique: 98, Duplicates: 3, Missing: 2, Expected: 100, MaxSeq: 99}
			got := *res
			if got.Run != want.Run || got.QoS != want.QoS || got.Stop != want.Stop || got.Messages != want.Messages ||
				got.Matched != want.Matched || got.OtherRun != want.OtherRun || got.Unparsed != want.Unparsed ||
				got.Unique != want.Unique || got.Duplicates != want.Duplicates || got.Missing != want.Missing ||
				got.Expected != want.Expected || got.MaxSeq != want.MaxSeq {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
			if got.P50us <= 0 || got.P50us > 1_000_000 || got.MaxUs < got.P99us {
				t.Errorf("implausible latency p50 %dµs p99 %dµs max %dµs", got.P50us, got.P99us, got.MaxUs)
			}
		})
	}
}

// TestMosquittoThroughput checks that mqttcount keeps up with a stream far
// above what a benchmark needs: several publishers at QoS 1 through
// mosquitto, received at QoS 1. The rate it reaches depends on the machine
// and is logged; the test asserts only that nothing is lost.
func TestMosquittoThroughput(t *testing.T) {
	addr := startMosquitto(t)
	const pubs, per = 4, 10_000
	done := startCounter(t, config{addr: addr, filters: []string{"#"}, qos: 1, run: 5,
		expect: pubs * per, idle: 3 * time.Second, duration: 60 * time.Second, keepAlive: 30 * time.Second})
	start := time.Now()
	var wg sync.WaitGroup
	for p := range pubs {
		pub := publisher(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := "gw/coap/dev" + strconv.Itoa(p)
			for i := range per {
				_, err := pub.PublishWithOptions(context.Background(),
					&paho.Publish{Topic: topic, QoS: 1, Payload: payload(5, int64(p*per+i))},
					paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	pubTime := time.Since(start)
	res := <-done
	if res == nil {
		t.FailNow()
	}
	t.Logf("published %d in %v (%.0f/s); counted %.0f msg/s over %.2fs, latency p50 %dµs p99 %dµs, stop %s",
		pubs*per, pubTime, float64(pubs*per)/pubTime.Seconds(), res.Rate, res.WindowSecs, res.P50us, res.P99us, res.Stop)
	if res.Stop != "expect" || res.Unique != pubs*per || res.Missing != 0 || res.Duplicates != 0 || res.Reordered != 0 {
		t.Fatalf("%+v", *res)
	}
}
