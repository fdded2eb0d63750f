package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mqttcore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tb is what the helpers need of testing.TB and rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, dir string, o Options) *Queue {
	t.Helper()
	if o.Log == nil {
		o.Log = quietLog()
	}
	q, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func msg(topic string, payload string) bridge.Message {
	return bridge.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Uplink: true}
}

// appendSync appends and waits for the durability callback.
func appendSync(t tb, q *Queue, m bridge.Message) uint64 {
	t.Helper()
	done := make(chan error, 1)
	seq, err := q.Append(m, func(err error) { done <- err })
	if err != nil {
		t.Fatalf("append %s: %v", m.Topic, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("append %s: durable: %v", m.Topic, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("append %s: no durability callback", m.Topic)
	}
	return seq
}

// drain reads every available record (waiting briefly for the writer) and
// acknowledges it when ack is set.
func drain(t tb, q *Queue, ack bool) []mqttcore.Record {
	t.Helper()
	var out []mqttcore.Record
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, ok, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			st := q.Stats()
			if st.Len == 0 || time.Now().After(deadline) || (len(out) > 0 && st.Len == len(out) && !ack) {
				return out
			}
			select {
			case <-q.Ready():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		out = append(out, rec)
		if ack {
			if err := q.Ack(rec.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func topics(recs []mqttcore.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Msg.Topic)
	}
	return s
}

func TestAppendNextAckReopen(t *testing.T) {
	for _, fs := range []Fsync{FsyncBatch, FsyncAlways, FsyncOff} {
		t.Run(fs.String(), func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, Options{Fsync: fs})
			for i := range 10 {
				seq := appendSync(t, q, msg(fmt.Sprintf("t/%d", i), strings.Repeat("x", i)))
				if seq != uint64(i+1) {
					t.Fatalf("seq = %d, want %d", seq, i+1)
				}
			}
			recs := drain(t, q, false)
			if len(recs) != 10 {
				t.Fatalf("read %d records, want 10", len(recs))
			}
			if r := recs[3]; r.Msg.Topic != "t/3" || string(r.Msg.Payload) != "xxx" || r.Msg.QoS != 1 || r.Seq != 4 {
				t.Fatalf("record 3 = %+v", r)
			}
			// Acknowledge out of order: 1, 2, 4 (3 is still out).
			for _, s := range []uint64{1, 2, 4} {
				_ = q.Ack(s)
			}
			if st := q.Stats(); st.Committed != 2 || st.Len != 7 || st.LastSeq != 10 {
				t.Fatalf("stats = %+v", st)
			}
			// Rewind hands out what is not acknowledged, in order.
			_ = q.Rewind()
			recs = drain(t, q, false)
			if got := topics(recs); strings.Join(got, ",") != "t/2,t/4,t/5,t/6,t/7,t/8,t/9" {
				t.Fatalf("after rewind: %v", got)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopen: everything after the committed position is there
			// again (4 too: the cursor holds a position, not a set).
			q = open(t, dir, Options{Fsync: fs})
			defer q.Close()
			if st := q.Stats(); st.Len != 8 || st.Committed != 2 {
				t.Fatalf("reopened stats = %+v", st)
			}
			recs = drain(t, q, true)
			if got := topics(recs); strings.Join(got, ",") != "t/2,t/3,t/4,t/5,t/6,t/7,t/8,t/9" {
				t.Fatalf("after reopen: %v", got)
			}
			if seq := appendSync(t, q, msg("t/new", "")); seq != 11 {
				t.Fatalf("seq after reopen = %d, want 11 (never reused)", seq)
			}
		})
	}
}

func TestSequenceNumbersSurviveEmptyQueue(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	for range 3 {
		appendSync(t, q, msg("a", "1"))
	}
	drain(t, q, true)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open(t, dir, Options{})
	defer q.Close()
	if st := q.Stats(); st.Len != 0 {
		t.Fatalf("len = %d after everything was acknowledged", st.Len)
	}
	if seq := appendSync(t, q, msg("a", "2")); seq != 4 {
		t.Fatalf("seq = %d, want 4", seq)
	}
}

func TestSegmentsRollAndAreReclaimed(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 8 << 20, SegmentBytes: 4096})
	defer q.Close()
	for i := range 500 {
		appendSync(t, q, msg(fmt.Sprintf("t/%d", i), strings.Repeat("p", 100)))
	}
	if n := q.DiskStats().Segments; n < 10 {
		t.Fatalf("%d segments for 64 KiB in 4 KiB segments", n)
	}
	recs := drain(t, q, true)
	if len(recs) != 500 {
		t.Fatalf("read %d, want 500", len(recs))
	}
	for i, r := range recs {
		if r.Msg.Topic != fmt.Sprintf("t/%d", i) {
			t.Fatalf("record %d is %s", i, r.Msg.Topic)
		}
	}
	q.maintain() // removes the reclaimed files
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != 1 {
		t.Fatalf("%d segment files left after everything was delivered: %v", len(files), files)
	}
}

// TestDeliveredSegmentIsNotRolledPerMessage: with fast acknowledgements
// (QoS 0, or a low reading rate) every record is delivered before the next
// one arrives; that must not start a new segment file (create, fsync the
// file and the directory, delete) per message, which is what an SD card
// can least afford. The delivered segment is reused until it is full, and
// its space still counts as free for the bound.
func TestDeliveredSegmentIsNotRolledPerMessage(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 64 << 10, SegmentBytes: 16 << 10})
	defer q.Close()
	for i := range 200 {
		appendSync(t, q, msg(fmt.Sprintf("t/%d", i), "payload"))
		if recs := drain(t, q, true); len(recs) != 1 {
			t.Fatalf("message %d: read %d records, want 1", i, len(recs))
		}
	}
	st := q.DiskStats()
	// 200 records of ~45 bytes fill about half a segment: no roll at all.
	if st.Segments != 1 {
		t.Fatalf("%d segments after 200 delivered messages, want 1", st.Segments)
	}
	if st.Fsyncs > 10 {
		t.Fatalf("%d fsyncs for 200 messages (one segment created, batch fsync later)", st.Fsyncs)
	}
	// A record that fits only once the delivered segment is freed rolls it.
	big := msg("big", strings.Repeat("x", 50<<10))
	appendSync(t, q, big)
	q.maintain()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != 1 {
		t.Fatalf("segment files %v: the delivered one should have made room", files)
	}
	if recs := drain(t, q, true); len(recs) != 1 || recs[0].Msg.Topic != "big" {
		t.Fatalf("read %v, want the big record", recs)
	}
}

