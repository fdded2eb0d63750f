package queue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// recover rebuilds the queue's state from its directory after a clean stop
// or a crash. Only the last segment (the one that was being written) is
// scanned record by record: a torn tail is truncated, damage before valid
// records is skipped and counted. Earlier segments were complete when the
// writer moved on; their records are checked as the sender reads them.
func (q *Queue) recover() error {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("offline queue: %w", err)
	}
	var segs []*segment
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == lockName || name == cursorName {
			continue
		}
		first, ok := parseSegName(name)
		if !ok {
			if strings.HasSuffix(name, segSuffix) {
				q.moveAside(name, "not a segment file name")
			}
			continue
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(q.dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })

	c, _, damaged, err := readCursor(filepath.Join(q.dir, cursorName))
	if err != nil || damaged {
		reason := "no valid slot"
		if err != nil {
			reason = err.Error()
		}
		q.moveAside(cursorName, reason+"; undelivered messages may be sent again")
		c = cursor{}
	}
	q.cur = c
	q.committed, q.curSeg, q.curOff = c.committed, c.segFirst, c.offset

	// Headers, sizes and first record times.
	kept := segs[:0]
	for _, s := range segs {
		ok, err := q.openSegment(s)
		if err != nil {
			// Unreadable (permissions, I/O error): set it aside rather than
			// refuse to start.
			q.moveAside(filepath.Base(s.path), err.Error())
			continue
		}
		if ok {
			kept = append(kept, s)
		}
	}
	segs = kept
	for i, s := range segs {
		if i+1 < len(segs) {
			s.last = segs[i+1].first - 1
		}
	}
	// The last segment: scan it.
	for len(segs) > 0 {
		s := segs[len(segs)-1]
		if err := q.scanLast(s); err != nil {
			q.moveAside(filepath.Base(s.path), err.Error())
			segs = segs[:len(segs)-1]
			continue
		}
		if s.last >= s.first {
			break
		}
		// Nothing valid in it: remove it.
		if err := os.Remove(s.path); err != nil {
			q.moveAside(filepath.Base(s.path), "empty segment that cannot be removed: "+err.Error())
		}
		segs = segs[:len(segs)-1]
	}

	// Sequence numbers are never reused.
	q.nextSeq = q.committed + 1
	if n := len(segs); n > 0 {
		q.nextSeq = max(q.nextSeq, segs[n-1].last+1)
	}
	// Segments wholly delivered before the crash.
	for len(segs) > 0 && segs[0].last <= q.committed {
		q.deletes = append(q.deletes, segs[0].path)
		segs = segs[1:]
	}
	q.segs = segs
	q.readSeq = q.committed + 1
	for _, s := range segs {
		q.bytes += s.size
		if s.last >= q.readSeq {
			q.live += int(s.last - max(s.first, q.readSeq) + 1)
		}
	}
	q.live -= int(q.st.Corrupt)
	q.live = max(q.live, 0)
	q.st.RecoveredRecs = uint64(q.live)

	level := slog.LevelInfo
	if q.st.Corrupt > 0 || q.st.TornBytes > 0 || q.st.DamagedFiles > 0 {
		level = slog.LevelWarn
	}
	if q.live > 0 || level == slog.LevelWarn {
		q.log.Log(context.Background(), level, "offline queue opened",
			slog.String("dir", q.dir),
			slog.Int("messages", q.live),
			slog.Int64("bytes", q.bytes),
			slog.Int("segments", len(segs)),
			slog.Uint64("damaged_records", q.st.Corrupt),
			slog.Int64("torn_bytes", q.st.TornBytes),
			slog.Int("damaged_files", q.st.DamagedFiles))
	}
	return nil
}

