package mqttcore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

func msg(topic string, size int) bridge.Message {
	return bridge.Message{Topic: topic, Payload: make([]byte, size), QoS: 1}
}

func mustNext(t *testing.T, q Queue) Record {
	t.Helper()
	rec, ok, err := q.Next()
	if err != nil || !ok {
		t.Fatalf("Next: ok=%v err=%v", ok, err)
	}
	return rec
}

func TestMemoryQueueOrderAckRewind(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Log: newTestLogger(t)})
	for i := 1; i <= 5; i++ {
		seq, err := q.Append(msg(fmt.Sprintf("t/%d", i), 1), nil)
		if err != nil || seq != uint64(i) {
			t.Fatalf("Append %d: seq=%d err=%v", i, seq, err)
		}
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled after Append")
	}
	for i := 1; i <= 5; i++ {
		if rec := mustNext(t, q); rec.Seq != uint64(i) || rec.Msg.Topic != fmt.Sprintf("t/%d", i) {
			t.Fatalf("Next %d: got seq %d topic %s", i, rec.Seq, rec.Msg.Topic)
		}
	}
	if _, ok, _ := q.Next(); ok {
		t.Fatal("Next after the last record returned one")
	}
	// Out-of-order acks: the committed point moves over the contiguous prefix only.
	_ = q.Ack(2)
	_ = q.Ack(4)
	if st := q.Stats(); st.Committed != 0 || st.Len != 3 || st.Acked != 2 {
		t.Fatalf("after acks 2,4: %+v", st)
	}
	_ = q.Ack(1)
	if st := q.Stats(); st.Committed != 2 || st.Len != 2 {
		t.Fatalf("after ack 1: %+v", st)
	}
	// Rewind hands out the unacknowledged records again, skipping acked ones.
	_ = q.Rewind()
	if rec := mustNext(t, q); rec.Seq != 3 {
		t.Fatalf("after rewind: seq %d, want 3", rec.Seq)
	}
	if rec := mustNext(t, q); rec.Seq != 5 {
		t.Fatalf("after rewind: seq %d, want 5 (4 is acked)", rec.Seq)
	}
	_ = q.Ack(3)
	_ = q.Ack(5)
	_ = q.Ack(5) // duplicate acks are ignored
	_ = q.Ack(99)
	st := q.Stats()
	if st.Committed != 5 || st.Len != 0 || st.Bytes != 0 || st.Acked != 5 || st.OldestAge != 0 {
		t.Fatalf("after all acks: %+v", st)
	}
	if _, err := q.Append(msg("t/6", 1), nil); err != nil {
		t.Fatal(err)
	}
	if rec := mustNext(t, q); rec.Seq != 6 {
		t.Fatalf("seq after drain: %d", rec.Seq)
	}
}

