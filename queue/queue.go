package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mqttcore"
)

// Fsync is the [queue] fsync policy.
type Fsync uint8

const (
	// FsyncBatch accepts a record once it is written to the segment file
	// (it survives kill -9) and fsyncs at most FsyncInterval later (which
	// bounds what a power cut can take).
	FsyncBatch Fsync = iota
	// FsyncAlways accepts a record once it is fsynced. Writers that arrive
	// while an fsync runs share the next one (group commit).
	FsyncAlways
	// FsyncOff accepts a record once it is written and never fsyncs.
	FsyncOff
)

func (f Fsync) String() string {
	switch f {
	case FsyncAlways:
		return "always"
	case FsyncOff:
		return "off"
	}
	return "batch"
}

// ParseFsync parses the [queue] fsync value.
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "", "batch":
		return FsyncBatch, nil
	case "always":
		return FsyncAlways, nil
	case "off":
		return FsyncOff, nil
	}
	return 0, fmt.Errorf("fsync %q: want always, batch or off", s)
}

// Defaults of Options.
const (
	DefaultMaxBytes      = 256 << 20
	DefaultMaxAge        = 168 * time.Hour
	DefaultFsyncInterval = 50 * time.Millisecond
	// maxSegmentBytes and minSegmentBytes clamp the segment size, which is
	// MaxBytes/16 by default.
	maxSegmentBytes = 16 << 20
	minSegmentBytes = 64 << 10
	// readChunk is how much the reader asks the kernel for at once.
	readChunk = 64 << 10
	// maintainEvery is the period of the background upkeep (cursor, expiry,
	// reclaiming files, drop reports).
	maintainEvery = time.Second
	// dropLogEvery and statsLogEvery rate-limit the queue's log lines.
	dropLogEvery  = 10 * time.Second
	statsLogEvery = 30 * time.Second
	damagedDir    = "damaged"
	lockName      = "LOCK"
)

// ErrLocked is returned by Open when another process holds the queue.
var ErrLocked = errors.New("offline queue is in use by another process (is the gateway running?)")

