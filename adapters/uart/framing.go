package uart

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/causeway/causeway/config"
)

// Framer splits the byte stream of a serial port into frames. Not safe for
// concurrent use.
//
// Every framer keeps at most one partial frame, in a buffer whose capacity
// never exceeds max_frame plus the length of the delimiter, whatever the input:
// longer frames are discarded while they arrive, never buffered.
//
// A framer has no notion of time: the bytes that arrive before the first
// delimiter after NewFramer or Reset form a frame like any other, so a frame
// cut in two by opening the port mid-stream reaches the caller, who drops it
// by its checksum or parser (a device that sends a single frame right after
// the port opened is not lost). A caller that sees the line go idle in the
// middle of a frame (a read timeout) may call Reset to drop that partial
// frame; for length framing it is the only way to drop a frame cut short
// before the next frame's bytes complete it.
type Framer interface {
	// Feed consumes p (bytes just read from the port) and calls emit for
	// every complete frame, in order. The frame slice is only valid during
	// the call (it may alias an internal buffer, or p); its capacity is
	// its length, so appending to it never overwrites the framer's data.
	// Feed never retains or modifies p.
	Feed(p []byte, emit func(frame []byte))
	// Reset drops any partial frame (after the port was reopened); counted
	// as discarded if not empty.
	Reset()
	// Stats returns the counters since NewFramer.
	Stats() FramerStats
}

// FramerStats counts what a Framer did with its input.
type FramerStats struct {
	Frames    uint64 // frames emitted
	Oversize  uint64 // frames longer than max_frame, discarded
	Discarded uint64 // bytes discarded (oversize and invalid frames, bytes skipped by length framing to resynchronize, partial frames dropped by Reset)
	Invalid   uint64 // frames dropped as malformed by the framing itself (bad SLIP escape, bad COBS code, length out of range)
}

// maxFrameLimit bounds max_frame, so that buffer sizes fit an int on 32-bit
// boards too; no serial device needs frames of a GiB.
const maxFrameLimit = 1 << 30

// framerMinBuffer is the initial capacity of a framer's buffer (or max_frame
// plus the delimiter, when smaller). It grows up to that limit as long frames
// arrive, and is then reused: no allocation per frame in steady state.
const framerMinBuffer = 256

// SLIP special bytes (RFC 1055).
const (
	slipEnd    = 0xC0 // frame end
	slipEsc    = 0xDB // escape
	slipEscEnd = 0xDC // ESC ESC_END stands for END in the data
	slipEscEsc = 0xDD // ESC ESC_ESC stands for ESC in the data
)

// NewFramer returns the framer of a [[uart]] block, which config has
// validated: c.Framing selects it, c.MaxFrame (bytes) bounds a frame.
//
//   - "line": frames end at "\n"; one "\r" before it is stripped, so "\n"
//     and "\r\n" lines both work whatever c.Delimiter says. The terminator
//     is not part of the frame and does not count against max_frame. Empty
//     lines are skipped.
//   - "delimiter": frames end at c.Delimiter, any non-empty byte string
//     ("\x03", "END"), which is not part of the frame. Empty frames are
//     skipped.
//   - "length": see the length framing below.
//   - "slip" (RFC 1055): frames end at END (0xC0) and are unescaped
//     (ESC ESC_END → END, ESC ESC_ESC → ESC). Empty frames are skipped, so
//     senders may put END before frames too. Any other escape, or an ESC
//     that ends the frame, drops the frame (Invalid, its bytes Discarded).
//   - "cobs" (Consistent Overhead Byte Stuffing): frames end at 0x00 and are
//     COBS-decoded. Empty frames (on the wire, or decoded) are skipped. A code
//     byte that points past the end of the frame drops the frame (Invalid,
//     its bytes Discarded).
//
// For the framings with a delimiter, max_frame bounds the raw bytes between
// two delimiters (before SLIP or COBS decoding). A longer frame is counted
// once in Oversize and discarded as it arrives, its bytes counted in
// Discarded; the framer skips everything up to the next delimiter and
// resynchronizes there.
//
// Length framing: a frame starts at the first byte of the stream (and right
// after the previous frame). Its length field is c.LengthSize (1 or 2) bytes
// at c.LengthOffset from the frame start, in c.LengthOrder (big or little),
// and gives the number of bytes that follow the length field. The emitted
// frame is the whole frame, including the bytes before the length field and
// the field itself, so binary field offsets count from the frame start. A
// length that makes the frame longer than max_frame cannot start a frame:
// the framer counts it in Invalid, discards ONE byte (counted in Discarded)
// and tries again from the next byte, and so on until a plausible header
// comes. Having no delimiter, this framing cannot detect a frame that was cut
// short (the next frame's bytes complete it), nor a corrupted length that
// stays within max_frame: use a checksum, whose failures the caller counts,
// and the stream realigns when a too-long length shows up. Oversize stays 0.
func NewFramer(c config.UART) (Framer, error) {
	if c.MaxFrame <= 0 {
		return nil, fmt.Errorf("max_frame must be greater than 0, not %d", int64(c.MaxFrame))
	}
	if c.MaxFrame > maxFrameLimit {
		return nil, fmt.Errorf("max_frame %s is above the limit of %s", c.MaxFrame, config.Size(maxFrameLimit))
	}
	maxFrame := int(c.MaxFrame)
	switch c.Framing {
	case "line":
		return newDelimFramer([]byte{'\n'}, maxFrame, true, nil), nil
	case "delimiter":
		if c.Delimiter == "" {
			return nil, errors.New(`framing = "delimiter" needs a non-empty delimiter`)
		}
		return newDelimFramer([]byte(c.Delimiter), maxFrame, false, nil), nil
	case "slip":
		return newDelimFramer([]byte{slipEnd}, maxFrame, false, slipDecode), nil
	case "cobs":
		return newDelimFramer([]byte{0x00}, maxFrame, false, cobsDecode), nil
	case "length":
		return newLengthFramer(c, maxFrame)
	}
	return nil, fmt.Errorf("unknown framing %q (line | delimiter | length | slip | cobs)", c.Framing)
}

