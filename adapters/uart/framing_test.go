package uart

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/causeway/causeway/config"
)

// framingConfig is a [[uart]] block with the framing keys set as config's
// defaults would, for max_frame maxFrame.
func framingConfig(framing string, maxFrame int) config.UART {
	return config.UART{
		Framing:     framing,
		Delimiter:   "\n",
		LengthSize:  1,
		LengthOrder: "big",
		MaxFrame:    config.Size(maxFrame),
		Checksum:    "none",
	}
}

func delimConfig(delim string, maxFrame int) config.UART {
	c := framingConfig("delimiter", maxFrame)
	c.Delimiter = delim
	return c
}

func lengthConfig(off, size int, order string, maxFrame int) config.UART {
	c := framingConfig("length", maxFrame)
	c.LengthOffset, c.LengthSize, c.LengthOrder = off, size, order
	return c
}

func mustFramer(t testing.TB, c config.UART) Framer {
	t.Helper()
	f, err := NewFramer(c)
	if err != nil {
		t.Fatalf("NewFramer(%+v): %v", c, err)
	}
	return f
}

// feedChunker returns the size of the next chunk to feed.
type feedChunker func() int

func feedWhole() int  { return 1 << 62 }
func feedByByte() int { return 1 }

// feedRandom returns chunks of 1 to maxChunk bytes.
func feedRandom(seed uint64, maxChunk int) feedChunker {
	r := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	return func() int { return 1 + r.IntN(maxChunk) }
}

// feedChunkings are the ways every test feeds its input: the output must not
// depend on them.
func feedChunkings() map[string]feedChunker {
	return map[string]feedChunker{
		"whole":     feedWhole,
		"bytes":     feedByByte,
		"random7":   feedRandom(1, 7),
		"random64":  feedRandom(2, 64),
		"random300": feedRandom(3, 300),
	}
}

// feedFramer feeds data to f in chunks and returns copies of the frames. Each chunk
// goes through a scratch buffer that is overwritten after Feed returns, so a
// framer that kept p would emit corrupted frames.
func feedFramer(t testing.TB, f Framer, data []byte, next feedChunker) [][]byte {
	t.Helper()
	var out [][]byte
	emit := func(fr []byte) {
		if len(fr) == 0 {
			t.Errorf("empty frame emitted")
		}
		if cap(fr) != len(fr) {
			t.Errorf("frame %q has capacity %d: appending to it could overwrite the framer's data", fr, cap(fr))
		}
		out = append(out, bytes.Clone(fr))
	}
	var scratch []byte
	for len(data) > 0 {
		n := min(next(), len(data))
		scratch = append(scratch[:0], data[:n]...)
		orig := bytes.Clone(scratch)
		f.Feed(scratch, emit)
		if !bytes.Equal(scratch, orig) {
			t.Fatalf("Feed modified its input")
		}
		for i := range scratch {
			scratch[i] = 0xA5
		}
		data = data[n:]
	}
	return out
}

func frameStrings(frames [][]byte) []string {
	s := make([]string, len(frames))
	for i, f := range frames {
		s[i] = string(f)
	}
	return s
}

type framingCase struct {
	name  string
	c     config.UART
	in    string
	want  []string
	stats FramerStats
}