// Options configures a Queue.
type Options struct {
	// MaxBytes bounds the queue's files on disk (segment headers and
	// records, including acknowledged records not reclaimed yet).
	// Default DefaultMaxBytes.
	MaxBytes int64
	// MaxAge drops records older than this (counted as expired). Default
	// DefaultMaxAge; negative disables it.
	MaxAge time.Duration
	// WhenFull is the policy when a record does not fit. drop_oldest frees
	// space a whole segment (SegmentBytes) at a time.
	WhenFull mqttcore.WhenFull
	// Fsync is the durability policy, FsyncInterval its batch period
	// (default DefaultFsyncInterval).
	Fsync         Fsync
	FsyncInterval time.Duration
	// SegmentBytes is the size at which a new segment file is started.
	// Default MaxBytes/16, clamped to [min(64 KiB, MaxBytes/4), 16 MiB].
	SegmentBytes int64
	// Log receives the queue's reports. Default slog.Default().
	Log *slog.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.SegmentBytes <= 0 {
		// Never more than a quarter of the bound, so that drop_oldest
		// always has a whole segment to give up.
		o.SegmentBytes = min(max(o.MaxBytes/16, min(minSegmentBytes, o.MaxBytes/4)), maxSegmentBytes)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// segment is one segment file.
type segment struct {
	first     uint64    // first sequence number (the file name)
	last      uint64    // last sequence number in it (first-1 while empty)
	size      int64     // bytes written (header included); the reader's limit
	firstTime time.Time // time of its first record (zero if unknown)
	path      string
	bad       map[int64]bool // offsets of damage counted at start-up
}

type waiter struct {
	seq uint64
	fn  func(error)
}

// outRec is a record handed to the sender and not yet committed.
type outRec struct {
	rec   mqttcore.Record
	acked bool
	seg   uint64 // segment of the record after it
	end   int64  // and its offset
}

// Stats are the counters specific to the disk queue.
type Stats struct {
	Segments      int
	Corrupt       uint64 // records lost to corruption (skipped or moved aside)
	TornBytes     int64  // bytes truncated from a torn tail at start-up
	DamagedFiles  int    // files moved aside to damaged/
	WriteErrors   uint64 // batches that could not be written (their producers got an error)
	Writes        uint64 // write system calls of records
	Fsyncs        uint64 // fsyncs of segments, the directory and the cursor
	BytesWritten  uint64 // record bytes written to segment files
	Replayed      uint64 // records read back from disk for the sender
	RecoveredRecs uint64 // unacknowledged records found at start-up
	OpenTime      time.Duration
}

// Queue is the durable offline queue: an append-only log of segment files
// in one directory, implementing mqttcore.Queue. See the package comment.
type Queue struct {
	dir  string
	opts Options
	log  *slog.Logger

	lockFile   *os.File
	cursorFile *os.File

	ready   chan struct{} // to the sender: records were written
	wake    chan struct{} // to the writer: records were appended
	dirtyCh chan struct{} // to the syncer: a write since the last fsync
	stop    chan struct{}
	wg      sync.WaitGroup

	crashed atomic.Bool // tests: stop as kill -9 would
	fsyncs  atomic.Uint64

	fileMu sync.Mutex // held by roll and by the syncer's fsync
	wf     *os.File   // the segment being written; the writer's

	mu        sync.Mutex
	closed    bool
	segs      []*segment
	bytes     int64 // segment sizes + records appended and not yet written
	nextSeq   uint64
	pend      []byte // records appended, not yet taken by the writer
	spare     []byte
	pendFirst uint64
	pendTime  time.Time
	waiters   []waiter
	dirty     bool // written since the last fsync (batch)
	rollNext  bool // the writer must start a new segment
	live      int  // records not yet acknowledged or dropped

	// read side (sender)
	readSeq   uint64 // next sequence number to read from disk
	rseg      *segment
	r         segReader
	roff      int64
	lastRead  time.Time
	out       []outRec // handed out since the committed position, in order
	replay    int      // Next hands out out[replay:] before reading the disk
	committed uint64
	cur       cursor // last cursor written
	curSeg    uint64 // position of the record after committed (hint)
	curOff    int64
	deletes   []string

	// counters
	appended, acked uint64
	dropped         mqttcore.Drops
	dropsToLog      mqttcore.Drops
	lastDropLog     time.Time
	lastStatsLog    time.Time
	lastStats       struct{ appended, acked uint64 }
	st              Stats
	writeErrLog     time.Time
}

var _ mqttcore.Queue = (*Queue)(nil)

// Open opens (creating if needed) the queue in dir, recovers it after a
// crash, and starts its writer. Damaged files are moved aside to
// dir/damaged and reported, never a reason to fail; Open fails only when dir
// cannot be used at all (permissions, another process holding it).
func Open(dir string, opts Options) (*Queue, error) {
	opts.defaults()
	start := time.Now()
	q := &Queue{
		dir:     dir,
		opts:    opts,
		log:     opts.Log,
		ready:   make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		dirtyCh: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("offline queue: %w", err)
	}
	lf, err := lockDir(dir, true)
	if err != nil {
		return nil, err
	}
	q.lockFile = lf
	if err := q.recover(); err != nil {
		q.closeFiles()
		return nil, err
	}
	cf, err := os.OpenFile(filepath.Join(dir, cursorName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		q.closeFiles()
		return nil, fmt.Errorf("offline queue: %w", err)
	}
	q.cursorFile = cf
	q.st.OpenTime = time.Since(start)
	q.wg.Add(2)
	go q.writer()
	go q.syncer()
	return q, nil
}

// lockDir takes the queue directory's lock; the holder's pid is written
// into it when ownPid (the gateway, not the read-only tools).
func lockDir(dir string, ownPid bool) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("offline queue: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s held by pid %s", ErrLocked, path, strings.TrimRight(string(b[:n]), "\n \x00"))
		}
		return nil, fmt.Errorf("offline queue: lock %s: %w", path, err)
	}
	if ownPid {
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	}
	return f, nil
}

// Dir is the queue's directory.
func (q *Queue) Dir() string { return q.dir }

