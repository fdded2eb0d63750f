package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/causeway/causeway/mqttcore"
)

// Report describes a queue directory, read without changing it.
type Report struct {
	Dir          string
	Segments     int
	Bytes        int64     // segment files on disk
	Committed    uint64    // delivered up to here (cursor)
	CursorState  string    // ok | missing | damaged
	Messages     int       // undelivered records (valid, after the cursor)
	FirstSeq     uint64    // first undelivered record's sequence number (0 if none)
	LastSeq      uint64    // last record's sequence number (0 if none)
	Oldest       time.Time // first undelivered record's time
	Newest       time.Time // last record's time
	MessageBytes int64     // topic + payload bytes of the undelivered records
	Damaged      int       // damaged regions (corrupt records, torn tails)
	DamagedFiles []string  // files in damaged/ and segment files that cannot be read
	Topics       map[string]int
}

// Inspect reads the queue in dir without modifying it. It fails with
// ErrLocked while a gateway holds the queue: stop it first.
func Inspect(dir string) (*Report, error) {
	rep := &Report{Dir: dir, Topics: map[string]int{}}
	err := scanDir(dir, rep, func(rec mqttcore.Record) bool {
		rep.Messages++
		if rep.FirstSeq == 0 {
			rep.FirstSeq, rep.Oldest = rec.Seq, rec.Time
		}
		rep.MessageBytes += int64(len(rec.Msg.Topic) + len(rec.Msg.Payload))
		// Group by the first three topic levels: gateway/adapter/device.
		parts := strings.SplitN(rec.Msg.Topic, "/", 4)
		rep.Topics[strings.Join(parts[:min(3, len(parts))], "/")]++
		return true
	})
	return rep, err
}

// Peek calls fn with the first undelivered records, at most n, in order.
func Peek(dir string, n int, fn func(mqttcore.Record)) error {
	rep := &Report{Dir: dir}
	if n <= 0 {
		return nil
	}
	count := 0
	return scanDir(dir, rep, func(rec mqttcore.Record) bool {
		fn(rec)
		count++
		return count < n
	})
}

// errStopScan ends a scan early when its callback has what it wants.
var errStopScan = errors.New("scan stopped")

// scanDir reads every valid record after the cursor, in order, and fills
// the directory-level fields of rep. fn returns false to stop.
func scanDir(dir string, rep *Report, fn func(mqttcore.Record) bool) error {
	if _, err := os.Stat(dir); err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("no offline queue in %s (the gateway creates it when it starts with an [uplink])", dir)
		}
		return fmt.Errorf("offline queue: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockName)); err == nil {
		lf, err := lockDir(dir, false)
		if err != nil {
			return err
		}
		defer lf.Close()
	}
	c, found, damaged, err := readCursor(filepath.Join(dir, cursorName))
	switch {
	case err != nil:
		return err
	case damaged:
		rep.CursorState = "damaged"
	case !found:
		rep.CursorState = "missing"
	default:
		rep.CursorState = "ok"
	}
	rep.Committed = c.committed
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("offline queue: %w", err)
	}
	var firsts []uint64
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok && !e.IsDir() {
			firsts = append(firsts, first)
		} else if strings.HasSuffix(e.Name(), segSuffix) {
			rep.DamagedFiles = append(rep.DamagedFiles, e.Name())
		}
	}
	if moved, err := os.ReadDir(filepath.Join(dir, damagedDir)); err == nil {
		for _, e := range moved {
			rep.DamagedFiles = append(rep.DamagedFiles, filepath.Join(damagedDir, e.Name()))
		}
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	rep.Segments = len(firsts)
	for _, first := range firsts {
		path := filepath.Join(dir, segName(first))
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("offline queue: %w", err)
		}
		rep.Bytes += fi.Size()
		if err := scanSegment(path, first, fi.Size(), c.committed, rep, fn); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func scanSegment(path string, first uint64, size int64, committed uint64, rep *Report, fn func(mqttcore.Record) bool) error {
	var r segReader
	if err := r.open(path); err != nil {
		return err
	}
	defer r.close()
	hdr, err := r.view(0, segHeaderSize, size)
	if err != nil || checkSegHeader(hdr, first) != nil {
		rep.DamagedFiles = append(rep.DamagedFiles, filepath.Base(path))
		return nil
	}
	off, last := int64(segHeaderSize), first-1
	for off < size {
		h, b, err := r.recordAt(off, size)
		if err == nil && h.seq > last {
			off += int64(h.size)
			last = h.seq
			rep.LastSeq = h.seq
			rep.Newest = time.Unix(0, h.time)
			if h.seq > committed && !fn(mqttcore.Record{Seq: h.seq, Time: time.Unix(0, h.time), Msg: decodeMessage(b, h)}) {
				return errStopScan
			}
			continue
		}
		if err != nil && !isDamage(err) {
			return err
		}
		rep.Damaged++
		off2, _, found, err := r.resync(off+1, size, last+1, ^uint64(0))
		if err != nil {
			return err
		}
		if !found {
			break
		}
		off = off2
	}
	return nil
}
