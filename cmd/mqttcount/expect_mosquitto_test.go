package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// writeFileAtomically writes body to a temporary file next to path and
// renames it into place, as a script hands mqttcount a finished -acked file.
func writeFileAtomically(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".part"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func seqLines(seqs ...int64) string {
	var b strings.Builder
	for _, s := range seqs {
		fmt.Fprintf(&b, "%d\n", s)
	}
	return b.String()
}

func seqRange(from, to int64) []int64 { // from..to-1
	var r []int64
	for s := from; s < to; s++ {
		r = append(r, s)
	}
	return r
}

// sender publishes coapload-style readings of run to topic at QoS 1.
func sender(t *testing.T, addr string) func(topic string, run int64, seqs ...int64) {
	pub := publisher(t, addr)
	return func(topic string, run int64, seqs ...int64) {
		t.Helper()
		for _, seq := range seqs {
			if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: payload(run, seq)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMosquittoExpectFile(t *testing.T) {
	addr := startMosquitto(t)

	// The file is there from the start; the last acked seq to arrive ends
	// the run (stop "acked"), without waiting for -idle.
	t.Run("present", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "acked")
		// duplicates and blank lines as a concatenation of runs may leave
		writeFileAtomically(t, file, seqLines(seqRange(0, 50)...)+"\n"+seqLines(3, 7, 49))
		start := time.Now()
		done := startCounter(t, config{addr: addr, filters: []string{"present/#"}, qos: 1, expectFile: file,
			idle: 30 * time.Second, duration: 30 * time.Second, keepAlive: 30 * time.Second})
		send := sender(t, addr)
		send("present/coap/dev0", 4, seqRange(0, 25)...)
		send("present/coap/dev1", 4, seqRange(25, 50)...)
		res := <-done
		if res == nil {
			t.FailNow()
		}
		if res.Stop != "acked" || res.ExpectedAcked != 50 || res.MissingAcked != 0 ||
			res.MissingAckedExamples == nil || len(res.MissingAckedExamples) != 0 || res.ExpectFile != file || res.Error != "" {
			t.Fatalf("%+v", *res)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("stopped after %v", took)
		}
	})

	// The file appears (renamed into place) while one acked seq is still
	// on its way: the run ends when it arrives.
	t.Run("appears", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "acked")
		done := startCounter(t, config{addr: addr, filters: []string{"appears/#"}, qos: 1, expectFile: file,
			duration: 30 * time.Second, keepAlive: 30 * time.Second})
		send := sender(t, addr)
		// 13 is acked but comes late; 7 was never acked (nor delivered).
		for seq := range int64(100) {
			if seq != 7 && seq != 13 {
				send("appears/coap/dev0", 5, seq)
			}
		}
		var acked []int64
		for s := range int64(100) {
			if s != 7 {
				acked = append(acked, s)
			}
		}
		writeFileAtomically(t, file, seqLines(acked...))
		time.Sleep(300 * time.Millisecond) // the file is read on a 100 ms tick
		select {
		case res := <-done:
			t.Fatalf("stopped before seq 13 arrived: %+v", res)
		default:
		}
		send("appears/coap/dev0", 5, 13)
		res := <-done
		if res == nil {
			t.FailNow()
		}
		if res.Stop != "acked" || res.ExpectedAcked != 99 || res.MissingAcked != 0 || res.Unique != 99 ||
			res.Reordered != 1 || res.ReorderedByTopic["appears/coap/dev0"] != 1 {
			t.Fatalf("%+v", *res)
		}
	})

	// Acked seqs that never arrive: counted, the lowest 20 listed; the run
	// ends by -idle. The summary reads the file again at the end, so a
	// line added after the first read counts too.
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "acked")
		writeFileAtomically(t, file, seqLines(seqRange(0, 100)...)+seqLines(seqRange(200, 230)...))
		done := startCounter(t, config{addr: addr, filters: []string{"missing/#"}, qos: 1, expectFile: file,
			idle: time.Second, duration: 30 * time.Second, keepAlive: 30 * time.Second})
		send := sender(t, addr)
		send("missing/coap/dev0", 6, seqRange(0, 100)...)
		send("missing/coap/dev0", 6, 5, 6) // duplicates
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("999\n")
		_ = f.Close()
		res := <-done
		if res == nil {
			t.FailNow()
		}
		want := seqRange(200, 220) // the lowest 20 of 200..229 and 999
		if res.Stop != "idle" || res.ExpectedAcked != 131 || res.MissingAcked != 31 || res.Duplicates != 2 ||
			!slices.Equal(res.MissingAckedExamples, want) {
			t.Fatalf("%+v", *res)
		}
		// the JSON summary carries the fields under their documented names
		b, _ := json.Marshal(res)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		for _, k := range []string{"expected_acked", "missing_acked", "missing_acked_examples", "duplicates", "reordered", "reordered_by_topic", "expect_file"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON summary without %q: %s", k, b)
			}
		}
	})

	// The file never appears: the summary says so and expects nothing.
	t.Run("never", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "acked")
		done := startCounter(t, config{addr: addr, filters: []string{"never/#"}, qos: 1, expectFile: file,
			idle: 500 * time.Millisecond, duration: 30 * time.Second, keepAlive: 30 * time.Second})
		sender(t, addr)("never/coap/dev0", 7, 0, 1, 2)
		res := <-done
		if res == nil {
			t.FailNow()
		}
		if res.Stop != "idle" || res.ExpectedAcked != 0 || !strings.Contains(res.Error, "-expect-file") || res.Unique != 3 {
			t.Fatalf("%+v", *res)
		}
	})

	// A malformed file ends the run with an error.
	t.Run("malformed", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "acked")
		writeFileAtomically(t, file, "1\n2\nthree\n")
		done := startCounter(t, config{addr: addr, filters: []string{"malformed/#"}, qos: 1, expectFile: file,
			duration: 30 * time.Second, keepAlive: 30 * time.Second})
		res := <-done
		if res == nil {
			t.FailNow()
		}
		if res.Stop != "error" || !strings.Contains(res.Error, "line 3") && !strings.Contains(res.Error, ":3:") {
			t.Fatalf("%+v", *res)
		}
	})
}

// TestMosquittoReorderedByTopic: per-topic out-of-order counts.
func TestMosquittoReorderedByTopic(t *testing.T) {
	addr := startMosquitto(t)
	done := startCounter(t, config{addr: addr, filters: []string{"ro/#"}, qos: 1, run: 8,
		idle: time.Second, duration: 30 * time.Second, keepAlive: 30 * time.Second})
	send := sender(t, addr)
	send("ro/coap/dev0", 8, 0, 1, 2, 5, 3, 4, 6) // 3 and 4 after 5
	send("ro/coap/dev1", 8, 10, 11, 7, 12)       // 7 after 11
	send("ro/coap/dev2", 8, 20, 21, 22)
	send("ro/coap/dev0", 8, 4) // a duplicate, not a reorder
	res := <-done
	if res == nil {
		t.FailNow()
	}
	if res.Reordered != 3 || res.Duplicates != 1 || res.Topics != 3 || len(res.ReorderedByTopic) != 2 ||
		res.ReorderedByTopic["ro/coap/dev0"] != 2 || res.ReorderedByTopic["ro/coap/dev1"] != 1 {
		t.Fatalf("%+v", *res)
	}
	var out strings.Builder
	res.printHuman(&out)
	if !strings.Contains(out.String(), "reordered by topic (of 3 topics): ro/coap/dev0=2 ro/coap/dev1=1") ||
		!strings.Contains(out.String(), "duplicates 1") {
		t.Fatalf("summary:\n%s", out.String())
	}
}