// Append implements mqttcore.Queue: m gets a sequence number and is handed
// to the writer. done, if not nil, is called once the record is as durable
// as the fsync policy promises (written to the file; with always, fsynced)
// or with the error that prevented it; it runs on the writer goroutine and
// must not block.
func (q *Queue) Append(m bridge.Message, done func(error)) (uint64, error) {
	size := recordSize(&m)
	now := q.opts.Now()
	q.mu.Lock()
	if q.closed {
		q.dropLocked(mqttcore.DropClosed, 1)
		q.mu.Unlock()
		return 0, mqttcore.ErrClosed
	}
	if size+segHeaderSize > q.opts.MaxBytes || size-recHeaderSize > maxRecordBody-recFixed {
		q.dropLocked(mqttcore.DropTooLarge, 1)
		q.mu.Unlock()
		return 0, mqttcore.ErrTooLarge
	}
	q.expireSegmentsLocked(now)
	if q.bytes+size-q.reclaimableLocked() > q.opts.MaxBytes {
		if q.opts.WhenFull == mqttcore.DropOldest {
			for q.bytes+size > q.opts.MaxBytes && len(q.segs) > 1 {
				q.dropHeadLocked(mqttcore.DropFull)
			}
		}
		if q.bytes+size-q.reclaimableLocked() > q.opts.MaxBytes {
			// drop_newest, or nothing left to evict but the segment being
			// written: refuse the new record.
			q.dropLocked(mqttcore.DropFull, 1)
			q.mu.Unlock()
			return 0, mqttcore.ErrQueueFull
		}
	}
	if r := q.reclaimableLocked(); r > 0 && q.bytes+size > q.opts.MaxBytes {
		q.rollNext = true // the delivered segment being written makes room
	}
	seq := q.nextSeq
	q.nextSeq++
	if len(q.pend) == 0 {
		q.pendFirst, q.pendTime = seq, now
	}
	q.pend = appendRecord(q.pend, seq, now, &m)
	q.bytes += size
	q.live++
	q.appended++
	if done != nil {
		q.waiters = append(q.waiters, waiter{seq: seq, fn: done})
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// writer moves appended records to the segment file: one write (and with
// always, one fsync) for everything appended since the last one.
func (q *Queue) writer() {
	defer q.wg.Done()
	var done []waiter
	for {
		select {
		case <-q.wake:
		case <-q.stop:
			if !q.crashed.Load() {
				q.flush(&done)
			}
			return
		}
		q.flush(&done)
	}
}

func (q *Queue) flush(done *[]waiter) {
	for {
		q.mu.Lock()
		if len(q.pend) == 0 {
			q.mu.Unlock()
			return
		}
		batch := q.pend
		first, last, firstTime := q.pendFirst, q.nextSeq-1, q.pendTime
		q.pend, q.spare = q.spare[:0], nil
		q.mu.Unlock()

		okLast, err := q.writeBatch(batch, first, firstTime)

		q.mu.Lock()
		if err != nil {
			q.writeFailedLocked(batch, okLast, first, last, err)
		}
		if okLast >= first && q.opts.Fsync == FsyncBatch && !q.dirty {
			q.dirty = true
			select {
			case q.dirtyCh <- struct{}{}:
			default:
			}
		}
		k := sort.Search(len(q.waiters), func(i int) bool { return q.waiters[i].seq > last })
		*done = append((*done)[:0], q.waiters[:k]...)
		q.waiters = append(q.waiters[:0], q.waiters[k:]...)
		if cap(batch) <= 4<<20 {
			q.spare = batch[:0]
		}
		q.mu.Unlock()

		if okLast >= first {
			select {
			case q.ready <- struct{}{}:
			default:
			}
		}
		for i, w := range *done {
			if w.seq <= okLast {
				w.fn(nil)
			} else {
				w.fn(err)
			}
			(*done)[i] = waiter{}
		}
	}
}

// writeBatch writes batch (whole records, first is the first one's
// sequence number) into segments of about SegmentBytes, starting new ones as
// needed; with always it fsyncs once at the end. okLast is the last
// sequence number written (first-1 if none).
func (q *Queue) writeBatch(batch []byte, first uint64, firstTime time.Time) (okLast uint64, err error) {
	okLast = first - 1
	for len(batch) > 0 {
		q.mu.Lock()
		roll := q.rollNext || q.wf == nil
		room := q.opts.SegmentBytes
		if a := q.activeLocked(); a != nil && !roll {
			room -= a.size
			roll = room <= 0
		}
		q.rollNext = false
		q.mu.Unlock()
		seq := binary.LittleEndian.Uint64(batch[recPrefix:])
		if roll {
			if err := q.roll(seq); err != nil {
				return okLast, err
			}
			room = q.opts.SegmentBytes - segHeaderSize
		}
		// Whole records up to the room left (at least one).
		cut, lastSeq := 0, seq
		for cut < len(batch) {
			sz := recPrefix + int(binary.LittleEndian.Uint32(batch[cut:]))
			if cut > 0 && int64(cut+sz) > room {
				break
			}
			lastSeq = binary.LittleEndian.Uint64(batch[cut+recPrefix:])
			cut += sz
		}
		n, werr := q.wf.Write(batch[:cut])
		q.mu.Lock()
		q.st.Writes++
		seg := q.activeLocked()
		if werr != nil {
			if n > 0 {
				if terr := q.wf.Truncate(seg.size); terr != nil {
					q.rollNext = true // never write after bytes we could not remove
				}
			}
			q.mu.Unlock()
			return okLast, fmt.Errorf("write %s: %w", q.wf.Name(), werr)
		}
		seg.size += int64(n)
		seg.last = lastSeq
		if seg.firstTime.IsZero() {
			seg.firstTime = firstTime
		}
		q.st.BytesWritten += uint64(n)
		q.mu.Unlock()
		okLast = lastSeq
		batch = batch[cut:]
	}
	if q.opts.Fsync == FsyncAlways {
		if err := q.sync(q.wf); err != nil {
			// The data may not be on the disk: nothing of this batch is
			// reported durable. It stays in the file (it may be sent).
			return first - 1, fmt.Errorf("fsync %s: %w", q.wf.Name(), err)
		}
	}
	return okLast, nil
}

// writeFailedLocked accounts for the records of a batch after okLast that
// could not be written: their producers get the error (nothing they were
// told is safe is lost) and they leave the queue.
func (q *Queue) writeFailedLocked(batch []byte, okLast, first, last uint64, err error) {
	count := int(last - max(okLast, first-1))
	q.live -= count
	q.appended -= uint64(count)
	q.st.WriteErrors++
	// Bytes of the failed records (the batch's tail).
	off := 0
	for off < len(batch) && binary.LittleEndian.Uint64(batch[off+recPrefix:]) <= okLast {
		off += recPrefix + int(binary.LittleEndian.Uint32(batch[off:]))
	}
	q.bytes -= int64(len(batch) - off)
	now := q.opts.Now()
	if now.Sub(q.writeErrLog) >= time.Second {
		q.writeErrLog = now
		q.log.Error("offline queue: could not write records; their producers were told so and will retry",
			slog.Int("records", count), slog.Any("error", err))
	}
}

// roll starts a new segment whose first record is first.
func (q *Queue) roll(first uint64) error {
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	if q.wf != nil {
		// Under always its last batch is fsynced already.
		if q.opts.Fsync == FsyncBatch {
			if err := q.sync(q.wf); err != nil {
				q.log.Error("offline queue: fsync of a full segment failed", slog.String("file", q.wf.Name()), slog.Any("error", err))
			}
		}
		_ = q.wf.Close()
		q.wf = nil
	}
	path := filepath.Join(q.dir, segName(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	if _, err := f.Write(segHeader(first)); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("new segment %s: %w", path, err)
	}
	if q.opts.Fsync != FsyncOff {
		if err := q.sync(f); err != nil {
			_ = f.Close()
			_ = os.Remove(path)
			return fmt.Errorf("new segment %s: fsync: %w", path, err)
		}
		q.fsyncs.Add(1)
		if err := syncDir(q.dir); err != nil {
			q.log.Warn("offline queue: fsync of the directory failed", slog.Any("error", err))
		}
	}
	q.wf = f
	q.mu.Lock()
	q.segs = append(q.segs, &segment{first: first, last: first - 1, size: segHeaderSize, path: path})
	q.bytes += segHeaderSize
	q.reclaimLocked()
	q.mu.Unlock()
	return nil
}

func (q *Queue) activeLocked() *segment {
	if len(q.segs) == 0 {
		return nil
	}
	return q.segs[len(q.segs)-1]
}

// syncer fsyncs under the batch policy and does the periodic upkeep.
func (q *Queue) syncer() {
	defer q.wg.Done()
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	var fsyncC <-chan time.Time
	var timer *time.Timer
	for {
		select {
		case <-q.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-q.dirtyCh:
			if fsyncC == nil {
				timer = time.NewTimer(q.opts.FsyncInterval)
				fsyncC = timer.C
			}
		case <-fsyncC:
			fsyncC, timer = nil, nil
			q.syncActive()
		case <-tick.C:
			q.maintain()
		}
	}
}

func (q *Queue) syncActive() {
	q.mu.Lock()
	q.dirty = false
	q.mu.Unlock()
	q.fileMu.Lock()
	var err error
	if q.wf != nil {
		err = q.sync(q.wf)
	}
	q.fileMu.Unlock()
	if err != nil {
		q.log.Error("offline queue: fsync failed", slog.Any("error", err))
	}
}

// maintain expires old segments, saves the cursor, removes reclaimed
// files and writes the rate-limited reports.
func (q *Queue) maintain() {
	now := q.opts.Now()
	q.mu.Lock()
	q.expireSegmentsLocked(now)
	q.saveCursorLocked()
	deletes := q.deletes
	q.deletes = nil
	var drops mqttcore.Drops
	if q.dropsToLog.Total() > 0 && (q.lastDropLog.IsZero() || now.Sub(q.lastDropLog) >= dropLogEvery) {
		drops, q.dropsToLog, q.lastDropLog = q.dropsToLog, mqttcore.Drops{}, now
	}
	var statsAttrs []any
	if (q.live > 0 || q.appended != q.lastStats.appended) && now.Sub(q.lastStatsLog) >= statsLogEvery {
		secs := now.Sub(q.lastStatsLog).Seconds()
		if q.lastStatsLog.IsZero() {
			secs = 0
		}
		statsAttrs = q.statsAttrsLocked(now, secs)
		q.lastStatsLog = now
		q.lastStats.appended, q.lastStats.acked = q.appended, q.acked
	}
	q.mu.Unlock()
	for _, p := range deletes {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			q.log.Warn("offline queue: could not remove a reclaimed segment", slog.String("file", p), slog.Any("error", err))
		}
	}
	if drops.Total() > 0 {
		q.logDrops(drops)
	}
	if statsAttrs != nil {
		q.log.Info("offline queue", statsAttrs...)
	}
}

func (q *Queue) statsAttrsLocked(now time.Time, secs float64) []any {
	attrs := []any{
		slog.Int("messages", q.live),
		slog.Int64("bytes", q.bytes),
		slog.Duration("oldest_age", q.oldestAgeLocked(now).Round(time.Millisecond)),
		slog.Uint64("dropped", q.dropped.Total()),
	}
	if secs > 0 {
		attrs = append(attrs,
			slog.String("in_rate", fmt.Sprintf("%.1f/s", float64(q.appended-q.lastStats.appended)/secs)),
			slog.String("out_rate", fmt.Sprintf("%.1f/s", float64(q.acked-q.lastStats.acked)/secs)))
	}
	return attrs
}

func (q *Queue) logDrops(d mqttcore.Drops) {
	mqttcore.LogDrops(q.log, d, q.opts.WhenFull, q.opts.MaxBytes, q.opts.MaxAge)
}

func (q *Queue) dropLocked(r mqttcore.DropReason, n int) {
	if n <= 0 {
		return
	}
	q.dropped.Add(r, uint64(n))
	q.dropsToLog.Add(r, uint64(n))
}

// expireSegmentsLocked drops head segments whose every record is older
// than MaxAge (known from the next segment's first record).
func (q *Queue) expireSegmentsLocked(now time.Time) {
	if q.opts.MaxAge < 0 {
		return
	}
	for len(q.segs) > 1 {
		next := q.segs[1]
		if next.firstTime.IsZero() || now.Sub(next.firstTime) <= q.opts.MaxAge {
			return
		}
		q.dropHeadLocked(mqttcore.DropExpired)
	}
}

// dropHeadLocked removes the oldest segment (never the one being written),
// counting its records not yet handed to the sender as dropped. Records the
// sender holds stay in memory and are still delivered.
func (q *Queue) dropHeadLocked(reason mqttcore.DropReason) {
	s := q.segs[0]
	if s.last >= q.readSeq {
		n := int(s.last - max(s.first, q.readSeq) + 1)
		q.dropLocked(reason, n)
		q.live -= n
		q.readSeq = s.last + 1
	}
	q.removeHeadLocked()
	if len(q.out) == 0 && q.committed < s.last {
		q.setCommittedLocked(s.last, 0, 0)
	}
}

func (q *Queue) setCommittedLocked(seq, seg uint64, off int64) {
	q.committed, q.curSeg, q.curOff = seq, seg, off
}

// Next implements mqttcore.Queue.
func (q *Queue) Next() (mqttcore.Record, bool, error) {
	now := q.opts.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return mqttcore.Record{}, false, nil
	}
	for q.replay < len(q.out) {
		e := &q.out[q.replay]
		q.replay++
		if !e.acked {
			return e.rec, true, nil
		}
	}
	for {
		rec, ok, err := q.readLocked()
		if err != nil || !ok {
			return mqttcore.Record{}, false, err
		}
		q.st.Replayed++
		if q.opts.MaxAge >= 0 && now.Sub(rec.Time) > q.opts.MaxAge {
			q.dropLocked(mqttcore.DropExpired, 1)
			q.live--
			if len(q.out) == 0 {
				q.setCommittedLocked(rec.Seq, q.rsegFirst(), q.roff)
			} else {
				q.out = append(q.out, outRec{rec: mqttcore.Record{Seq: rec.Seq}, acked: true, seg: q.rsegFirst(), end: q.roff})
				q.replay = len(q.out)
			}
			continue
		}
		q.out = append(q.out, outRec{rec: rec, seg: q.rsegFirst(), end: q.roff})
		q.replay = len(q.out)
		return rec, true, nil
	}
}

func (q *Queue) rsegFirst() uint64 {
	if q.rseg == nil {
		return 0
	}
	return q.rseg.first
}

// Rewind implements mqttcore.Queue.
func (q *Queue) Rewind() error {
	q.mu.Lock()
	q.replay = 0
	q.mu.Unlock()
	return nil
}

// Ack implements mqttcore.Queue.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := sort.Search(len(q.out), func(i int) bool { return q.out[i].rec.Seq >= seq })
	if i == len(q.out) || q.out[i].rec.Seq != seq || q.out[i].acked {
		return nil
	}
	q.out[i].acked = true
	q.out[i].rec.Msg = bridge.Message{} // release the payload now
	q.live--
	q.acked++
	k := 0
	for k < len(q.out) && q.out[k].acked {
		k++
	}
	if k == 0 {
		return nil
	}
	last := q.out[k-1]
	q.setCommittedLocked(last.rec.Seq, last.seg, last.end)
	clear(q.out[:k])
	q.out = q.out[k:]
	q.replay = max(0, q.replay-k)
	if len(q.out) == 0 {
		q.out = q.out[:0:0] // let the backing array go once drained
		if q.readSeq-1 > q.committed {
			q.setCommittedLocked(q.readSeq-1, q.rsegFirst(), q.roff)
		}
	}
	q.reclaimLocked()
	return nil
}

