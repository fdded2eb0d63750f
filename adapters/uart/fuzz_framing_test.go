package uart

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/causeway/causeway/config"
)

// The fuzz targets compare each framer, fed whole and in random chunks,
// with a simple reference that sees the whole input at once, and check that
// no frame exceeds max_frame and that the buffer stays bounded.

// refDelimiter frames data as a delimFramer: leftmost delimiters,
// max_frame on the raw bytes, then decoding. stats are before a Reset,
// discarded is the Discarded count after one.
func refDelimiter(data, delim []byte, maxFrame int, crlf bool, decode func([]byte) ([]byte, bool)) (frames [][]byte, stats FramerStats, discarded uint64) {
	tooLong := func(raw []byte) bool {
		return len(raw) > maxFrame && !(crlf && len(raw) == maxFrame+1 && raw[len(raw)-1] == '\r')
	}
	for {
		i := bytes.Index(data, delim)
		if i < 0 {
			break
		}
		raw := data[:i]
		data = data[i+len(delim):]
		if tooLong(raw) {
			stats.Oversize++
			stats.Discarded += uint64(len(raw))
			continue
		}
		if crlf {
			raw = bytes.TrimSuffix(raw, []byte{'\r'})
		}
		if len(raw) == 0 {
			continue
		}
		if decode != nil {
			out, ok := decode(raw)
			if !ok {
				stats.Invalid++
				stats.Discarded += uint64(len(raw))
				continue
			}
			if len(out) == 0 {
				continue
			}
			raw = out
		}
		stats.Frames++
		frames = append(frames, raw)
	}
	// The tail: a partial frame, perhaps with the start of a delimiter.
	m := min(len(data), len(delim)-1)
	for m > 0 && !bytes.HasSuffix(data, delim[:m]) {
		m--
	}
	if n := len(data) - m; tooLong(data[:n]) {
		stats.Oversize++
		stats.Discarded += uint64(n)
	}
	discarded = stats.Discarded
	if !tooLong(data[:len(data)-m]) {
		discarded += uint64(len(data))
	} else {
		discarded += uint64(m)
	}
	return frames, stats, discarded
}

// refSLIPDecode unescapes a SLIP frame, differently from slipDecode.
func refSLIPDecode(raw []byte) ([]byte, bool) {
	parts := bytes.Split(raw, []byte{slipEsc})
	out := bytes.Clone(parts[0])
	for _, p := range parts[1:] {
		if len(p) == 0 {
			return nil, false
		}
		switch p[0] {
		case slipEscEnd:
			out = append(out, slipEnd)
		case slipEscEsc:
			out = append(out, slipEsc)
		default:
			return nil, false
		}
		out = append(out, p[1:]...)
	}
	return out, true
}

// refCOBSDecode decodes a COBS frame block by block.
func refCOBSDecode(raw []byte) ([]byte, bool) {
	var out []byte
	for len(raw) > 0 {
		code := int(raw[0])
		if code > len(raw) {
			return nil, false
		}
		out = append(out, raw[1:code]...)
		raw = raw[code:]
		if code < 0xFF && len(raw) > 0 {
			out = append(out, 0)
		}
	}
	return out, true
}

// checkFramerRef feeds data to a new framer of c, whole and in chunks drawn from
// seed, and compares with the reference.
func checkFramerRef(t *testing.T, c config.UART, data []byte, seed uint64, want [][]byte, stats FramerStats, discarded uint64) {
	t.Helper()
	maxFrame := int(c.MaxFrame)
	for name, next := range map[string]feedChunker{"whole": feedWhole, "chunks": feedRandom(seed, 1+int(seed%97))} {
		f := mustFramer(t, c)
		got := feedFramer(t, f, data, next)
		for _, fr := range got {
			if len(fr) > maxFrame {
				t.Fatalf("%s: frame of %d bytes > max_frame %d", name, len(fr), maxFrame)
			}
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("%s: frames\n%q\nwant\n%q", name, got, want)
		}
		if st := f.Stats(); st != stats {
			t.Fatalf("%s: stats %+v, want %+v", name, st, stats)
		}
		limit := maxFrame
		if d, ok := f.(*delimFramer); ok {
			limit += len(d.delim)
		}
		if n := framerBufferCap(f); n > limit {
			t.Fatalf("%s: buffer capacity %d > %d", name, n, limit)
		}
		f.Reset()
		if st := f.Stats(); st.Discarded != discarded {
			t.Fatalf("%s: %d bytes discarded after Reset, want %d", name, st.Discarded, discarded)
		}
	}
}

