package main

import (
	"math/bits"
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

// has reports whether seq is in the set; seqs outside [0, maxSeq] never are.
func (s *seqSet) has(seq int64) bool {
	if seq < 0 || seq > maxSeq {
		return false
	}
	pi := int(seq >> pageBits)
	if pi >= len(s.pages) || s.pages[pi] == nil {
		return false
	}
	off := seq & (1<<pageBits - 1)
	return s.pages[pi][off/64]&(uint64(1)<<(off%64)) != 0
}

// each calls fn for every seq in the set in ascending order until fn
// returns false.
func (s *seqSet) each(fn func(seq int64) bool) {
	for pi, pg := range s.pages {
		if pg == nil {
			continue
		}
		for w, word := range pg {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				if !fn(int64(pi)<<pageBits | int64(w*64+b)) {
					return
				}
			}
		}
	}
}

// tracker counts the messages of one run: unique and duplicate sequence
// numbers, what is missing, per-topic reordering and end-to-end latency,
// and which of the seqs acknowledged to coapload (-expect-file) arrived.
// It is not safe for concurrent use.
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
	reord     []uint64       // reordered per topic
	acked     *seqSet        // -expect-file seqs; nil until loaded
	ackedN    uint64         // seqs in acked
	ackedSeen uint64         // of them, seen
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
			t.reord[ti]++
		} else {
			t.lastSeq[ti] = f.seq
		}
	} else if len(t.lastSeq) < maxTopics {
		t.topics[string(topic)] = len(t.lastSeq)
		t.lastSeq = append(t.lastSeq, f.seq)
		t.reord = append(t.reord, 0)
	}
	if t.acked != nil && t.acked.has(f.seq) {
		t.ackedSeen++
	}
}

// setAcked sets the seqs that must arrive (n of them, from -expect-file),
// counting those already seen.
func (t *tracker) setAcked(set *seqSet, n uint64) {
	t.acked, t.ackedN, t.ackedSeen = set, n, 0
	set.each(func(seq int64) bool {
		if t.seen.has(seq) {
			t.ackedSeen++
		}
		return true
	})
}

// ackedDone reports whether every seq of -expect-file has been seen.
func (t *tracker) ackedDone() bool {
	return t.acked != nil && t.ackedSeen >= t.ackedN
}

// missingFrom returns how many seqs of set were never seen, and up to max
// of them, the lowest first.
func (t *tracker) missingFrom(set *seqSet, max int) (n int64, examples []int64) {
	examples = []int64{}
	set.each(func(seq int64) bool {
		if !t.seen.has(seq) {
			n++
			if len(examples) < max {
				examples = append(examples, seq)
			}
		}
		return true
	})
	return n, examples
}

// reorderedByTopic returns the topics with reordered messages and how many.
func (t *tracker) reorderedByTopic() map[string]uint64 {
	m := map[string]uint64{}
	for topic, i := range t.topics {
		if t.reord[i] > 0 {
			m[topic] = t.reord[i]
		}
	}
	return m
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
