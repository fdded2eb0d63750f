package main

import (
	"time"

	"github.com/causeway/causeway/bench/benchkit"
)

const (
	pageBits = 16 // 65,536 sequence numbers (8 KiB) per bitset page
	// maxSeq bounds the memory a bogus sequence number can claim: pages are
	// allocated only where seqs land, and the page table is at most 512 KiB.
	maxSeq = 1<<32 - 1
	// maxTopics bounds the per-topic order tracking.
	maxTopics = 100_000
)

// seqSet is a paged bitset of the sequence numbers seen.
type seqSet struct {
	pages []*[1 << pageBits / 64]uint64
}

// add marks seq as seen and reports whether it was new. seq must be in
// [0, maxSeq].
func (s *seqSet) add(seq int64) bool {
	pi := int(seq >> pageBits)
	if pi >= len(s.pages) {
		s.pages = append(s.pages, make([]*[1 << pageBits / 64]uint64, pi+1-len(s.pages))...)
	}
	pg := s.pages[pi]
	if pg == nil {
		pg = new([1 << pageBits / 64]uint64)
		s.pages[pi] = pg
	}
	off := seq & (1<<pageBits - 1)
	w, b := off/64, uint64(1)<<(off%64)
	if pg[w]&b != 0 {
		return false
	}
	pg[w] |= b
	return true
}

// tracker counts the messages of one run: unique and duplicate sequence
// numbers, what is missing, per-topic reordering and end-to-end latency.
// It is used by one goroutine.
type tracker struct {
	run       int64 // the run counted; 0 until locked onto the first one seen
	expect    int64 // seqs 0..expect-1 are expected; 0 = up to the max seen
	messages  uint64
	matched   uint64
	otherRun  uint64
	unparsed  uint64
	invalid   uint64 // seq missing, negative or beyond maxSeq
	unique    uint64
	inRange   uint64 // unique seqs below expect
	dups      uint64
	reordered uint64
	maxSeq    int64
	seen      seqSet
	topics    map[string]int // topic → index in lastSeq
	lastSeq   []int64        // last seq per topic
	hist      benchkit.Histogram
	first     time.Time
	last      time.Time
}

func newTracker(run, expect int64) *tracker {
	return &tracker{run: run, expect: expect, maxSeq: -1, topics: make(map[string]int)}
}

// observe counts one message received at now.
func (t *tracker) observe(topic, payload []byte, now time.Time) {
	t.messages++
	f, ok := parseFields(payload)
	if !ok || !f.hasRun {
		t.unparsed++
		return
	}
	if t.run == 0 {
		t.run = f.run
	}
	if f.run != t.run {
		t.otherRun++
		return
	}
	t.matched++
	if t.matched == 1 {
		t.first = now
	}
	t.last = now
	if f.hasTS {
		t.hist.Record(now.UnixMicro() - f.ts)
	}
	if !f.hasSeq || f.seq < 0 || f.seq > maxSeq {
		t.invalid++
		return
	}
	if !t.seen.add(f.seq) {
		t.dups++
		return
	}
	t.unique++
	if f.seq < t.expect {
		t.inRange++
	}
	if f.seq > t.maxSeq {
		t.maxSeq = f.seq
	}
	// The lookup with string(topic) does not allocate; only a new topic does.
	if ti, ok := t.topics[string(topic)]; ok {
		if f.seq < t.lastSeq[ti] {
			t.reordered++
		} else {
			t.lastSeq[ti] = f.seq
		}
	} else if len(t.lastSeq) < maxTopics {
		t.topics[string(topic)] = len(t.lastSeq)
		t.lastSeq = append(t.lastSeq, f.seq)
	}
}

// done reports whether every expected sequence number has been seen.
func (t *tracker) done() bool {
	return t.expect > 0 && t.inRange >= uint64(t.expect)
}

// missing is the number of expected sequence numbers not seen: of
// 0..expect-1 with -expect, else of 0..max seq seen.
func (t *tracker) missing() int64 {
	if t.expect > 0 {
		return t.expect - int64(t.inRange)
	}
	return t.maxSeq + 1 - int64(t.unique)
}

// window is the time from the first to the last counted message.
func (t *tracker) window() time.Duration {
	if t.matched < 2 {
		return 0
	}
	return t.last.Sub(t.first)
}

// rate is counted messages per second over the receive window.
func (t *tracker) rate() float64 {
	w := t.window()
	if w <= 0 {
		return 0
	}
	return float64(t.matched-1) / w.Seconds()
}