// growBounded returns buf with room for n more bytes, growing its capacity
// geometrically but never above limit (callers never need more).
func growBounded(buf []byte, n, limit int) []byte {
	need := len(buf) + n
	if need <= cap(buf) {
		return buf
	}
	c := min(max(2*cap(buf), need, framerMinBuffer), limit)
	nb := make([]byte, len(buf), max(c, need))
	copy(nb, buf)
	return nb
}

// delimFramer ends frames at a delimiter: line, delimiter, slip and cobs.
//
// It matches the delimiter with the Knuth–Morris–Pratt automaton, so a
// multi-byte delimiter is found across Feed boundaries and after a partial
// match ("ENEND" ends at "END"). Frames that lie entirely within one Feed are
// emitted straight from p, without copying; only a frame that spans Feed calls
// is gathered in buf.
type delimFramer struct {
	delim  []byte
	fail   []int // fail[k]: longest proper border of delim[:k+1]
	max    int   // max_frame
	limit  int   // buffer capacity bound: max + len(delim)
	crlf   bool  // line framing: strip one "\r" before the "\n"
	decode func(dst, raw []byte) ([]byte, bool)

	// buf holds the raw bytes of the current frame received by earlier
	// Feed calls, ending with the m bytes of a partial delimiter match.
	// It is empty while skipping.
	buf []byte
	// m is how many bytes of delim end the input so far.
	m int
	// skip is set while discarding an oversize frame up to the next
	// delimiter.
	skip  bool
	stats FramerStats
}

func newDelimFramer(delim []byte, maxFrame int, crlf bool, decode func(dst, raw []byte) ([]byte, bool)) *delimFramer {
	d := bytes.Clone(delim)
	fail := make([]int, len(d))
	for i, k := 1, 0; i < len(d); i++ {
		for k > 0 && d[i] != d[k] {
			k = fail[k-1]
		}
		if d[i] == d[k] {
			k++
		}
		fail[i] = k
	}
	return &delimFramer{delim: d, fail: fail, max: maxFrame, limit: maxFrame + len(d), crlf: crlf, decode: decode}
}

// step advances the delimiter match state m by one byte.
func (f *delimFramer) step(m int, b byte) int {
	for m > 0 && f.delim[m] != b {
		m = f.fail[m-1]
	}
	if f.delim[m] == b {
		m++
	}
	return m
}

