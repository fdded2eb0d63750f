package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func msg(run, seq int64, ts int64) []byte {
	return fmt.Appendf(nil, `{"time":"2026-11-25T10:00:00.123Z","run":%d,"seq":%d,"ts":%d,"pad":"xx"}`, run, seq, ts)
}

func TestTrackerDuplicatesAndMissing(t *testing.T) {
	tr := newTracker(0, 0)
	base := time.UnixMicro(1_764_064_800_000_000)
	topic := []byte("gw/coap/dev0")
	// seqs 0..9 without 3 and 7, with 5 twice and 9 three times
	for i, seq := range []int64{0, 1, 2, 4, 5, 5, 6, 8, 9, 9, 9} {
		now := base.Add(time.Duration(i) * time.Millisecond)
		tr.observe(topic, msg(42, seq, base.UnixMicro()), now)
	}
	tr.observe(topic, []byte("online"), base)
	tr.observe(topic, msg(43, 3, 0), base) // another run: not counted
	if tr.run != 42 || tr.messages != 13 || tr.matched != 11 || tr.unparsed != 1 || tr.otherRun != 1 {
		t.Fatalf("run %d messages %d matched %d unparsed %d other %d", tr.run, tr.messages, tr.matched, tr.unparsed, tr.otherRun)
	}
	if tr.unique != 8 || tr.dups != 3 || tr.maxSeq != 9 || tr.missing() != 2 {
		t.Fatalf("unique %d dups %d max %d missing %d", tr.unique, tr.dups, tr.maxSeq, tr.missing())
	}
	if tr.reordered != 0 {
		t.Fatalf("reordered %d", tr.reordered)
	}
	if got := tr.window(); got != 10*time.Millisecond {
		t.Fatalf("window %v", got)
	}
	if got := tr.rate(); got != 1000 {
		t.Fatalf("rate %v", got)
	}
	if tr.hist.Max() != 10_000 || tr.hist.Min() != 0 {
		t.Fatalf("latency min %d max %d", tr.hist.Min(), tr.hist.Max())
	}
}

func TestTrackerExpect(t *testing.T) {
	tr := newTracker(7, 5)
	now := time.Now()
	for _, seq := range []int64{4, 2, 9, 0, 2} {
		tr.observe([]byte("a"), msg(7, seq, 0), now)
	}
	if tr.done() || tr.missing() != 2 || tr.unique != 4 || tr.dups != 1 {
		t.Fatalf("done %v missing %d unique %d dups %d", tr.done(), tr.missing(), tr.unique, tr.dups)
	}
	// 4 → 2 is a step back on topic "a"; so is 9 → 0.
	if tr.reordered != 2 {
		t.Fatalf("reordered %d, want 2", tr.reordered)
	}
	tr.observe([]byte("a"), msg(7, 1, 0), now)
	tr.observe([]byte("b"), msg(7, 3, 0), now)
	if !tr.done() || tr.missing() != 0 {
		t.Fatalf("done %v missing %d", tr.done(), tr.missing())
	}
	tr.observe([]byte("a"), msg(1, 1, 0), now)
	if tr.otherRun != 1 {
		t.Fatalf("explicit -run must reject other runs")
	}
}

func TestTrackerInvalidSeq(t *testing.T) {
	tr := newTracker(1, 0)
	tr.observe(nil, []byte(`{"run":1,"seq":-1}`), time.Now())
	tr.observe(nil, []byte(`{"run":1,"seq":99999999999}`), time.Now())
	tr.observe(nil, []byte(`{"run":1}`), time.Now())
	if tr.invalid != 3 || tr.unique != 0 || tr.missing() != 0 {
		t.Fatalf("invalid %d unique %d missing %d", tr.invalid, tr.unique, tr.missing())
	}
}

func TestSeqSetLarge(t *testing.T) {
	var s seqSet
	for _, v := range []int64{0, 65535, 65536, 1 << 20, maxSeq} {
		if !s.add(v) {
			t.Fatalf("%d reported as seen", v)
		}
		if s.add(v) {
			t.Fatalf("%d reported as new twice", v)
		}
	}
	if s.add(1) == false {
		t.Fatal("1 was never added")
	}
}

func TestObserveAllocations(t *testing.T) {
	tr := newTracker(0, 0)
	topic := []byte("gw/coap/dev0")
	msgs := make([][]byte, 3000)
	for i := range msgs {
		msgs[i] = msg(1, int64(i), 0)
	}
	tr.observe(topic, msgs[0], time.Now()) // first page and topic entry
	n := 1
	allocs := testing.AllocsPerRun(1000, func() {
		tr.observe(topic, msgs[n], time.Now())
		n++
	})
	if allocs != 0 || tr.unique != uint64(n) || tr.dups != 0 {
		t.Fatalf("%v allocations per message (unique %d of %d)", allocs, tr.unique, n)
	}
}

