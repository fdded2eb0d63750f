package queue

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/causeway/causeway/mqttcore"
)

// readLocked reads the next record with a sequence number >= q.readSeq
// from the segment files, up to what the writer has written. ok is false
// when the reader has caught up with the writer.
func (q *Queue) readLocked() (mqttcore.Record, bool, error) {
	for {
		if q.rseg == nil {
			s := q.segmentForLocked(q.readSeq)
			if s == nil {
				q.caughtUpLocked()
				return mqttcore.Record{}, false, nil
			}
			if err := q.openReaderLocked(s); err != nil {
				return mqttcore.Record{}, false, err
			}
		}
		s := q.rseg
		sealed := s != q.activeLocked()
		limit := s.size
		if q.roff >= limit {
			if !sealed {
				q.caughtUpLocked()
				return mqttcore.Record{}, false, nil
			}
			if q.readSeq <= s.last {
				// The segment ends before the records its neighbours say it
				// holds: a damaged end.
				q.corruptLocked(s, q.roff, s.last-q.readSeq+1)
				q.readSeq = s.last + 1
			}
			q.closeReaderLocked()
			continue
		}
		h, b, err := q.r.recordAt(q.roff, limit)
		if err == nil && (h.seq < s.first || h.seq >= q.nextSeq) {
			err = errCorrupt
		}
		if errors.Is(err, errShort) && !sealed {
			// Cannot happen: the writer's size covers whole records.
			q.caughtUpLocked()
			return mqttcore.Record{}, false, nil
		}
		if isDamage(err) {
			off, h2, found, rerr := q.r.resync(q.roff+1, limit, max(q.readSeq, s.first), q.nextSeq)
			if rerr != nil {
				return mqttcore.Record{}, false, rerr
			}
			if !found {
				lost := uint64(0)
				if q.readSeq <= s.last {
					lost = s.last - q.readSeq + 1
				}
				if !sealed {
					lost = 0 // unknown yet; counted when a valid record appears
				}
				q.corruptLocked(s, q.roff, lost)
				q.readSeq = max(q.readSeq, s.last+1)
				q.roff = limit
				continue
			}
			q.corruptLocked(s, q.roff, h2.seq-min(h2.seq, q.readSeq))
			q.readSeq = max(q.readSeq, h2.seq)
			q.roff = off
			continue
		}
		if err != nil {
			return mqttcore.Record{}, false, err
		}
		q.roff += int64(h.size)
		if h.seq < q.readSeq {
			continue // delivered, or handed out already
		}
		rec := mqttcore.Record{Seq: h.seq, Time: time.Unix(0, h.time), Msg: decodeMessage(b, h)}
		q.readSeq = h.seq + 1
		q.lastRead = rec.Time
		return rec, true, nil
	}
}

// caughtUpLocked corrects the live count once every record written has
// been read, so that holes left by failed writes or by corruption are no
// longer counted.
func (q *Queue) caughtUpLocked() {
	written := q.readSeq - 1
	if a := q.activeLocked(); a != nil && a.last > written {
		return
	}
	n := int(q.nextSeq - 1 - written) // appended, not yet written
	for i := range q.out {
		if !q.out[i].acked {
			n++
		}
	}
	q.live = n
}

// segReader reads records of one segment file through a buffer.
type segReader struct {
	f      *os.File
	path   string
	buf    []byte
	bufOff int64
	bufLen int
}

func (r *segReader) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("offline queue: %w", err)
	}
	r.f, r.path, r.bufOff, r.bufLen = f, path, 0, 0
	return nil
}

func (r *segReader) close() {
	if r.f != nil {
		_ = r.f.Close()
	}
	r.f, r.bufOff, r.bufLen = nil, 0, 0
}

// view returns bytes [off, off+n) of the file; errShort when they extend
// past limit.
func (r *segReader) view(off int64, n int, limit int64) ([]byte, error) {
	if off+int64(n) > limit {
		return nil, errShort
	}
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(r.bufLen) {
		s := off - r.bufOff
		return r.buf[s : s+int64(n)], nil
	}
	size := min(int64(max(n, readChunk)), limit-off)
	if int64(cap(r.buf)) < size || (cap(r.buf) > 4*readChunk && size <= readChunk) {
		r.buf = make([]byte, max(size, readChunk))
	}
	buf := r.buf[:size]
	m, err := r.f.ReadAt(buf, off)
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.bufLen = 0
		return nil, fmt.Errorf("offline queue: read %s at %d: %w", r.path, off, err)
	}
	r.bufOff, r.bufLen = off, m
	return buf[:n], nil
}

// recordAt returns the record at off (b holds exactly the record).
func (r *segReader) recordAt(off, limit int64) (recHead, []byte, error) {
	b, err := r.view(off, recHeaderSize, limit)
	if err != nil {
		return recHead{}, nil, err
	}
	h, need, err := parseHead(b)
	if errors.Is(err, errShort) && need > recHeaderSize {
		if b, err = r.view(off, need, limit); err != nil {
			return recHead{}, nil, err
		}
		h, _, err = parseHead(b)
	}
	if err != nil {
		return h, nil, err
	}
	return h, b[:h.size], nil
}

// resync looks for the next valid record from off on whose sequence number
// is in [lo, hi).
func (r *segReader) resync(off, limit int64, lo, hi uint64) (int64, recHead, bool, error) {
	for ; off+recHeaderSize <= limit; off++ {
		h, _, err := r.recordAt(off, limit)
		if err == nil && h.seq >= lo && h.seq < hi {
			return off, h, true, nil
		}
		if err != nil && !errors.Is(err, errShort) && !errors.Is(err, errCorrupt) {
			return 0, recHead{}, false, err
		}
	}
	return 0, recHead{}, false, nil
}

func isDamage(err error) bool { return errors.Is(err, errShort) || errors.Is(err, errCorrupt) }

func (q *Queue) corruptLocked(s *segment, off int64, lost uint64) {
	if s.bad[off] {
		return // counted at start-up already
	}
	q.st.Corrupt += lost
	q.live -= int(lost)
	q.log.Warn("offline queue: damaged records skipped",
		slog.String("file", s.path), slog.Int64("offset", off), slog.Uint64("records_lost", lost))
}

// segmentForLocked is the first segment that may hold seq or a later record.
func (q *Queue) segmentForLocked(seq uint64) *segment {
	for _, s := range q.segs {
		if s.last >= seq || s == q.activeLocked() {
			if s.size <= segHeaderSize && s != q.activeLocked() {
				continue
			}
			return s
		}
	}
	return nil
}

func (q *Queue) openReaderLocked(s *segment) error {
	if err := q.r.open(s.path); err != nil {
		return err
	}
	q.rseg, q.roff = s, segHeaderSize
	if q.curSeg == s.first && q.curOff > segHeaderSize && q.curOff <= s.size {
		// The saved position of the record after the committed one.
		if q.curOff == s.size {
			q.roff = q.curOff
		} else if h, _, err := q.r.recordAt(q.curOff, s.size); err == nil && h.seq > q.committed && h.seq < q.nextSeq {
			q.roff = q.curOff
		}
	}
	return nil
}

func (q *Queue) closeReaderLocked() {
	q.r.close()
	q.rseg, q.roff = nil, 0
}