func TestGroupCommitManyProducers(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{Fsync: FsyncAlways})
	const producers, each = 32, 50
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				appendSync(t, q, msg(fmt.Sprintf("p%d/%d", p, i), "v"))
			}
		}()
	}
	wg.Wait()
	ds := q.DiskStats()
	if ds.Fsyncs >= producers*each {
		t.Errorf("%d fsyncs for %d records: no group commit", ds.Fsyncs, producers*each)
	}
	t.Logf("%d records, %d writes, %d fsyncs", producers*each, ds.Writes, ds.Fsyncs)
	recs := drain(t, q, true)
	if len(recs) != producers*each {
		t.Fatalf("read %d", len(recs))
	}
	// Per producer order is kept.
	next := map[string]int{}
	for _, r := range recs {
		p, i, _ := strings.Cut(r.Msg.Topic, "/")
		if want := fmt.Sprint(next[p]); i != want {
			t.Fatalf("producer %s: got %s, want %s", p, i, want)
		}
		next[p]++
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrashKeepsWhatWasAccepted(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{Fsync: FsyncBatch})
	for i := range 100 {
		appendSync(t, q, msg(fmt.Sprintf("t/%d", i), "v"))
	}
	recs := drain(t, q, false)
	for _, r := range recs[:40] {
		_ = q.Ack(r.Seq)
	}
	q.crash() // no cursor saved since the acks, nothing flushed
	q = open(t, dir, Options{Fsync: FsyncBatch})
	defer q.Close()
	recs = drain(t, q, true)
	// At least the 60 unacknowledged ones, in order; the acknowledged may
	// come again (the cursor is saved once a second).
	if len(recs) < 60 || recs[len(recs)-1].Msg.Topic != "t/99" {
		t.Fatalf("after crash: %d records, last %v", len(recs), topics(recs[len(recs)-1:]))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq != recs[i-1].Seq+1 {
			t.Fatalf("gap or reorder at %d: %d after %d", i, recs[i].Seq, recs[i-1].Seq)
		}
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	for i := range 5 {
		appendSync(t, q, msg(fmt.Sprintf("t/%d", i), "payload"))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	seg := lastSegment(t, dir)
	// A record cut off in the middle of its write.
	var rec []byte
	rec = appendRecord(rec, 6, time.Now(), &bridge.Message{Topic: "t/torn", Payload: []byte("never acknowledged")})
	appendFile(t, seg, rec[:len(rec)-5])

	logs := &logBuf{}
	q = open(t, dir, Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	defer q.Close()
	if ds := q.DiskStats(); ds.TornBytes != int64(len(rec)-5) || ds.Corrupt != 0 {
		t.Fatalf("disk stats = %+v", ds)
	}
	if !strings.Contains(logs.String(), "torn record") {
		t.Errorf("torn tail not reported: %s", logs)
	}
	recs := drain(t, q, true)
	if got := strings.Join(topics(recs), ","); got != "t/0,t/1,t/2,t/3,t/4" {
		t.Fatalf("records = %s", got)
	}
	// Appending after the truncation works and is read back.
	appendSync(t, q, msg("t/after", "x"))
	if recs := drain(t, q, true); len(recs) != 1 || recs[0].Msg.Topic != "t/after" {
		t.Fatalf("after: %v", topics(recs))
	}
}

func TestCorruptRecordsAreSkippedAndCounted(t *testing.T) {
	for _, where := range []string{"sealed", "last"} {
		t.Run(where, func(t *testing.T) {
			dir := t.TempDir()
			seg := int64(0)
			if where == "sealed" {
				seg = 2048
			}
			q := open(t, dir, Options{SegmentBytes: seg})
			for i := range 60 {
				appendSync(t, q, msg(fmt.Sprintf("t/%02d", i), strings.Repeat("v", 40)))
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			sort.Strings(files)
			victim := files[len(files)-1]
			if where == "sealed" {
				victim = files[0]
			}
			// Flip a byte in the payload of the third record.
			recSize := recHeaderSize + len("t/00") + 40
			corruptByte(t, victim, int64(segHeaderSize+2*recSize+recHeaderSize+6))

			logs := &logBuf{}
			q = open(t, dir, Options{SegmentBytes: seg, Log: slog.New(slog.NewTextHandler(logs, nil))})
			defer q.Close()
			recs := drain(t, q, true)
			if len(recs) != 59 {
				t.Fatalf("read %d records, want 59: %v", len(recs), topics(recs))
			}
			lostTopic := ""
			for i, r := range recs {
				if want := fmt.Sprintf("t/%02d", i); r.Msg.Topic != want && lostTopic == "" {
					lostTopic = want
				}
			}
			if ds := q.DiskStats(); ds.Corrupt != 1 {
				t.Fatalf("corrupt = %d, want 1 (%+v)", ds.Corrupt, ds)
			}
			if !strings.Contains(logs.String(), "damaged records skipped") {
				t.Errorf("not reported: %s", logs)
			}
			if st := q.Stats(); st.Len != 0 {
				t.Errorf("len = %d after delivering everything", st.Len)
			}
		})
	}
}

func TestDamagedFilesAreMovedAside(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 1024})
	for i := range 40 {
		appendSync(t, q, msg(fmt.Sprintf("t/%02d", i), strings.Repeat("v", 40)))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(files)
	// A segment whose header is garbage, a stray .seg file, and a cursor
	// with no valid slot.
	corruptByte(t, files[1], 0)
	if err := os.WriteFile(filepath.Join(dir, "junk.seg"), []byte("junk"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, cursorName), bytes.Repeat([]byte{0xff}, 128), 0o640); err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	q = open(t, dir, Options{SegmentBytes: 1024, Log: slog.New(slog.NewTextHandler(logs, nil))})
	defer q.Close()
	if ds := q.DiskStats(); ds.DamagedFiles != 3 {
		t.Fatalf("damaged files = %d, want 3: %s", ds.DamagedFiles, logs)
	}
	moved, _ := os.ReadDir(filepath.Join(dir, damagedDir))
	if len(moved) != 3 {
		t.Fatalf("%d files in damaged/", len(moved))
	}
	recs := drain(t, q, true)
	if len(recs) == 0 || len(recs) >= 40 || recs[len(recs)-1].Msg.Topic != "t/39" {
		t.Fatalf("read %d records (last %v)", len(recs), topics(recs[max(0, len(recs)-1):]))
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	dir := t.TempDir()
	logs := &logBuf{}
	q := open(t, dir, Options{MaxBytes: 64 << 10, SegmentBytes: 8 << 10, Log: slog.New(slog.NewTextHandler(logs, nil))})
	const n = 2000
	for i := range n {
		appendSync(t, q, msg(fmt.Sprintf("t/%05d", i), strings.Repeat("v", 50)))
	}
	st := q.Stats()
	if st.Bytes > 64<<10 {
		t.Fatalf("bytes %d over max_bytes", st.Bytes)
	}
	if st.Dropped.Full == 0 {
		t.Fatal("nothing dropped")
	}
	recs := drain(t, q, true)
	if uint64(len(recs))+st.Dropped.Full != n {
		t.Fatalf("delivered %d + dropped %d != %d", len(recs), st.Dropped.Full, n)
	}
	if recs[len(recs)-1].Msg.Topic != fmt.Sprintf("t/%05d", n-1) {
		t.Fatalf("the newest was not kept")
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq != recs[i-1].Seq+1 {
			t.Fatalf("hole in what is kept at %d", i)
		}
	}
	q.maintain()
	if !strings.Contains(logs.String(), "offline queue dropped messages") {
		t.Errorf("drops not logged: %s", logs)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var total int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, f := range files {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > 64<<10 {
		t.Fatalf("%d bytes on disk, max_bytes 64 KiB", total)
	}
}

func TestDropNewestWhenFull(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 64 << 10, SegmentBytes: 8 << 10, WhenFull: mqttcore.DropNewest})
	defer q.Close()
	accepted, refused := 0, 0
	for i := range 2000 {
		_, err := q.Append(msg(fmt.Sprintf("t/%05d", i), strings.Repeat("v", 50)), nil)
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, mqttcore.ErrQueueFull):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if refused == 0 || uint64(refused) != q.Stats().Dropped.Full {
		t.Fatalf("refused %d, counted %d", refused, q.Stats().Dropped.Full)
	}
	recs := drain(t, q, true)
	if len(recs) != accepted || recs[0].Msg.Topic != "t/00000" {
		t.Fatalf("delivered %d of %d accepted, first %s", len(recs), accepted, recs[0].Msg.Topic)
	}
	// Delivering made room again.
	q.maintain()
	if _, err := q.Append(msg("t/again", "x"), nil); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

func TestMaxAgeExpires(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	q := open(t, dir, Options{MaxAge: time.Hour, SegmentBytes: 1024, Now: clock})
	defer q.Close()
	for i := range 30 {
		appendSync(t, q, msg(fmt.Sprintf("old/%d", i), strings.Repeat("v", 40)))
	}
	advance(2 * time.Hour)
	for i := range 5 {
		appendSync(t, q, msg(fmt.Sprintf("new/%d", i), "v"))
	}
	recs := drain(t, q, true)
	for _, r := range recs {
		if strings.HasPrefix(r.Msg.Topic, "old/") {
			t.Fatalf("expired record delivered: %s", r.Msg.Topic)
		}
	}
	st := q.Stats()
	if len(recs) != 5 || st.Dropped.Expired != 30 {
		t.Fatalf("delivered %d, expired %d", len(recs), st.Dropped.Expired)
	}
}

func TestTooLargeAndClosed(t *testing.T) {
	q := open(t, t.TempDir(), Options{MaxBytes: 4096})
	if _, err := q.Append(msg("big", strings.Repeat("x", 5000)), nil); !errors.Is(err, mqttcore.ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(msg("a", "b"), nil); !errors.Is(err, mqttcore.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if d := q.Stats().Dropped; d.TooLarge != 1 || d.Closed != 1 {
		t.Fatalf("drops = %+v", d)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	defer q.Close()
	if _, err := Open(dir, Options{Log: quietLog()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestWriteErrorReachesProducer(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	defer q.Close()
	appendSync(t, q, msg("ok", "1"))
	// Make the next roll fail: the directory becomes read-only and the
	// segment is full.
	q.mu.Lock()
	q.rollNext = true
	q.mu.Unlock()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o750)
	if os.Geteuid() == 0 {
		// root ignores directory permissions: use a file in the way instead.
		_ = os.Chmod(dir, 0o750)
		q.mu.Lock()
		next := q.nextSeq
		q.mu.Unlock()
		if err := os.Mkdir(filepath.Join(dir, segName(next)), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	if _, err := q.Append(msg("fails", "2"), func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the producer was told a record was durable that could not be written")
	}
	if ds := q.DiskStats(); ds.WriteErrors != 1 {
		t.Fatalf("write errors = %d", ds.WriteErrors)
	}
	_ = os.Chmod(dir, 0o750)
	_ = os.Remove(filepath.Join(dir, segName(3)))
	_ = os.Remove(filepath.Join(dir, segName(2)))
	appendSync(t, q, msg("ok2", "3"))
	recs := drain(t, q, true)
	if got := strings.Join(topics(recs), ","); got != "ok,ok2" {
		t.Fatalf("records = %s", got)
	}
	if st := q.Stats(); st.Len != 0 {
		t.Fatalf("len = %d", st.Len)
	}
}

func lastSegment(t testing.TB, dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no segment")
	}
	return files[len(files)-1]
}

func appendFile(t testing.TB, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func corruptByte(t testing.TB, path string, off int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestInspectAndPeek(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 1024})
	for i := range 30 {
		appendSync(t, q, msg(fmt.Sprintf("gw/coap/dev%d/x", i%3), strings.Repeat("v", 40)))
	}
	recs := drain(t, q, false)
	for _, r := range recs[:10] {
		_ = q.Ack(r.Seq)
	}
	// While the gateway holds the queue, inspection is refused.
	if _, err := Inspect(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("inspect while open: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 20 || rep.Committed != 10 || rep.FirstSeq != 11 || rep.LastSeq != 30 || rep.CursorState != "ok" {
		t.Fatalf("report = %+v", rep)
	}
	if rep.Topics["gw/coap/dev0"] != 6 || rep.Topics["gw/coap/dev1"] != 7 || rep.Topics["gw/coap/dev2"] != 7 {
		t.Fatalf("topics = %v", rep.Topics)
	}
	var peeked []uint64
	if err := Peek(dir, 3, func(r mqttcore.Record) { peeked = append(peeked, r.Seq) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(peeked) != "[11 12 13]" {
		t.Fatalf("peek = %v", peeked)
	}
	// Inspect changed nothing: the queue opens with the same content.
	q = open(t, dir, Options{SegmentBytes: 1024})
	defer q.Close()
	if st := q.Stats(); st.Len != 20 {
		t.Fatalf("len after inspect = %d", st.Len)
	}
}

func TestOpenUnusableDirIsAClearError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("not a directory"), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(file, "queue"), Options{Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "offline queue") || !strings.Contains(err.Error(), file) {
		t.Fatalf("err = %v", err)
	}
}

func TestInspectDoesNotTakeOverTheLock(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	appendSync(t, q, msg("a", "1"))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, lockName))
	if _, err := Inspect(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, lockName))
	if string(before) != string(after) {
		t.Fatalf("LOCK changed by Inspect: %q -> %q", before, after)
	}
}