func TestTrackerReorderedByTopic(t *testing.T) {
	tr := newTracker(1, 0)
	now := time.Now()
	obs := func(topic string, seqs ...int64) {
		for _, s := range seqs {
			tr.observe([]byte(topic), msg(1, s, 0), now)
		}
	}
	obs("gw/coap/dev0", 0, 1, 2, 5, 3, 4, 6) // 3 and 4 after 5
	obs("gw/coap/dev1", 10, 11, 7, 12)       // 7 after 11
	obs("gw/coap/dev2", 20, 21)              // in order
	obs("gw/coap/dev0", 4)                   // a duplicate is not a reorder
	if tr.reordered != 3 || tr.dups != 1 {
		t.Fatalf("reordered %d dups %d", tr.reordered, tr.dups)
	}
	got := tr.reorderedByTopic()
	if len(got) != 2 || got["gw/coap/dev0"] != 2 || got["gw/coap/dev1"] != 1 || len(tr.topics) != 3 {
		t.Fatalf("by topic %v, %d topics", got, len(tr.topics))
	}
}

func TestSeqSetHasAndEach(t *testing.T) {
	var s seqSet
	in := []int64{maxSeq, 0, 63, 64, 65535, 65536, 1 << 20}
	for _, v := range in {
		s.add(v)
	}
	for _, v := range in {
		if !s.has(v) {
			t.Fatalf("has(%d) = false", v)
		}
	}
	for _, v := range []int64{-1, 1, 62, 65, 1<<20 + 1, maxSeq + 1, 1 << 40} {
		if s.has(v) {
			t.Fatalf("has(%d) = true", v)
		}
	}
	var got []int64
	s.each(func(v int64) bool { got = append(got, v); return true })
	want := []int64{0, 63, 64, 65535, 65536, 1 << 20, maxSeq}
	if !slices.Equal(got, want) {
		t.Fatalf("each: %v, want %v", got, want)
	}
	got = got[:0]
	s.each(func(v int64) bool { got = append(got, v); return len(got) < 3 })
	if !slices.Equal(got, want[:3]) {
		t.Fatalf("each with early stop: %v", got)
	}
}

func TestTrackerAcked(t *testing.T) {
	set, n, err := parseExpect(strings.NewReader("3\n1\n\n 5 \n1\n3\n9\n100000\n7"), "f")
	if err != nil || n != 6 {
		t.Fatalf("parseExpect: %d, %v", n, err)
	}
	tr := newTracker(1, 0)
	now := time.Now()
	for _, s := range []int64{1, 2, 3, 3} {
		tr.observe([]byte("a"), msg(1, s, 0), now)
	}
	tr.observe([]byte("a"), msg(2, 5, 0), now) // another run does not count
	tr.setAcked(set, n)                        // loaded after some arrived
	if tr.ackedSeen != 2 || tr.ackedDone() {
		t.Fatalf("seen %d done %v", tr.ackedSeen, tr.ackedDone())
	}
	missing, ex := tr.missingFrom(set, 2)
	if missing != 4 || !slices.Equal(ex, []int64{5, 7}) {
		t.Fatalf("missing %d %v", missing, ex)
	}
	for _, s := range []int64{5, 7, 9, 9, 4} {
		tr.observe([]byte("a"), msg(1, s, 0), now)
	}
	if tr.ackedSeen != 5 || tr.ackedDone() {
		t.Fatalf("seen %d done %v", tr.ackedSeen, tr.ackedDone())
	}
	tr.observe([]byte("b"), msg(1, 100000, 0), now)
	if !tr.ackedDone() {
		t.Fatal("all acked seqs arrived, not done")
	}
	if missing, ex := tr.missingFrom(set, 20); missing != 0 || ex == nil || len(ex) != 0 {
		t.Fatalf("missing %d %v", missing, ex)
	}
	// an empty file: nothing to wait for
	tr2 := newTracker(0, 0)
	tr2.setAcked(&seqSet{}, 0)
	if !tr2.ackedDone() {
		t.Fatal("empty set not done")
	}
	if newTracker(0, 0).ackedDone() {
		t.Fatal("done without a file")
	}
}

func TestParseExpectRejects(t *testing.T) {
	for _, in := range []string{"1\nx\n", "-1\n", "4294967296\n", "1 2\n", "0x10\n", "1.0\n"} {
		if _, _, err := parseExpect(strings.NewReader(in), "f"); err == nil {
			t.Errorf("parseExpect(%q) accepted", in)
		}
	}
	if _, _, err := readExpectFile(t.TempDir() + "/none"); err == nil {
		t.Error("a missing file read")
	}
}
