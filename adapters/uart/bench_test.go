package uart

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// Benchmark of issue 5 (bench/uart.sh runs it, docs/benchmarks.md has the
// numbers): frames per second through the adapter's own path — the framer
// fed with 4 KiB reads as Run reads the port, then onFrame (checksum,
// parser, the frame sent on a bridge.Bus) — with a consumer goroutine
// draining the bus, for three blocks:
//
//   - line-regex: line framing, the regex parser, lines such as
//     "kitchen T=21.5 H=40\n" (8 devices);
//   - line-json: line framing, the json parser, objects such as
//     {"device":"pump","rpm":1450,"on":true,"temp":41.25} (4 devices);
//   - cobs-binary: COBS framing, xor8 checksum, the binary parser with 4
//     fields (int16 × 0.01, uint32 little endian, float32, bool).
//
// One op is one frame, so allocs/op and B/op are per frame. Metrics:
// frames/s; wire-B/frame (bytes on the line per frame, delimiter included;
// SetBytes gets it rounded); allocs/frame and B/frame (runtime.MemStats over
// the timed run: every goroutine, the consumer and the GC included);
// cpu-ns/frame (getrusage: the process's user + system time, so the consumer
// and the garbage collector count); core%@115200 — the share of one core the
// producer path needs at the line rate of 115200 baud 8N1 (11,520 bytes/s),
// from the measured bytes/s: 11520 / (wire-B/frame × frames/s) × 100; and
// cpu-core%@115200, the same from cpu-ns/frame (the whole process).

// plLineRate is what a 115200-baud 8N1 line carries: 10 bits a byte.
const plLineRate = 115200 / 10

// plDistinct is how many distinct frames the benchmark stream holds; longer
// runs feed it again and again.
const plDistinct = 4096

// plChecked is how many frames the consumer compares with what was sent.
const plChecked = 64

// plCase is one benchmarked [[uart]] block and its traffic.
type plCase struct {
	name string
	cfg  config.UART
	// frame returns frame i as sent on the wire (delimiter included) and
	// the device and points the gateway must make of it.
	frame func(i int) (wire []byte, device string, points []bridge.Point)
}

func plCases() []plCase {
	base := func(name, framing, checksum, parser string) config.UART {
		return config.UART{
			Name: name, Port: "/dev/null", Serial: config.Serial{Baud: 115200, DataBits: 8, Parity: "N", StopBits: 1},
			Framing: framing, Delimiter: "\n", LengthSize: 1, LengthOrder: "big", MaxFrame: 4096,
			Checksum: checksum, Parser: parser, Device: name,
		}
	}
	regex := base("sensors", "line", "none", "regex")
	regex.Pattern = `^(?P<device>\w+) T=(?P<temperature>-?[\d.]+) H=(?P<humidity>\d+)$`
	rooms := []string{"kitchen", "bedroom", "garage", "attic", "cellar", "office", "bathroom", "hall"}

	js := base("machines", "line", "none", "json")
	machines := []string{"pump", "fan", "compressor", "boiler"}

	bin := base("node", "cobs", "xor8", "binary")
	bin.Fields = []config.UARTField{
		{Name: "temperature", Offset: 0, Type: "int16", Order: "big", Scale: 0.01},
		{Name: "count", Offset: 2, Type: "uint32", Order: "little", Scale: 1},
		{Name: "pressure", Offset: 6, Type: "float32", Order: "big", Scale: 1},
		{Name: "ok", Offset: 10, Type: "bool", Order: "big", Scale: 1},
	}

	return []plCase{
		{name: "line-regex", cfg: regex, frame: func(i int) ([]byte, string, []bridge.Point) {
			dev := rooms[i%len(rooms)]
			t := i*37%401 - 50 // -5.0 .. 35.0 degC, in tenths
			h := 20 + i*13%71  // 20 .. 90 %
			ts := fmt.Sprintf("%.1f", float64(t)/10)
			wire := fmt.Sprintf("%s T=%s H=%d\n", dev, ts, h)
			return []byte(wire), dev, []bridge.Point{
				{Name: "temperature", Value: bridge.Number(float64(t) / 10)},
				{Name: "humidity", Value: bridge.Int(int64(h))},
			}
		}},
		{name: "line-json", cfg: js, frame: func(i int) ([]byte, string, []bridge.Point) {
			dev := machines[i%len(machines)]
			rpm := 900 + i*53%2100
			on := i%5 != 0
			temp := float64(3000+i*29%2000) / 100 // 30.00 .. 49.99, two decimals
			wire := fmt.Sprintf(`{"device":%q,"rpm":%d,"on":%t,"temp":%.2f}`+"\n", dev, rpm, on, temp)
			return []byte(wire), dev, []bridge.Point{
				{Name: "rpm", Value: bridge.Int(int64(rpm))},
				{Name: "on", Value: bridge.Bool(on)},
				{Name: "temp", Value: bridge.Number(temp)},
			}
		}},
		{name: "cobs-binary", cfg: bin, frame: func(i int) ([]byte, string, []bridge.Point) {
			t := int16(i*97%5001 - 1000) // -10.00 .. 40.00 degC in hundredths
			count := uint32(i) * 2654435761
			pressure := float32(950 + float64(i*7%1000)/10) // 950.0 .. 1049.9 hPa
			ok := i%3 != 0
			payload := make([]byte, 11)
			binary.BigEndian.PutUint16(payload[0:], uint16(t))
			binary.LittleEndian.PutUint32(payload[2:], count)
			binary.BigEndian.PutUint32(payload[6:], math.Float32bits(pressure))
			if ok {
				payload[10] = 1
			}
			framed, err := AppendChecksum("xor8", payload)
			if err != nil {
				panic(err)
			}
			return append(plCOBSEncode(framed), 0), "node", []bridge.Point{
				{Name: "temperature", Value: bridge.Number(float64(t) / 100)},
				{Name: "count", Value: bridge.Int(int64(count))},
				{Name: "pressure", Value: bridge.Number(float64(pressure))}, // replaced below by the shortest decimal
				{Name: "ok", Value: bridge.Bool(ok)},
			}
		}},
	}
}