// reclaimLocked removes segments that are wholly delivered. The segment
// being written stays until it is full, or until its space is needed for
// the bound (Append then asks for a roll): rolling whenever it is delivered
// would create a file per message at low rates or with fast acks.
func (q *Queue) reclaimLocked() {
	for len(q.segs) > 1 && q.segs[0].last <= q.committed {
		q.removeHeadLocked()
	}
}

// removeHeadLocked takes the oldest segment out of the queue; its file is
// removed by the next upkeep.
func (q *Queue) removeHeadLocked() {
	s := q.segs[0]
	if q.rseg == s {
		q.closeReaderLocked()
	}
	q.segs[0] = nil
	q.segs = q.segs[1:]
	q.bytes -= s.size
	q.deletes = append(q.deletes, s.path)
}

// reclaimableLocked is the size of the segment being written when it is
// wholly delivered: a roll would free it.
func (q *Queue) reclaimableLocked() int64 {
	if a := q.activeLocked(); a != nil && a.last >= a.first && a.last <= q.committed {
		return a.size
	}
	return 0
}

// Ready implements mqttcore.Queue.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Stats implements mqttcore.Queue.
func (q *Queue) Stats() mqttcore.QueueStats {
	now := q.opts.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	return mqttcore.QueueStats{
		Len:       max(q.live, 0),
		Bytes:     q.bytes,
		OldestAge: q.oldestAgeLocked(now),
		Appended:  q.appended,
		Acked:     q.acked,
		Dropped:   q.dropped,
		Committed: q.committed,
		LastSeq:   q.nextSeq - 1,
	}
}