func TestFramers(t *testing.T) {
	cases := []framingCase{
		// line
		{"line", framingConfig("line", 16), "a\nbc\r\n\n\r\nd\r", []string{"a", "bc"}, FramerStats{Frames: 2}},
		{"line/only one CR stripped", framingConfig("line", 16), "x\r\r\n", []string{"x\r"}, FramerStats{Frames: 1}},
		{"line/CR inside", framingConfig("line", 16), "a\rb\n", []string{"a\rb"}, FramerStats{Frames: 1}},
		{"line/delimiter CRLF accepts LF", func() config.UART { c := framingConfig("line", 16); c.Delimiter = "\r\n"; return c }(),
			"a\nb\r\n", []string{"a", "b"}, FramerStats{Frames: 2}},
		{"line/max", framingConfig("line", 4), "abcd\nabcd\r\nxy\n", []string{"abcd", "abcd", "xy"}, FramerStats{Frames: 3}},
		{"line/oversize", framingConfig("line", 4), "abcd\nabcde\nxy\n", []string{"abcd", "xy"},
			FramerStats{Frames: 2, Oversize: 1, Discarded: 5}},
		{"line/oversize CR", framingConfig("line", 4), "abcd\r\r\nabcd\rx\nxy\n", []string{"xy"},
			FramerStats{Frames: 1, Oversize: 2, Discarded: 12}},
		{"line/oversize twice in a row", framingConfig("line", 2), "abc\ndefgh\n\nij\n", []string{"ij"},
			FramerStats{Frames: 1, Oversize: 2, Discarded: 8}},
		{"line/binary", framingConfig("line", 16), "\x00\xff\x00\n", []string{"\x00\xff\x00"}, FramerStats{Frames: 1}},

		// delimiter
		{"delimiter/ETX", delimConfig("\x03", 16), "a\x03\x03b\x03c", []string{"a", "b"}, FramerStats{Frames: 2}},
		{"delimiter/END", delimConfig("END", 16), "xENDyEENDzENENDENDEN", []string{"x", "yE", "zEN"}, FramerStats{Frames: 3}},
		{"delimiter/self-overlapping", delimConfig("aab", 16), "aaabxaaaabaab", []string{"a", "xaa"}, FramerStats{Frames: 2}},
		{"delimiter/CRLF", delimConfig("\r\n", 16), "a\r\nb\nc\r\r\n", []string{"a", "b\nc\r"}, FramerStats{Frames: 2}},
		{"delimiter/max with partial match", delimConfig("END", 4), "abcdENDabEND", []string{"abcd", "ab"}, FramerStats{Frames: 2}},
		{"delimiter/oversize", delimConfig("END", 4), "abcdeENDabcdENENDokEND", []string{"ok"},
			FramerStats{Frames: 1, Oversize: 2, Discarded: 11}},
		{"delimiter/partial match falls back past max", delimConfig("aab", 3), "xxxaacaabzaab", []string{"z"},
			FramerStats{Frames: 1, Oversize: 1, Discarded: 6}},
		{"delimiter/skipping with partial matches", delimConfig("aab", 2), "xxxaaaaab" + "yaab", []string{"y"},
			FramerStats{Frames: 1, Oversize: 1, Discarded: 6}}, // "xxxaaa"

		// length
		{"length/1 byte", lengthConfig(0, 1, "big", 16), "\x03abc\x00\x01x\x05ab", []string{"\x03abc", "\x00", "\x01x"}, FramerStats{Frames: 3}},
		{"length/offset 2 big", lengthConfig(2, 2, "big", 16), "AB\x00\x02xyCD\x00\x00", []string{"AB\x00\x02xy", "CD\x00\x00"}, FramerStats{Frames: 2}},
		{"length/offset 1 little", lengthConfig(1, 2, "little", 300), "A\x02\x00xyB\x00\x01" + strings.Repeat("z", 256),
			[]string{"A\x02\x00xy", "B\x00\x01" + strings.Repeat("z", 256)}, FramerStats{Frames: 2}},
		{"length/resync", lengthConfig(0, 1, "big", 8), "\xff\x09\x02ab", []string{"\x02ab"}, FramerStats{Frames: 1, Invalid: 2, Discarded: 2}},
		{"length/max", lengthConfig(0, 1, "big", 4), "\x03abc\x04\x00\x00\x00\x00", []string{"\x03abc", "\x00", "\x00", "\x00", "\x00"},
			FramerStats{Frames: 5, Invalid: 1, Discarded: 1}},
		{"length/resync inside header", lengthConfig(1, 2, "big", 10), "A\x01\x00B\x00\x01zC\x00\x00",
			[]string{"B\x00\x01z", "C\x00\x00"}, FramerStats{Frames: 2, Invalid: 3, Discarded: 3}},

		// slip
		{"slip", framingConfig("slip", 16), "\xc0a\xc0\xc0b\xdb\xdc\xdb\xddc\xc0", []string{"a", "b\xc0\xdbc"}, FramerStats{Frames: 2}},
		{"slip/bad escape", framingConfig("slip", 16), "x\xdbq\xc0ok\xc0", []string{"ok"}, FramerStats{Frames: 1, Invalid: 1, Discarded: 3}},
		{"slip/escape at end", framingConfig("slip", 16), "x\xdb\xc0ok\xc0", []string{"ok"}, FramerStats{Frames: 1, Invalid: 1, Discarded: 2}},
		{"slip/max counts raw bytes", framingConfig("slip", 4), "\xdb\xdc\xdb\xdc\xc0\xdb\xdc\xdb\xdcx\xc0ab\xc0", []string{"\xc0\xc0", "ab"},
			FramerStats{Frames: 2, Oversize: 1, Discarded: 5}},

		// cobs
		{"cobs", framingConfig("cobs", 16), "\x03\x11\x22\x02\x33\x00\x01\x01\x00", []string{"\x11\x22\x00\x33", "\x00"}, FramerStats{Frames: 2}},
		{"cobs/empty", framingConfig("cobs", 16), "\x00\x00\x01\x00", nil, FramerStats{}},
		{"cobs/bad code", framingConfig("cobs", 16), "\x05\x11\x00\x02a\x00", []string{"a"}, FramerStats{Frames: 1, Invalid: 1, Discarded: 2}},
		{"cobs/oversize", framingConfig("cobs", 4), "\x05abcd\x00\x04abc\x00", []string{"abc"}, FramerStats{Frames: 1, Oversize: 1, Discarded: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, next := range feedChunkings() {
				f := mustFramer(t, tc.c)
				got := frameStrings(feedFramer(t, f, []byte(tc.in), next))
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: frames %q, want %q", name, got, tc.want)
				}
				if st := f.Stats(); st != tc.stats {
					t.Errorf("%s: stats %+v, want %+v", name, st, tc.stats)
				}
			}
		})
	}
}