// Feed implements Framer.
func (f *delimFramer) Feed(p []byte, emit func(frame []byte)) {
	d := f.delim
	start := 0 // unless skipping, p[start:i] are raw bytes of the current frame, after f.buf
	for i := 0; i < len(p); {
		if f.m == 0 {
			// Nothing matched: jump to the next byte that may start a delimiter.
			j := bytes.IndexByte(p[i:], d[0])
			if j < 0 {
				j = len(p) - i
			}
			if j > 0 {
				i += j
				if f.skip {
					f.stats.Discarded += uint64(j)
				} else {
					f.check(p, start, i)
				}
				continue
			}
		}
		b := p[i]
		i++
		m := f.step(f.m, b)
		if m == len(d) {
			f.m = 0
			if f.skip {
				f.skip = false
			} else {
				f.frame(p[start:i], emit)
			}
			start = i
			continue
		}
		if f.skip {
			// Bytes that fell out of the partial match are garbage.
			f.stats.Discarded += uint64(f.m + 1 - m)
			f.m = m
			continue
		}
		f.m = m
		f.check(p, start, i)
	}
	if !f.skip && start < len(p) {
		f.buf = append(growBounded(f.buf, len(p)-start, f.limit), p[start:]...)
	}
}

// check switches to skipping when the current frame, f.buf followed by
// p[start:i], has become longer than max_frame. A partial delimiter match at
// its end does not count; nor does the "\r" of a line's "\r\n".
func (f *delimFramer) check(p []byte, start, i int) {
	n := len(f.buf) + i - start - f.m
	if n <= f.max || f.crlf && n == f.max+1 && p[i-1] == '\r' {
		return
	}
	f.stats.Oversize++
	f.stats.Discarded += uint64(n)
	f.buf = f.buf[:0]
	f.skip = true
}

// frame completes the current frame: f.buf followed by tail, which ends with
// the delimiter.
func (f *delimFramer) frame(tail []byte, emit func(frame []byte)) {
	var raw []byte
	switch d := len(f.delim); {
	case len(f.buf) == 0:
		raw = tail[:len(tail)-d]
	case len(tail) >= d:
		f.buf = append(growBounded(f.buf, len(tail)-d, f.limit), tail[:len(tail)-d]...)
		raw = f.buf
	default: // the delimiter began in f.buf
		raw = f.buf[:len(f.buf)-(d-len(tail))]
	}
	f.buf = f.buf[:0]
	if f.crlf && len(raw) > 0 && raw[len(raw)-1] == '\r' {
		raw = raw[:len(raw)-1]
	}
	if len(raw) == 0 {
		return
	}
	if f.decode != nil {
		// Decoding never lengthens a frame: decode in place when raw is
		// in f.buf, else into f.buf.
		f.buf = growBounded(f.buf, len(raw), f.limit)
		out, ok := f.decode(f.buf[:0], raw)
		if !ok {
			f.stats.Invalid++
			f.stats.Discarded += uint64(len(raw))
			return
		}
		if len(out) == 0 {
			return
		}
		raw = out
	}
	f.stats.Frames++
	emit(raw[:len(raw):len(raw)])
}

// Reset implements Framer.
func (f *delimFramer) Reset() {
	n := len(f.buf)
	if f.skip {
		n += f.m // the partial match of a skipped frame, not counted yet
	}
	f.stats.Discarded += uint64(n)
	f.buf = f.buf[:0]
	f.m = 0
	f.skip = false
}

// Stats implements Framer.
func (f *delimFramer) Stats() FramerStats { return f.stats }

// slipDecode appends the unescaped raw SLIP frame to dst; dst may be raw[:0].
// It reports false for an ESC followed by anything but ESC_END or ESC_ESC, or
// by nothing.
func slipDecode(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == slipEsc {
			i++
			if i == len(raw) {
				return dst, false
			}
			switch raw[i] {
			case slipEscEnd:
				c = slipEnd
			case slipEscEsc:
				c = slipEsc
			default:
				return dst, false
			}
		}
		dst = append(dst, c)
	}
	return dst, true
}

// cobsDecode appends the COBS-decoded raw frame (without its 0x00 delimiter)
// to dst; dst may be raw[:0], as the output never overtakes the input. It
// reports false when a code byte points past the end of the frame (raw has no
// zero bytes: they are delimiters).
func cobsDecode(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		code := int(raw[i])
		i++
		n := code - 1
		if n > len(raw)-i {
			return dst, false
		}
		dst = append(dst, raw[i:i+n]...)
		i += n
		if code != 0xFF && i < len(raw) {
			dst = append(dst, 0)
		}
	}
	return dst, true
}

// lengthFramer reads frames that carry their length; see NewFramer.
type lengthFramer struct {
	off    int // length_offset
	size   int // length_size: 1 or 2
	little bool
	hdr    int // off + size: bytes needed to know the frame length
	max    int // max_frame
	buf    []byte
	stats  FramerStats
}