// DiskStats returns the disk queue's own counters.
func (q *Queue) DiskStats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.st
	st.Segments = len(q.segs)
	st.Fsyncs = q.fsyncs.Load()
	return st
}

// oldestAgeLocked is the age of the oldest record not yet acknowledged; for
// a record inside a segment the reader has not reached, an upper bound (the
// age of the record read just before it).
func (q *Queue) oldestAgeLocked(now time.Time) time.Duration {
	if q.live <= 0 {
		return 0
	}
	for i := range q.out {
		if !q.out[i].acked {
			return now.Sub(q.out[i].rec.Time)
		}
	}
	for _, s := range q.segs {
		if s.last < q.readSeq {
			continue
		}
		if q.readSeq <= s.first && !s.firstTime.IsZero() {
			return now.Sub(s.firstTime)
		}
		if !q.lastRead.IsZero() {
			return now.Sub(q.lastRead)
		}
		if !s.firstTime.IsZero() {
			return now.Sub(s.firstTime)
		}
	}
	if len(q.pend) > 0 {
		return now.Sub(q.pendTime)
	}
	return 0
}

// Close implements mqttcore.Queue: it stops accepting, writes what was
// appended, fsyncs (unless fsync = off), saves the cursor and releases the
// directory. Records not yet delivered stay for the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()

	var errs []error
	q.fileMu.Lock()
	if q.wf != nil {
		if q.opts.Fsync != FsyncOff {
			if err := q.sync(q.wf); err != nil {
				errs = append(errs, fmt.Errorf("offline queue: fsync: %w", err))
			}
		}
		if err := q.wf.Close(); err != nil {
			errs = append(errs, fmt.Errorf("offline queue: %w", err))
		}
		q.wf = nil
	}
	q.fileMu.Unlock()

	q.mu.Lock()
	q.saveCursorLocked()
	q.closeReaderLocked()
	deletes := q.deletes
	q.deletes = nil
	drops := q.dropsToLog
	q.dropsToLog = mqttcore.Drops{}
	live, bytes := q.live, q.bytes
	q.mu.Unlock()
	for _, p := range deletes {
		_ = os.Remove(p)
	}
	if drops.Total() > 0 {
		q.logDrops(drops)
	}
	if q.cursorFile != nil && q.opts.Fsync != FsyncOff {
		if err := q.sync(q.cursorFile); err != nil {
			errs = append(errs, fmt.Errorf("offline queue: fsync cursor: %w", err))
		}
	}
	q.closeFiles()
	if live > 0 {
		q.log.Info("offline queue closed; undelivered messages are kept for the next start",
			slog.Int("messages", live), slog.Int64("bytes", bytes), slog.String("dir", q.dir))
	}
	return errors.Join(errs...)
}