func TestMemoryQueueDropOldest(t *testing.T) {
	var mu sync.Mutex
	drops := map[DropReason]int{}
	per := int64(10 + 100 + RecordOverhead) // "t/xxxxxxx" style topic below is 10 bytes
	q := NewMemoryQueue(MemoryQueueOptions{
		MaxBytes: 3 * per, WhenFull: DropOldest, Log: newTestLogger(t),
		OnDrop: func(r DropReason, n int) { mu.Lock(); drops[r] += n; mu.Unlock() },
	})
	for i := 1; i <= 5; i++ {
		if _, err := q.Append(msg(fmt.Sprintf("t/%08d", i), 100), nil); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	st := q.Stats()
	if st.Len != 3 || st.Bytes != 3*per || st.Dropped.Full != 2 || st.Appended != 5 {
		t.Fatalf("stats: %+v", st)
	}
	mu.Lock()
	if drops[DropFull] != 2 {
		t.Errorf("OnDrop full = %d, want 2", drops[DropFull])
	}
	mu.Unlock()
	for want := uint64(3); want <= 5; want++ {
		if rec := mustNext(t, q); rec.Seq != want {
			t.Fatalf("got seq %d, want %d (oldest dropped)", rec.Seq, want)
		}
	}
	// An in-flight (read, unacknowledged) record is evicted too; its late ack is ignored.
	if _, err := q.Append(msg("t/00000006", 100), nil); err != nil {
		t.Fatal(err)
	}
	_ = q.Ack(3)
	if st := q.Stats(); st.Dropped.Full != 3 || st.Len != 3 || st.Acked != 0 {
		t.Fatalf("after evicting an in-flight record: %+v", st)
	}
}

func TestMemoryQueueDropNewest(t *testing.T) {
	per := int64(10 + 100 + RecordOverhead)
	q := NewMemoryQueue(MemoryQueueOptions{MaxBytes: 2 * per, WhenFull: DropNewest, Log: newTestLogger(t)})
	for i := 1; i <= 2; i++ {
		if _, err := q.Append(msg(fmt.Sprintf("t/%08d", i), 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := q.Append(msg("t/00000003", 100), nil)
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Append to a full drop_newest queue: %v, want ErrQueueFull", err)
	}
	if st := q.Stats(); st.Len != 2 || st.Dropped.Full != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// After an ack frees room, appends succeed again.
	rec := mustNext(t, q)
	_ = q.Ack(rec.Seq)
	if seq, err := q.Append(msg("t/00000004", 100), nil); err != nil || seq != 3 {
		t.Fatalf("Append after ack: seq %d err %v (a refused message takes no seq)", seq, err)
	}
}

func TestMemoryQueueTooLargeExpiryClose(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	q := NewMemoryQueue(MemoryQueueOptions{MaxBytes: 1000, MaxAge: time.Minute, Now: clock, Log: newTestLogger(t)})
	if _, err := q.Append(msg("big", 2000), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Append: %v", err)
	}
	_, _ = q.Append(msg("a", 1), nil)
	now = now.Add(30 * time.Second)
	_, _ = q.Append(msg("b", 1), nil)
	if st := q.Stats(); st.OldestAge != 30*time.Second {
		t.Fatalf("oldest age %s", st.OldestAge)
	}
	now = now.Add(45 * time.Second) // a is 75 s old, b 45 s
	rec := mustNext(t, q)
	if rec.Msg.Topic != "b" {
		t.Fatalf("expired record handed out: %q", rec.Msg.Topic)
	}
	st := q.Stats()
	if st.Dropped.Expired != 1 || st.Dropped.TooLarge != 1 || st.Len != 1 {
		t.Fatalf("stats: %+v", st)
	}
	_ = q.Close()
	if _, err := q.Append(msg("c", 1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if q.Stats().Dropped.Closed != 1 {
		t.Fatal("refusal after Close not counted")
	}
}

func TestMemoryQueueDropLogRateLimited(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	log := slogTo(func(s string) { mu.Lock(); buf.WriteString(s); mu.Unlock() })
	q := NewMemoryQueue(MemoryQueueOptions{MaxBytes: RecordOverhead + 2, WhenFull: DropNewest, Log: log,
		Now: func() time.Time { return now }})
	_, _ = q.Append(msg("a", 1), nil)
	for range 100 { // 100 drops within one second: one line
		_, _ = q.Append(msg("b", 1), nil)
		now = now.Add(10 * time.Millisecond)
	}
	lines := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(buf.String(), "offline queue dropped messages")
	}
	if n := lines(); n != 1 {
		t.Fatalf("%d log lines for a burst, want 1", n)
	}
	now = now.Add(logInterval)
	_ = q.Stats() // the held-back count is reported once the interval passed
	if n := lines(); n != 2 {
		t.Fatalf("%d log lines after the interval, want 2", n)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "dropped=99") {
		t.Fatalf("second line does not carry the held-back count:\n%s", out)
	}
}

// Concurrent producers with one consumer (run with -race).
func TestMemoryQueueConcurrent(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Log: newTestLogger(t)})
	const producers, per = 8, 500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := q.Append(msg(fmt.Sprintf("p%d/%d", p, i), 8), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := 0
	last := uint64(0)
	deadline := time.Now().Add(10 * time.Second)
	for got < producers*per && time.Now().Before(deadline) {
		rec, ok, _ := q.Next()
		if !ok {
			select {
			case <-q.Ready():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if rec.Seq <= last {
			t.Fatalf("seq %d after %d", rec.Seq, last)
		}
		last = rec.Seq
		_ = q.Ack(rec.Seq)
		got++
	}
	wg.Wait()
	if st := q.Stats(); got != producers*per || st.Len != 0 || st.Acked != producers*per {
		t.Fatalf("got %d, stats %+v", got, st)
	}
}