func newLengthFramer(c config.UART, maxFrame int) (*lengthFramer, error) {
	if c.LengthSize != 1 && c.LengthSize != 2 {
		return nil, fmt.Errorf("length_size must be 1 or 2, not %d", c.LengthSize)
	}
	if c.LengthOrder != "big" && c.LengthOrder != "little" {
		return nil, fmt.Errorf(`length_order must be "big" or "little", not %q`, c.LengthOrder)
	}
	if c.LengthOffset < 0 {
		return nil, fmt.Errorf("length_offset must not be negative (%d)", c.LengthOffset)
	}
	if c.LengthOffset > maxFrame-c.LengthSize {
		return nil, fmt.Errorf("the length field (length_offset %d, length_size %d) ends beyond max_frame (%s)",
			c.LengthOffset, c.LengthSize, c.MaxFrame)
	}
	return &lengthFramer{
		off:    c.LengthOffset,
		size:   c.LengthSize,
		little: c.LengthOrder == "little",
		hdr:    c.LengthOffset + c.LengthSize,
		max:    maxFrame,
	}, nil
}

// Feed implements Framer. Frames that lie entirely within p are emitted
// without copying; the bytes after the last one (a header or frame cut by the
// end of p) are kept in buf.
func (f *lengthFramer) Feed(p []byte, emit func(frame []byte)) {
	if len(f.buf) > 0 {
		p = f.feedBuffered(p, emit)
	}
	for len(p) >= f.hdr {
		n := f.total(p[f.off:f.hdr])
		if n > f.max {
			f.bad()
			p = p[1:]
			continue
		}
		if n > len(p) {
			break
		}
		f.stats.Frames++
		emit(p[:n:n])
		p = p[n:]
	}
	if len(p) > 0 {
		f.buf = append(growBounded(f.buf, len(p), f.max), p...)
	}
}

// feedBuffered looks for frames that start in buf, in the stream buf+p. It
// returns the rest of p once buf is consumed, or nil when the bytes left (a
// partial header or frame) went to buf. Each start in buf costs O(1): only
// the bytes of a complete frame, or of the bytes left, are copied.
func (f *lengthFramer) feedBuffered(p []byte, emit func(frame []byte)) []byte {
	b := f.buf
	avail := len(b) + len(p)
	at := func(i int) byte {
		if i < len(b) {
			return b[i]
		}
		return p[i-len(b)]
	}
	var l [2]byte
	for s := 0; s < len(b); s++ {
		if s+f.hdr > avail {
			return f.keep(s, p)
		}
		l[0] = at(s + f.off)
		if f.size == 2 {
			l[1] = at(s + f.off + 1)
		}
		n := f.total(l[:f.size])
		if n > f.max {
			f.bad()
			continue
		}
		if s+n > avail {
			return f.keep(s, p)
		}
		// A complete frame: gather it in buf.
		k := copy(b, b[s:])
		rest := n - k
		b = append(growBounded(b[:k], rest, f.max), p[:rest]...)
		f.stats.Frames++
		emit(b[:n:n])
		f.buf = b[:0]
		return p[rest:]
	}
	f.buf = b[:0] // every start in buf had a length out of range
	return p
}

// keep moves buf[s:] to the front of buf and appends p: the start of a frame
// (fewer than max_frame bytes).
func (f *lengthFramer) keep(s int, p []byte) []byte {
	b := f.buf
	if s > 0 {
		b = b[:copy(b, b[s:])]
	}
	f.buf = append(growBounded(b, len(p), f.max), p...)
	return nil
}

// total returns the length of a frame from its length field l.
func (f *lengthFramer) total(l []byte) int {
	switch {
	case f.size == 1:
		return f.hdr + int(l[0])
	case f.little:
		return f.hdr + int(binary.LittleEndian.Uint16(l))
	default:
		return f.hdr + int(binary.BigEndian.Uint16(l))
	}
}

// bad counts a header whose length is out of range; the caller drops its
// first byte.
func (f *lengthFramer) bad() {
	f.stats.Invalid++
	f.stats.Discarded++
}

// Reset implements Framer.
func (f *lengthFramer) Reset() {
	f.stats.Discarded += uint64(len(f.buf))
	f.buf = f.buf[:0]
}

// Stats implements Framer.
func (f *lengthFramer) Stats() FramerStats { return f.stats }