func FuzzFramerLine(f *testing.F) {
	f.Add([]byte("a\nbc\r\n\n\r\nd\r"), uint16(16), uint64(1))
	f.Add([]byte("abcd\r\nabcd\r\r\nabcde\nok\n"), uint16(4), uint64(2))
	f.Add([]byte("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"), uint16(100), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint16, seed uint64) {
		c := framingConfig("line", 1+int(maxFrame%512))
		frames, stats, discarded := refDelimiter(data, []byte{'\n'}, int(c.MaxFrame), true, nil)
		checkFramerRef(t, c, data, seed, frames, stats, discarded)
		// After anything and a Reset, a line comes out.
		fr := mustFramer(t, c)
		fr.Feed(data, func([]byte) {})
		fr.Reset()
		if got := frameStrings(feedFramer(t, fr, []byte("\nok\r\n"), feedWhole)); c.MaxFrame >= 2 && !slices.Equal(got, []string{"ok"}) {
			t.Fatalf("after Reset: %q", got)
		}
	})
}

func FuzzFramerDelimiter(f *testing.F) {
	f.Add([]byte("xENDyEENDzENENDENDEN"), []byte("END"), uint16(16), uint64(1))
	f.Add([]byte("xxxaacaabzaab"), []byte("aab"), uint16(3), uint64(2))
	f.Add([]byte("a\x03\x03b\x03c"), []byte("\x03"), uint16(1), uint64(3))
	f.Fuzz(func(t *testing.T, data, delim []byte, maxFrame uint16, seed uint64) {
		if len(delim) == 0 || len(delim) > 16 {
			return
		}
		c := delimConfig(string(delim), 1+int(maxFrame%512))
		frames, stats, discarded := refDelimiter(data, delim, int(c.MaxFrame), false, nil)
		checkFramerRef(t, c, data, seed, frames, stats, discarded)
	})
}

func FuzzFramerLength(f *testing.F) {
	f.Add([]byte("\x03abc\x00\x01x\x05ab"), uint8(0), false, false, uint16(16), uint64(1))
	f.Add([]byte("AB\x00\x02xyCD\x00\x00"), uint8(2), true, false, uint16(16), uint64(2))
	f.Add([]byte("A\x01\x00B\x00\x01zC\x00\x00"), uint8(1), true, true, uint16(7), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, off uint8, size2, little bool, maxFrame uint16, seed uint64) {
		size, order := 1, "big"
		if size2 {
			size = 2
		}
		if little {
			order = "little"
		}
		c := lengthConfig(int(off%16), size, order, int(off%16)+size+int(maxFrame%600))
		// The reference: try every start in turn.
		var want [][]byte
		var stats FramerStats
		hdr := c.LengthOffset + size
		rest := data
		for len(rest) >= hdr {
			n := hdr + int(rest[c.LengthOffset])
			if size == 2 && little {
				n = hdr + (int(rest[c.LengthOffset]) | int(rest[c.LengthOffset+1])<<8)
			} else if size == 2 {
				n = hdr + (int(rest[c.LengthOffset])<<8 | int(rest[c.LengthOffset+1]))
			}
			if n > int(c.MaxFrame) {
				stats.Invalid++
				stats.Discarded++
				rest = rest[1:]
				continue
			}
			if n > len(rest) {
				break
			}
			stats.Frames++
			want = append(want, rest[:n])
			rest = rest[n:]
		}
		checkFramerRef(t, c, data, seed, want, stats, stats.Discarded+uint64(len(rest)))
	})
}

// fuzzEncoded checks a framing on its encoding of frames cut from payload
// (cuts gives their lengths), after garbage and a delimiter: whatever the
// garbage, the frames come out intact (unless longer than max_frame when
// encoded). It also runs the reference on garbage+payload as a raw stream.
func fuzzEncoded(t *testing.T, c config.UART, delim byte, encode func([]byte) []byte, decode func([]byte) ([]byte, bool),
	garbage, payload, cuts []byte, seed uint64) {
	raw := append(bytes.Clone(garbage), payload...)
	frames, stats, discarded := refDelimiter(raw, []byte{delim}, int(c.MaxFrame), false, decode)
	checkFramerRef(t, c, raw, seed, frames, stats, discarded)

	stream := append(bytes.Clone(garbage), delim)
	var want [][]byte
	for i := 0; len(payload) > 0; i++ {
		n := len(payload)
		if i < len(cuts) {
			n = int(cuts[i]) % (len(payload) + 1)
		}
		fr := payload[:n]
		payload = payload[n:]
		w := encode(fr)
		if i < len(cuts) && cuts[i]&0x80 != 0 {
			stream = append(stream, delim) // a leading delimiter too
		}
		stream = append(stream, w...)
		if len(fr) > 0 && len(w)-1 <= int(c.MaxFrame) {
			want = append(want, fr)
		}
	}
	for name, next := range map[string]feedChunker{"whole": feedWhole, "chunks": feedRandom(seed, 1+int(seed%97))} {
		got := feedFramer(t, mustFramer(t, c), stream, next)
		if len(got) < len(want) || !slices.EqualFunc(got[len(got)-len(want):], want, bytes.Equal) {
			t.Fatalf("%s: frames\n%q\ndo not end with\n%q", name, got, want)
		}
	}
}