// plCOBSEncode returns p COBS-encoded, without the 0x00 delimiter.
func plCOBSEncode(p []byte) []byte {
	out := []byte{0}
	codeAt, code := 0, byte(1)
	for _, b := range p {
		if b != 0 {
			out = append(out, b)
			code++
		}
		if b == 0 || code == 0xFF {
			out[codeAt], code, codeAt = code, 1, len(out)
			out = append(out, 0)
		}
	}
	out[codeAt] = code
	return out
}

// plValueEqual compares two values without allocating.
func plValueEqual(a, b bridge.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case bridge.KindNumber:
		return a.Num == b.Num
	case bridge.KindInt:
		return a.Int == b.Int
	case bridge.KindBool:
		return a.Bool == b.Bool
	case bridge.KindString:
		return a.Str == b.Str
	}
	return true
}

// plWant is what the gateway must make of one frame.
type plWant struct {
	device string
	points []bridge.Point
}

func BenchmarkPipeline(b *testing.B) {
	for _, c := range plCases() {
		// The stream: plDistinct frames back to back; ends[i] is where
		// frame i ends.
		var stream []byte
		ends := make([]int, plDistinct)
		want := make([]plWant, plChecked)
		for i := range plDistinct {
			wire, dev, pts := c.frame(i)
			stream = append(stream, wire...)
			ends[i] = len(stream)
			if i < plChecked {
				if c.cfg.Parser == "binary" {
					// float32 points read as their shortest decimal.
					for k, p := range pts {
						if p.Name == "pressure" {
							pts[k].Value = bridge.Number(bridge.ShortestFloat32(float32(p.Value.Num)))
						}
					}
				}
				want[i] = plWant{dev, pts}
			}
		}
		wireB := float64(len(stream)) / plDistinct
		b.Run(c.name, func(b *testing.B) { plRun(b, c, stream, ends, want, wireB) })
	}
}

func plRun(b *testing.B, c plCase, stream []byte, ends []int, want []plWant, wireB float64) {
	a, err := New(c.cfg, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	bus := bridge.NewBus(4096) // app.BusCapacity
	emit := func(frame []byte) { a.onFrame(ctx, bus, frame) }
	feed := func(p []byte) {
		for len(p) > 0 {
			k := min(readBuf, len(p))
			a.framer.Feed(p[:k], emit)
			p = p[k:]
		}
	}

	// The consumer: counts frames and points, compares the first ones.
	var (
		wg       sync.WaitGroup
		received int
		points   int
		mismatch string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range bus.Frames() {
			if received < len(want) && mismatch == "" {
				w := want[received]
				ok := f.Device == w.device && f.Adapter == c.cfg.Name && len(f.Points) == len(w.points)
				for k := 0; ok && k < len(f.Points); k++ {
					ok = f.Points[k].Name == w.points[k].Name && f.Points[k].Good() && plValueEqual(f.Points[k].Value, w.points[k].Value)
				}
				if !ok {
					mismatch = fmt.Sprintf("frame %d: got %s %+v, want %s %+v", received, f.Device, f.Points, w.device, w.points)
				}
			}
			received++
			points += len(f.Points)
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			bus.Close()
			wg.Wait()
		}
	}
	defer stop()

	b.SetBytes(int64(math.Round(wireB)))
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	var ru0, ru1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()

	n := b.N
	for ; n >= plDistinct; n -= plDistinct {
		feed(stream)
	}
	if n > 0 {
		feed(stream[:ends[n-1]])
	}
	stop() // every frame received by the consumer

	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&m1)

	st := a.Stats()
	fs := a.framer.Stats()
	if mismatch != "" {
		b.Fatal(mismatch)
	}
	if st.Frames != uint64(b.N) || fs.Frames != uint64(b.N) || received != b.N ||
		st.ParseErrors != 0 || st.BadChecksum != 0 || st.FrameErrors != 0 || st.Empty != 0 ||
		fs.Invalid != 0 || fs.Oversize != 0 || fs.Discarded != 0 {
		b.Fatalf("fed %d frames: adapter %+v, framer %+v, consumer received %d", b.N, st, fs, received)
	}
	if wantPts := b.N * len(want[0].points); points != wantPts {
		b.Fatalf("consumer received %d points, want %d", points, wantPts)
	}

	secs := b.Elapsed().Seconds()
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
		syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
	per := float64(b.N)
	fps := per / secs
	b.ReportMetric(fps, "frames/s")
	b.ReportMetric(wireB, "wire-B/frame")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/frame")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/frame")
	b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/frame")
	b.ReportMetric(plLineRate/(wireB*fps)*100, "core%@115200")
	b.ReportMetric(float64(cpu.Nanoseconds())/per*(plLineRate/wireB)/1e9*100, "cpu-core%@115200")
}
