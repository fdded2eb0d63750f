package queue

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestPropertyFIFONothingDurableLost runs random sequences of append,
// deliver (Next with or without Ack), rewind, clean restart and crash
// (kill -9: whatever was not yet written is lost, the cursor is not saved)
// against a model. After every restart the queue must hand out, in strictly
// increasing sequence order, every record whose durability callback fired
// and that was not acknowledged, each with its own content, and nothing
// that was never appended.
func TestPropertyFIFONothingDurableLost(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(t.TempDir(), "prop")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		fsync := rapid.SampledFrom([]Fsync{FsyncBatch, FsyncAlways, FsyncOff}).Draw(rt, "fsync")
		opts := Options{Fsync: fsync, SegmentBytes: int64(rapid.IntRange(256, 4096).Draw(rt, "segment")), Log: quietLog()}
		q, err := Open(dir, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { q.Close() }()

		content := map[uint64]string{} // every seq ever appended (durable)
		unacked := map[uint64]bool{}   // durable and not acknowledged
		var lastHanded uint64          // since the last rewind/restart

		verifyAll := func(label string) {
			_ = q.Rewind()
			recs := drain(rt, q, false)
			prev := uint64(0)
			seen := map[uint64]bool{}
			for _, r := range recs {
				if r.Seq <= prev {
					rt.Fatalf("%s: seq %d after %d", label, r.Seq, prev)
				}
				prev = r.Seq
				want, ok := content[r.Seq]
				if !ok {
					rt.Fatalf("%s: seq %d was never appended", label, r.Seq)
				}
				if got := r.Msg.Topic + "|" + string(r.Msg.Payload); got != want {
					rt.Fatalf("%s: seq %d content %q, want %q", label, r.Seq, got, want)
				}
				seen[r.Seq] = true
			}
			for s := range unacked {
				if !seen[s] {
					rt.Fatalf("%s: durable unacknowledged seq %d lost (have %d records)", label, s, len(recs))
				}
			}
			if st := q.Stats(); st.Len != len(recs) {
				rt.Fatalf("%s: Stats.Len %d, drained %d", label, st.Len, len(recs))
			}
			_ = q.Rewind()
			lastHanded = 0
		}

		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				n := rapid.IntRange(1, 20).Draw(rt, "n")
				for range n {
					size := rapid.IntRange(0, 300).Draw(rt, "size")
					m := msg(fmt.Sprintf("t/%d", len(content)), strings.Repeat("p", size))
					seq := appendSync(rt, q, m)
					content[seq] = m.Topic + "|" + string(m.Payload)
					unacked[seq] = true
				}
			},
			"deliver": func(rt *rapid.T) {
				k := rapid.IntRange(1, 30).Draw(rt, "k")
				for range k {
					rec, ok, err := q.Next()
					if err != nil {
						rt.Fatal(err)
					}
					if !ok {
						return
					}
					if rec.Seq <= lastHanded {
						rt.Fatalf("Next went backwards: %d after %d", rec.Seq, lastHanded)
					}
					lastHanded = rec.Seq
					if rapid.Bool().Draw(rt, "ack") {
						_ = q.Ack(rec.Seq)
						delete(unacked, rec.Seq)
					}
				}
			},
			"rewind": func(rt *rapid.T) {
				_ = q.Rewind()
				lastHanded = 0
			},
			"restart": func(rt *rapid.T) {
				if err := q.Close(); err != nil {
					rt.Fatal(err)
				}
				if q, err = Open(dir, opts); err != nil {
					rt.Fatal(err)
				}
				verifyAll("after restart")
			},
			"crash": func(rt *rapid.T) {
				q.crash()
				if q, err = Open(dir, opts); err != nil {
					rt.Fatal(err)
				}
				verifyAll("after crash")
			},
			"": func(rt *rapid.T) {
				st := q.Stats()
				if st.Len < len(unacked) {
					rt.Fatalf("Stats.Len %d < %d unacknowledged", st.Len, len(unacked))
				}
			},
		})
		verifyAll("at the end")
	})
}