// slipEncode returns p as a SLIP frame: escaped, ending with END.
func slipEncode(p []byte) []byte {
	var out []byte
	for _, b := range p {
		switch b {
		case slipEnd:
			out = append(out, slipEsc, slipEscEnd)
		case slipEsc:
			out = append(out, slipEsc, slipEscEsc)
		default:
			out = append(out, b)
		}
	}
	return append(out, slipEnd)
}

// cobsEncode returns p COBS-encoded, without the 0x00 delimiter (the
// encoder of the Wikipedia article).
func cobsEncode(p []byte) []byte {
	out := []byte{0}
	codeAt, code := 0, byte(1)
	for i, b := range p {
		if b != 0 {
			out = append(out, b)
			code++
		}
		if b == 0 || code == 0xFF {
			out[codeAt], code, codeAt = code, 1, len(out)
			if b == 0 || i < len(p)-1 {
				out = append(out, 0)
			}
		}
	}
	if codeAt < len(out) {
		out[codeAt] = code
	}
	return out
}

func byteRange(from, to int) []byte {
	var b []byte
	for i := from; i <= to; i++ {
		b = append(b, byte(i))
	}
	return b
}

func joinBytes(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestCOBSVectors checks the test encoder and the framer against the
// examples of the Wikipedia article on COBS.
func TestCOBSVectors(t *testing.T) {
	vectors := []struct{ dec, enc []byte }{
		{[]byte{0x00}, []byte{0x01, 0x01}},
		{[]byte{0x00, 0x00}, []byte{0x01, 0x01, 0x01}},
		{[]byte{0x00, 0x11, 0x00}, []byte{0x01, 0x02, 0x11, 0x01}},
		{[]byte{0x11, 0x22, 0x00, 0x33}, []byte{0x03, 0x11, 0x22, 0x02, 0x33}},
		{[]byte{0x11, 0x22, 0x33, 0x44}, []byte{0x05, 0x11, 0x22, 0x33, 0x44}},
		{[]byte{0x11, 0x00, 0x00, 0x00}, []byte{0x02, 0x11, 0x01, 0x01, 0x01}},
		{byteRange(0x01, 0xFE), joinBytes([]byte{0xFF}, byteRange(0x01, 0xFE))},
		{byteRange(0x00, 0xFE), joinBytes([]byte{0x01, 0xFF}, byteRange(0x01, 0xFE))},
		{byteRange(0x01, 0xFF), joinBytes([]byte{0xFF}, byteRange(0x01, 0xFE), []byte{0x02, 0xFF})},
		{joinBytes(byteRange(0x02, 0xFF), []byte{0x00}), joinBytes([]byte{0xFF}, byteRange(0x02, 0xFF), []byte{0x01, 0x01})},
		{joinBytes(byteRange(0x03, 0xFF), []byte{0x00, 0x01}), joinBytes([]byte{0xFE}, byteRange(0x03, 0xFF), []byte{0x02, 0x01})},
	}
	for i, v := range vectors {
		if got := cobsEncode(v.dec); !bytes.Equal(got, v.enc) {
			t.Errorf("%d: cobsEncode(% x) = % x, want % x", i, v.dec, got, v.enc)
		}
		f := mustFramer(t, framingConfig("cobs", 512))
		got := feedFramer(t, f, append(bytes.Clone(v.enc), 0), feedByByte)
		if len(got) != 1 || !bytes.Equal(got[0], v.dec) {
			t.Errorf("%d: framer decoded % x to %x, want % x", i, v.enc, got, v.dec)
		}
	}
	// A redundant final block (0x01) decodes the same.
	f := mustFramer(t, framingConfig("cobs", 512))
	got := feedFramer(t, f, joinBytes([]byte{0xFF}, byteRange(0x01, 0xFE), []byte{0x01, 0x00}), feedWhole)
	if len(got) != 1 || !bytes.Equal(got[0], byteRange(0x01, 0xFE)) {
		t.Errorf("trailing empty block: got %x", got)
	}
}

// framingEncoder is how a framing puts a frame on the wire.
type framingEncoder struct {
	c         config.UART
	encode    func(p []byte) []byte // with its delimiter
	delimiter byte                  // garbage must not contain it
}

func framingEncoders(maxFrame int) map[string]framingEncoder {
	return map[string]framingEncoder{
		"line":      {framingConfig("line", maxFrame), func(p []byte) []byte { return append(bytes.Clone(p), '\r', '\n') }, '\n'},
		"delimiter": {delimConfig("\x03", maxFrame), func(p []byte) []byte { return append(bytes.Clone(p), 0x03) }, 0x03},
		"slip":      {framingConfig("slip", maxFrame), slipEncode, slipEnd},
		"cobs":      {framingConfig("cobs", maxFrame), func(p []byte) []byte { return append(cobsEncode(p), 0) }, 0},
	}
}

// TestFramerGarbage puts garbage (short and oversize, without delimiter) and
// truncated frames between valid frames: every valid frame comes out, in
// order, and the oversize garbage is counted.
func TestFramerGarbage(t *testing.T) {
	const maxFrame = 64
	r := rand.New(rand.NewPCG(7, 7))
	for name, enc := range framingEncoders(maxFrame) {
		t.Run(name, func(t *testing.T) {
			noDelim := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					for b[i] = byte(r.Uint32()); b[i] == enc.delimiter || b[i] == '\r' && name == "line"; {
						b[i] = byte(r.Uint32())
					}
				}
				return b
			}
			var stream, oversize []byte
			var valid [][]byte
			var nOversize, nTotal int
			for range 500 {
				// A valid frame: printable, so it is a valid frame for
				// every framing, and shorter than maxFrame once encoded.
				p := make([]byte, 1+r.IntN(maxFrame/2-1))
				for i := range p {
					p[i] = byte('a' + r.IntN(26))
				}
				valid = append(valid, p)
				stream = append(stream, enc.encode(p)...)
				switch r.IntN(4) {
				case 0: // oversize garbage, then its delimiter
					oversize = noDelim(maxFrame + 1 + r.IntN(3*maxFrame))
					stream = append(append(stream, oversize...), enc.encode(nil)...)
					nOversize++
					nTotal += len(oversize)
				case 1: // a truncated frame
					w := enc.encode(p)
					stream = append(stream, w[:r.IntN(len(w)-1)]...)
					stream = append(stream, enc.encode(nil)...)
				case 2: // short garbage, then its delimiter
					stream = append(append(stream, noDelim(r.IntN(maxFrame))...), enc.encode(nil)...)
				}
			}
			for cname, next := range feedChunkings() {
				f := mustFramer(t, enc.c)
				got := feedFramer(t, f, stream, next)
				if !framesInOrder(valid, got) {
					t.Errorf("%s: some valid frames did not come out", cname)
				}
				st := f.Stats()
				if st.Oversize != uint64(nOversize) || st.Discarded < uint64(nTotal) {
					t.Errorf("%s: stats %+v, want %d oversize, >= %d bytes discarded", cname, st, nOversize, nTotal)
				}
				if st.Frames != uint64(len(got)) {
					t.Errorf("%s: %d frames counted, %d emitted", cname, st.Frames, len(got))
				}
			}
		})
	}
}