// crash stops the queue the way kill -9 would, for tests: records not yet
// written are lost (their producers were not told they were accepted), the
// cursor is not saved, nothing is fsynced.
func (q *Queue) crash() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	q.crashed.Store(true)
	close(q.stop)
	q.wg.Wait()
	q.fileMu.Lock()
	if q.wf != nil {
		_ = q.wf.Close()
		q.wf = nil
	}
	q.fileMu.Unlock()
	q.mu.Lock()
	q.closeReaderLocked()
	q.mu.Unlock()
	q.closeFiles()
}

func (q *Queue) closeFiles() {
	if q.cursorFile != nil {
		_ = q.cursorFile.Close()
		q.cursorFile = nil
	}
	if q.lockFile != nil {
		_ = q.lockFile.Close() // releases the flock
		q.lockFile = nil
	}
}

// saveCursorLocked writes the committed position if it moved.
func (q *Queue) saveCursorLocked() {
	if q.cursorFile == nil || (q.cur.committed == q.committed && q.cur.gen > 0) {
		return
	}
	c := cursor{gen: q.cur.gen + 1, committed: q.committed, segFirst: q.curSeg, offset: q.curOff}
	if err := writeCursor(q.cursorFile, c); err != nil {
		q.log.Warn("offline queue: could not save the delivered position (messages may be sent twice after a restart)", slog.Any("error", err))
		return
	}
	q.cur = c
}

// sync fdatasyncs f and counts it.
func (q *Queue) sync(f *os.File) error {
	q.fsyncs.Add(1)
	return fdatasync(f)
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