func FuzzFramerSLIP(f *testing.F) {
	f.Add([]byte("x\xdbq"), []byte("a\xc0b\xdbc"), []byte{2, 0x83}, uint16(16), uint64(1))
	f.Add([]byte("\xdb"), []byte("hello, world"), []byte{5}, uint16(4), uint64(2))
	f.Add([]byte(""), []byte("\xc0\xc0\xdb\xdb"), []byte{1, 1, 1}, uint16(1), uint64(3))
	f.Fuzz(func(t *testing.T, garbage, payload, cuts []byte, maxFrame uint16, seed uint64) {
		fuzzEncoded(t, framingConfig("slip", 1+int(maxFrame%512)), slipEnd, slipEncode, refSLIPDecode, garbage, payload, cuts, seed)
	})
}

func FuzzFramerCOBS(f *testing.F) {
	f.Add([]byte("\x05\x11"), []byte("\x11\x22\x00\x33"), []byte{4}, uint16(16), uint64(1))
	f.Add([]byte("\x03"), []byte("\x00\x00\x00abc\x00"), []byte{1, 0x82, 0}, uint16(4), uint64(2))
	f.Add([]byte(""), bytes.Repeat([]byte{1, 2, 3, 0}, 100), []byte{255, 254, 1}, uint16(300), uint64(3))
	f.Fuzz(func(t *testing.T, garbage, payload, cuts []byte, maxFrame uint16, seed uint64) {
		encode := func(p []byte) []byte { return append(cobsEncode(p), 0) }
		fuzzEncoded(t, framingConfig("cobs", 1+int(maxFrame%512)), 0, encode, refCOBSDecode, garbage, payload, cuts, seed)
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add(uint8(1), []byte("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
		[]byte("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"))
	f.Add(uint8(2), []byte("\x01\x03\x00\x00\x00\x01"), []byte("\x01\x03\x00\x00\x00\x01\x84\x0A"))
	f.Add(uint8(3), []byte("123456789"), []byte("123456789\xF4"))
	f.Add(uint8(4), []byte(""), []byte("\x00"))
	f.Add(uint8(5), []byte("x"), []byte(""))
	f.Fuzz(func(t *testing.T, k uint8, payload, frame []byte) {
		kinds := checksumKinds()
		kind := kinds[int(k)%len(kinds)]
		check, err := NewChecksum(kind)
		if err != nil {
			t.Fatal(err)
		}
		// Round trip.
		orig := bytes.Clone(payload)
		built, err := AppendChecksum(kind, payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(payload, orig) {
			t.Fatalf("AppendChecksum modified its payload")
		}
		got, err := check(built)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%s: %q → %q → %q, %v", kind, payload, built, got, err)
		}
		// Any frame: no panic; an error wraps a sentinel; a good frame is
		// what AppendChecksum builds from its payload.
		orig = bytes.Clone(frame)
		got, err = check(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatalf("%s: check modified its frame", kind)
		}
		if err != nil {
			if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrNoChecksum) {
				t.Fatalf("%s: error %v wraps neither sentinel", kind, err)
			}
			return
		}
		rebuilt, _ := AppendChecksum(kind, got)
		if kind == "nmea" {
			frame = bytes.TrimRight(frame, " \t\r\n")
			if !bytes.EqualFold(rebuilt[len(rebuilt)-3:], frame[len(frame)-3:]) {
				t.Fatalf("nmea: %q accepted, its checksum is %q", frame, rebuilt)
			}
			rebuilt, frame = rebuilt[1:len(rebuilt)-3], frame[1:len(frame)-3]
		}
		if !bytes.Equal(rebuilt, frame) {
			t.Fatalf("%s: %q accepted as %q, which gives %q", kind, orig, got, rebuilt)
		}
	})
}