// framesInOrder reports whether want appear in got, in order.
func framesInOrder(want, got [][]byte) bool {
	for _, g := range got {
		if len(want) > 0 && bytes.Equal(g, want[0]) {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// framerBufferCap returns the capacity of a framer's buffer.
func framerBufferCap(f Framer) int {
	switch f := f.(type) {
	case *delimFramer:
		return cap(f.buf)
	case *lengthFramer:
		return cap(f.buf)
	}
	panic(fmt.Sprintf("unknown framer %T", f))
}

// TestFramerMemoryBound feeds 10 MB without a delimiter: the buffer never
// grows past max_frame plus the delimiter, and the framer resynchronizes on
// the next delimiter.
func TestFramerMemoryBound(t *testing.T) {
	const total = 10 << 20
	const maxFrame = 4096
	garbage := func(fill func(i int) byte) []byte {
		b := make([]byte, total)
		for i := range b {
			b[i] = fill(i)
		}
		return b
	}
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name    string
		c       config.UART
		garbage []byte
		tail    string // a delimiter, then a valid frame
		want    string
	}{
		{"line", framingConfig("line", maxFrame), garbage(func(int) byte { return 'x' }), "\nok\r\n", "ok"},
		{"line/CR", framingConfig("line", maxFrame), garbage(func(int) byte { return '\r' }), "\nok\r\n", "ok"},
		{"delimiter", delimConfig("END", maxFrame), garbage(func(i int) byte { return "EN"[i%2] }), "ENDokEND", "ok"},
		{"slip", framingConfig("slip", maxFrame), garbage(func(int) byte { return byte(r.IntN(0xC0)) }), "\xc0ok\xc0", "ok"},
		{"cobs", framingConfig("cobs", maxFrame), garbage(func(int) byte { return byte(1 + r.IntN(255)) }), "\x00\x03ok\x00", "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFramer(t, tc.c)
			limit := maxFrame + len(f.(*delimFramer).delim)
			var frames []string
			emit := func(fr []byte) { frames = append(frames, string(fr)) }
			chunk := feedRandom(3, 64<<10)
			for p := tc.garbage; len(p) > 0; {
				n := min(chunk(), len(p))
				f.Feed(p[:n], emit)
				p = p[n:]
				if c := framerBufferCap(f); c > limit {
					t.Fatalf("buffer capacity %d > %d", c, limit)
				}
			}
			f.Feed([]byte(tc.tail), emit)
			if want := []string{tc.want}; !slices.Equal(frames, want) {
				t.Errorf("frames %q, want %q", frames, want)
			}
			if st, want := f.Stats(), (FramerStats{Frames: 1, Oversize: 1, Discarded: total}); st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
	t.Run("length", func(t *testing.T) {
		for _, c := range []config.UART{
			lengthConfig(0, 1, "big", 64),                // every 0xFF is out of range
			lengthConfig(3, 2, "little", maxFrame),       // random lengths
			lengthConfig(0, 2, "big", maxFrame),          // random lengths
			lengthConfig(maxFrame-2, 2, "big", maxFrame), // the longest header
		} {
			f := mustFramer(t, c)
			data := garbage(func(int) byte { return byte(r.Uint32()) })
			if c.MaxFrame == 64 {
				data = garbage(func(int) byte { return 0xFF })
			}
			chunk := feedRandom(4, 64<<10)
			for p := data; len(p) > 0; {
				n := min(chunk(), len(p))
				f.Feed(p[:n], func([]byte) {})
				p = p[n:]
				if got := framerBufferCap(f); got > maxFrame {
					t.Fatalf("%+v: buffer capacity %d > %d", c, got, maxFrame)
				}
			}
		}
	})
}

func TestFramerReset(t *testing.T) {
	cases := []struct {
		name         string
		c            config.UART
		before, rest string
		want         []string
		stats        FramerStats
	}{
		{"line", framingConfig("line", 16), "a\nbcd", "ef\n", []string{"a", "ef"}, FramerStats{Frames: 2, Discarded: 3}},
		{"line/empty", framingConfig("line", 16), "a\n", "ef\n", []string{"a", "ef"}, FramerStats{Frames: 2}},
		{"delimiter/partial match", delimConfig("END", 16), "abEN", "DxEND", []string{"Dx"}, FramerStats{Frames: 1, Discarded: 4}},
		{"delimiter/while skipping", delimConfig("END", 4), "abcdefEN", "xEND", []string{"x"},
			FramerStats{Frames: 1, Oversize: 1, Discarded: 8}},
		{"length", lengthConfig(0, 1, "big", 16), "\x05ab", "\x01z", []string{"\x01z"}, FramerStats{Frames: 1, Discarded: 3}},
		{"slip", framingConfig("slip", 16), "ab\xdb", "\xdcc\xc0", []string{"\xdcc"}, FramerStats{Frames: 1, Discarded: 3}},
		{"cobs", framingConfig("cobs", 16), "\x03a", "\x02b\x00", []string{"b"}, FramerStats{Frames: 1, Discarded: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFramer(t, tc.c)
			got := feedFramer(t, f, []byte(tc.before), feedWhole)
			f.Reset()
			f.Reset() // a second Reset has nothing to drop
			got = append(got, feedFramer(t, f, []byte(tc.rest), feedByByte)...)
			if s := frameStrings(got); !slices.Equal(s, tc.want) {
				t.Errorf("frames %q, want %q", s, tc.want)
			}
			if st := f.Stats(); st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

func TestNewFramerErrors(t *testing.T) {
	cases := []struct {
		c    config.UART
		want string
	}{
		{framingConfig("line", 0), "max_frame must be greater than 0"},
		{framingConfig("line", -1), "max_frame must be greater than 0"},
		{framingConfig("line", 2<<30), "above the limit of 1GiB"},
		{framingConfig("", 16), `unknown framing ""`},
		{framingConfig("LINE", 16), `unknown framing "LINE"`},
		{delimConfig("", 16), "non-empty delimiter"},
		{lengthConfig(0, 3, "big", 16), "length_size must be 1 or 2, not 3"},
		{lengthConfig(0, 0, "big", 16), "length_size must be 1 or 2, not 0"},
		{lengthConfig(0, 2, "middle", 16), `length_order must be "big" or "little", not "middle"`},
		{lengthConfig(-1, 1, "big", 16), "length_offset must not be negative"},
		{lengthConfig(15, 2, "big", 16), "ends beyond max_frame (16B)"},
		{lengthConfig(0, 2, "big", 1), "ends beyond max_frame (1B)"},
	}
	for _, tc := range cases {
		f, err := NewFramer(tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewFramer(%+v) = %v, %v; want error containing %q", tc.c, f, err, tc.want)
		}
	}
	// The edges that are fine.
	for _, c := range []config.UART{
		lengthConfig(14, 2, "little", 16),
		lengthConfig(0, 1, "big", 1),
		framingConfig("line", 1<<30),
		delimConfig("ENDENDEND", 1),
	} {
		if _, err := NewFramer(c); err != nil {
			t.Errorf("NewFramer(%+v): %v", c, err)
		}
	}
}

// TestFramerNoAllocs checks that a framer in steady state allocates nothing
// per frame, whether frames arrive whole or split across reads.
func TestFramerNoAllocs(t *testing.T) {
	for name, enc := range framingEncoders(256) {
		var stream []byte
		for i := range 100 {
			stream = append(stream, enc.encode([]byte(fmt.Sprintf("$GPGGA,%06d,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", i)))...)
		}
		f := mustFramer(t, enc.c)
		n := 0
		emit := func([]byte) { n++ }
		for _, chunk := range []int{len(stream), 1, 7, 64} {
			run := func() {
				for p := stream; len(p) > 0; {
					k := min(chunk, len(p))
					f.Feed(p[:k], emit)
					p = p[k:]
				}
			}
			run() // grow the buffer
			if a := testing.AllocsPerRun(20, run); a != 0 {
				t.Errorf("%s, reads of %d bytes: %v allocations per %d frames", name, chunk, a, len(stream))
			}
		}
		if n == 0 {
			t.Errorf("%s: no frames", name)
		}
	}
	f := mustFramer(t, lengthConfig(1, 2, "little", 256))
	var stream []byte
	for i := range 100 {
		stream = append(stream, 0x7E, byte(i%4), 0)
		stream = append(stream, "abc"[:i%4]...)
	}
	emitted := 0
	emit := func([]byte) { emitted++ }
	for _, chunk := range []int{len(stream), 1, 5} {
		run := func() {
			for p := stream; len(p) > 0; {
				k := min(chunk, len(p))
				f.Feed(p[:k], emit)
				p = p[k:]
			}
		}
		run()
		if a := testing.AllocsPerRun(20, run); a != 0 {
			t.Errorf("length, reads of %d bytes: %v allocations", chunk, a)
		}
	}
	if st := f.Stats(); st.Invalid != 0 || st.Frames == 0 {
		t.Errorf("length stats %+v", st)
	}
}

func benchmarkFramer(b *testing.B, c config.UART, encode func([]byte) []byte) {
	var stream []byte
	frames := 0
	for i := 0; len(stream) < 64<<10; i++ {
		stream = append(stream, encode([]byte(fmt.Sprintf("$GPGGA,%06d,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", i)))...)
		frames++
	}
	for _, read := range []int{32, 4096} {
		b.Run(fmt.Sprintf("read=%d", read), func(b *testing.B) {
			f := mustFramer(b, c)
			n := 0
			emit := func(fr []byte) { n += len(fr) }
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				for p := stream; len(p) > 0; {
					k := min(read, len(p))
					f.Feed(p[:k], emit)
					p = p[k:]
				}
			}
			if st := f.Stats(); st.Frames%uint64(frames) != 0 || st.Frames == 0 {
				b.Fatalf("stats %+v, %d frames per stream", st, frames)
			}
		})
	}
}

func BenchmarkFramerLine(b *testing.B) {
	benchmarkFramer(b, framingConfig("line", 4096), func(p []byte) []byte { return append(p, '\r', '\n') })
}

func BenchmarkFramerCOBS(b *testing.B) {
	benchmarkFramer(b, framingConfig("cobs", 4096), func(p []byte) []byte { return append(cobsEncode(p), 0) })
}

func BenchmarkFramerSLIP(b *testing.B) {
	benchmarkFramer(b, framingConfig("slip", 4096), slipEncode)
}

func BenchmarkFramerDelimiter(b *testing.B) {
	benchmarkFramer(b, delimConfig("END", 4096), func(p []byte) []byte { return append(p, "END"...) })
}

func BenchmarkFramerLength(b *testing.B) {
	benchmarkFramer(b, lengthConfig(0, 2, "big", 4096), func(p []byte) []byte {
		return append([]byte{byte(len(p) >> 8), byte(len(p))}, p...)
	})
}