// openSegment reads a segment's size, header and first record. ok is false
// when the file was moved aside or removed.
func (q *Queue) openSegment(s *segment) (ok bool, err error) {
	var r segReader
	if err := r.open(s.path); err != nil {
		return false, err
	}
	defer r.close()
	fi, err := r.f.Stat()
	if err != nil {
		return false, fmt.Errorf("offline queue: %w", err)
	}
	s.size = fi.Size()
	s.last = s.first - 1
	if s.size < segHeaderSize {
		// A crash while the segment was being created: it holds nothing.
		r.close()
		if err := os.Remove(s.path); err != nil {
			return false, fmt.Errorf("remove empty segment: %w", err)
		}
		return false, nil
	}
	hdr, err := r.view(0, segHeaderSize, s.size)
	if err != nil {
		return false, err
	}
	if herr := checkSegHeader(hdr, s.first); herr != nil {
		r.close()
		q.moveAside(filepath.Base(s.path), herr.Error())
		return false, nil
	}
	if h, _, err := r.recordAt(segHeaderSize, s.size); err == nil {
		s.firstTime = time.Unix(0, h.time)
	} else if !isDamage(err) {
		return false, err
	}
	return true, nil
}

// scanLast validates every record of the last segment, truncates a torn
// tail and counts damage followed by valid records.
func (q *Queue) scanLast(s *segment) error {
	var r segReader
	if err := r.open(s.path); err != nil {
		return err
	}
	defer r.close()
	off := int64(segHeaderSize)
	s.last = s.first - 1
	s.firstTime = time.Time{}
	for off < s.size {
		h, _, err := r.recordAt(off, s.size)
		if err == nil && h.seq > s.last {
			if s.firstTime.IsZero() {
				s.firstTime = time.Unix(0, h.time)
			}
			s.last = h.seq
			off += int64(h.size)
			continue
		}
		if err != nil && !isDamage(err) {
			return err
		}
		off2, h2, found, err := r.resync(off+1, s.size, s.last+1, ^uint64(0))
		if err != nil {
			return err
		}
		if !found {
			// A torn tail: the crash interrupted a write.
			if err := os.Truncate(s.path, off); err != nil {
				// Not fatal: new records go to a new segment, and the
				// reader stops at the last valid record.
				q.log.Warn("offline queue: could not truncate a torn tail", slog.String("file", s.path), slog.Any("error", err))
			}
			q.st.TornBytes += s.size - off
			q.log.Warn("offline queue: torn record at the end of the last segment truncated (it was never acknowledged to its producer)",
				slog.String("file", s.path), slog.Int64("offset", off), slog.Int64("bytes", s.size-off))
			s.size = off
			break
		}
		lost := h2.seq - (s.last + 1)
		if s.last < s.first {
			lost = h2.seq - s.first
		}
		if s.bad == nil {
			s.bad = map[int64]bool{}
		}
		s.bad[off] = true
		if h2.seq > q.committed {
			q.st.Corrupt += lost
		}
		q.log.Warn("offline queue: damaged records skipped",
			slog.String("file", s.path), slog.Int64("offset", off), slog.Uint64("records_lost", lost))
		off = off2
	}
	return nil
}

// moveAside moves a damaged file of the queue directory to damaged/ so that
// it can be examined, and reports it.
func (q *Queue) moveAside(name, reason string) {
	q.st.DamagedFiles++
	src := filepath.Join(q.dir, name)
	ddir := filepath.Join(q.dir, damagedDir)
	dst := filepath.Join(ddir, fmt.Sprintf("%s.%d", name, time.Now().UnixNano()))
	err := os.MkdirAll(ddir, 0o750)
	if err == nil {
		err = os.Rename(src, dst)
	}
	if err != nil {
		q.log.Error("offline queue: damaged file could not be moved aside; ignoring it",
			slog.String("file", src), slog.String("reason", reason), slog.Any("error", err))
		return
	}
	q.log.Warn("offline queue: damaged file moved aside",
		slog.String("file", src), slog.String("moved_to", dst), slog.String("reason", reason))
}
