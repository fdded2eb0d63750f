package modbus

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/modbustest"
)

// Benchmarks of issue 4 (bench/modbus.sh runs them and docs/benchmarks.md
// has the numbers):
//
//   - BenchmarkCycleTCP1000: CPU time and allocations of one poll cycle of
//     a 1,000-point device over Modbus TCP, against the real libmodbus
//     server of internal/modbustest.
//   - BenchmarkPlanWire100: bytes on the wire and cycle time at 9600 baud of
//     a 100-point energy meter, per max_gap, against one read per point and
//     against the best any plan could do; printed once as a markdown table.

// bmPoints1000 returns the points of a 1,000-point device (600 holding, 400
// input registers), the values the server is loaded with, and its init
// lines ("1 TABLE ADDRESS VALUE..."). The mix, by index modulo 20: six
// uint16, four int16 with scale 0.1, two int32 (ABCD, CDAB), two uint32
// (BADC, DCBA), four float32 in the four orders, then a float64 every 100
// points (uint16 otherwise) and a 16-character string every 200 points
// (int16 otherwise). Points follow each other; every 10 points a gap of 0,
// 2, 4 or 6 registers (within max_gap 8) and every 50 a gap of 20 (beyond
// it, so a new read starts there).
func bmPoints1000(tb testing.TB) (pcs []config.ModbusPoint, want []bridge.Value, init string) {
	tb.Helper()
	var lines strings.Builder
	addr := 0
	for i := range 1000 {
		pc := config.ModbusPoint{Name: fmt.Sprintf("p%04d", i), Table: "holding", Scale: 1, Order: "ABCD"}
		if i >= 600 {
			pc.Table = "input"
		}
		if i == 600 {
			addr = 0
		}
		var v bridge.Value
		switch k := i % 20; {
		case k <= 5:
			pc.Type, v = "uint16", bridge.Int(int64(i*37%65536))
		case k <= 9:
			pc.Type, pc.Scale, pc.Unit = "int16", 0.1, "degC"
			v = bridge.Number(float64(i*13%2000-1000) / 10)
		case k <= 11:
			pc.Type, pc.Order, v = "int32", []string{"ABCD", "CDAB"}[k-10], bridge.Int(-int64(i)*100003)
		case k <= 13:
			pc.Type, pc.Order, v = "uint32", []string{"BADC", "DCBA"}[k-12], bridge.Int(int64(i)*1000003)
		case k <= 17:
			pc.Type, pc.Order, pc.Unit = "float32", []string{"ABCD", "CDAB", "BADC", "DCBA"}[k-14], "kW"
			v = bridge.Number(float64(i)*0.25 + 0.5)
		case k == 18 && i%100 == 18:
			pc.Type, pc.Order, v = "float64", []string{"ABCDEFGH", "GHEFCDAB"}[i/100%2], bridge.Number(float64(i)*3.14159)
		case k == 18:
			pc.Type, v = "uint16", bridge.Int(int64(i))
		case i%200 == 199:
			pc.Type, pc.Length, v = "string", 8, bridge.String(fmt.Sprintf("SN-%05d-ABCDEF", i))
		default:
			pc.Type, v = "int16", bridge.Int(int64(-i))
		}
		pc.Address = addr
		p, err := NewPoint(pc)
		if err != nil {
			tb.Fatal(err)
		}
		regs, err := p.Encode(v)
		if err != nil {
			tb.Fatalf("%s: encode %v: %v", pc.Name, v, err)
		}
		fmt.Fprintf(&lines, "1 %s %d", pc.Table, addr)
		for _, r := range regs {
			fmt.Fprintf(&lines, " %d", r)
		}
		lines.WriteByte('\n')
		pcs, want = append(pcs, pc), append(want, v)
		addr += p.Width()
		switch {
		case i%50 == 49:
			addr += 20
		case i%10 == 9:
			addr += i / 10 % 4 * 2
		}
	}
	return pcs, want, lines.String()
}

// bmSameValue compares two values by kind.
func bmSameValue(a, b bridge.Value) bool {
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
	return bytes.Equal(a.Bytes, b.Bytes)
}

// bmServer starts modbus-testserver (the binary modbustest.Start runs) for
// unit 1 over TCP with the init lines and returns its url. Unlike
// modbustest.Start, nothing in this process reads the REQ/REP lines the
// server prints for every request (modbustest parses each into a map): the
// server writes them to a file, so that their reading adds no CPU time and
// no allocations to the adapter's. Closing its stdin stops it.
func bmServer(b *testing.B, init string) string {
	b.Helper()
	bin := modbustest.Binary(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "init.txt")
	if err := os.WriteFile(path, []byte(init), 0o644); err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "stdout.txt"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close() // the server has its own descriptor
	cmd := exec.Command(bin, "--tcp", "127.0.0.1:0", "--units", "1", "--init", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	b.Cleanup(func() {
		_ = stdin.Close() // end of file on stdin: the server exits
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		data, err := os.ReadFile(out.Name())
		if err != nil {
			b.Fatal(err)
		}
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "READY" || f[1] != "tcp" {
				b.Fatalf("modbus-testserver: first line %q, want READY tcp ADDR", line)
			}
			return "tcp://" + f[2]
		}
		select {
		case <-exited:
			b.Fatalf("modbus-testserver exited at start: %s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.Fatal("modbus-testserver: no READY line in 10 s")
	return ""
}

// BenchmarkCycleTCP1000 times one poll cycle (every read of the plan,
// decoding, the frame sent on the bus) of a 1,000-point device over Modbus
// TCP on loopback. ns/op is the wall time of a cycle, server round trips
// included; cpu-us/cycle is this process's CPU time (user + system, the
// frame consumer and the garbage collector included) per cycle.
func BenchmarkCycleTCP1000(b *testing.B) {
	pcs, want, init := bmPoints1000(b)
	url := bmServer(b, init)
	a, err := New(config.Modbus{
		Name: "bench", URL: url, Timeout: config.Duration(2 * time.Second), Retries: 2,
		Devices: []config.ModbusDevice{{
			Name: "meter", UnitID: 1, Interval: config.Duration(time.Second), MaxGap: 8, Points: pcs,
		}},
	}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr, serial, err := a.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	d := a.devices[0]
	d.next = time.Now()
	bus := bridge.NewBus(64)

	// One cycle first, its frame checked value by value (it also dials).
	if err := a.cycle(ctx, tr, serial, bus, d); err != nil {
		b.Fatal(err)
	}
	f := <-bus.Frames()
	if len(f.Points) != len(want) {
		b.Fatalf("frame has %d points, want %d", len(f.Points), len(want))
	}
	for i, p := range f.Points {
		if !p.Good() || !bmSameValue(p.Value, want[i]) {
			b.Fatalf("point %s: value %+v bad %q, want %+v", p.Name, p.Value, p.Bad, want[i])
		}
	}

	// The pipeline's side: a consumer that counts the good points.
	var frames, badFrames int
	var firstBad string
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for f := range bus.Frames() {
			frames++
			good := 0
			for _, p := range f.Points {
				if p.Good() {
					good++
				} else if firstBad == "" {
					firstBad = p.Name + ": " + p.Bad
				}
			}
			if good != len(want) {
				badFrames++
			}
		}
	}()

	st0, ts0 := a.Stats(), tr.Stats()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := a.cycle(ctx, tr, serial, bus, d); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	bus.Close()
	<-consumed
	st, ts := a.Stats(), tr.Stats()
	if frames != n || badFrames != 0 {
		b.Fatalf("%d cycles, %d frames, %d of them without %d good points (first bad: %s)", n, frames, badFrames, len(want), firstBad)
	}
	if st.Timeouts+st.Exceptions+st.ConnErrors+st.Malformed+st.CRCErrors+st.DecodeErrors != 0 {
		b.Fatalf("errors during the run: %+v", st)
	}
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	per := float64(n)
	b.ReportMetric(float64(st.Requests-st0.Requests)/per, "requests/cycle")
	b.ReportMetric(float64(ts.BytesOut+ts.BytesIn-ts0.BytesOut-ts0.BytesIn)/per, "tcp-B/cycle")
	b.ReportMetric(float64(cpu.Microseconds())/per, "cpu-us/cycle")
}

// bmMeter100 returns the 100 points of a typical energy meter: 60 float32
// measurements in input registers, in blocks with gaps of 2 to 50 registers
// between them; 20 uint16 and 10 int32 (energy counters) in holding
// registers; 10 coils.
func bmMeter100() []Point {
	var pts []Point
	add := func(name string, t Table, addr int, ty Type) {
		if t.IsBit() {
			ty = TypeBool
		}
		pts = append(pts, Point{Name: name, Table: t, Address: uint16(addr), Type: ty, Order: "ABCD", Scale: 1})
	}
	// The registers left unused after each float32, repeated twice.
	gaps := []int{0, 0, 2, 0, 0, 0, 4, 0, 0, 6, 0, 0, 0, 10, 0, 0, 2, 0, 0, 0, 0, 20, 0, 0, 8, 0, 0, 0, 4, 50}
	addr := 0
	for i := range 60 {
		add(fmt.Sprintf("meas%02d", i), TableInput, addr, TypeFloat32)
		addr += 2 + gaps[i%len(gaps)]
	}
	for i := range 10 { // settings 0..9
		add(fmt.Sprintf("set%02d", i), TableHolding, i, TypeUint16)
	}
	for i := range 5 { // 20..24
		add(fmt.Sprintf("cfg%02d", i), TableHolding, 20+i, TypeUint16)
	}
	for i := range 5 { // 40, 42, ..., 48
		add(fmt.Sprintf("alarm%02d", i), TableHolding, 40+2*i, TypeUint16)
	}
	for i := range 10 { // 100..109 and 120..129
		add(fmt.Sprintf("energy%02d", i), TableHolding, 100+2*i+i/5*10, TypeInt32)
	}
	for i, a := range []int{0, 1, 2, 3, 8, 9, 16, 17, 30, 31} {
		add(fmt.Sprintf("relay%02d", i), TableCoil, a, TypeBool)
	}
	return pts
}

// bmNaive returns one read per point.
func bmNaive(pts []Point) []Read {
	reads := make([]Read, len(pts))
	for i := range pts {
		reads[i] = planReadOf(pts, []int{i})
	}
	return reads
}

// bmBest returns the reads of least total cost over every plan of pts
// (each read covers a run of points of one table in address order, within
// the protocol limit, gaps of any length): a dynamic program per table. It
// is the yardstick the planner's max_gap is set against, for cost = bytes
// on the wire or cost = cycle time.
func bmBest(pts []Point, cost func(Read) float64) []Read {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(pts[a].Table, pts[b].Table), cmp.Compare(pts[a].Address, pts[b].Address))
	})
	var out []Read
	for len(idx) > 0 {
		n := 1
		for n < len(idx) && pts[idx[n]].Table == pts[idx[0]].Table {
			n++
		}
		chain := idx[:n]
		best := make([]float64, n+1)
		next := make([]int, n)
		for i := n - 1; i >= 0; i-- {
			best[i] = -1
			for j := i; j < n; j++ {
				r := planReadOf(pts, chain[i:j+1])
				if int(r.Count) > pts[chain[i]].Table.MaxRead() {
					break
				}
				if c := cost(r) + best[j+1]; best[i] < 0 || c < best[i] {
					best[i], next[i] = c, j+1
				}
			}
		}
		for i := 0; i < n; i = next[i] {
			out = append(out, planReadOf(pts, chain[i:next[i]]))
		}
		idx = idx[n:]
	}
	return out
}

// bmWire returns the RTU bytes (requests + responses) of a cycle of reads,
// and the registers and bits they read.
func bmWire(reads []Read) (wire, regs, bits int) {
	for _, r := range reads {
		req, resp := r.WireBytesRTU()
		wire += req + resp
		if r.Table.IsBit() {
			bits += int(r.Count)
		} else {
			regs += int(r.Count)
		}
	}
	return wire, regs, bits
}

var bmPlanTableOnce sync.Once

// BenchmarkPlanWire100 is a table more than a timing: for a 100-point
// energy meter, the requests, RTU bytes on the wire and cycle time at 9600
// baud (CycleTimeRTU: 11 bits a byte plus 3.5 characters of silence after
// each frame, no device turnaround) of the plan per max_gap, against one
// read per point and against the cheapest plan of any shape. The table is
// printed once on stdout (lines starting with "|", for bench/modbus.sh);
// the metrics are those of max_gap 8, the default. ns/op is the time Plan
// takes for the 100 points.
func BenchmarkPlanWire100(b *testing.B) {
	const baud = 9600
	pts := bmMeter100()
	naive := bmNaive(pts)
	naiveBytes, _, _ := bmWire(naive)
	naiveTime := CycleTimeRTU(naive, baud)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

	bmPlanTableOnce.Do(func() {
		var t strings.Builder
		fmt.Fprintf(&t, "| plan (%d points) | requests/cycle | fewest requests for this max_gap (MinimalReads) | registers + bits read | RTU bytes/cycle | vs one read per point | cycle at %d baud, ms |\n", len(pts), baud)
		t.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
		row := func(name string, reads []Read, minimal string) {
			by, regs, bits := bmWire(reads)
			fmt.Fprintf(&t, "| %s | %d | %s | %d + %d | %d | %+.0f %% | %s |\n", name, len(reads), minimal, regs, bits, by,
				100*(float64(by)/float64(naiveBytes)-1), ms(CycleTimeRTU(reads, baud)))
		}
		row("one read per point", naive, "–")
		for _, gap := range []int{0, 4, 8, 16} {
			row(fmt.Sprintf("planner, max_gap %d", gap), Plan(pts, nil, gap), fmt.Sprint(MinimalReads(pts, nil, gap)))
		}
		row("fewest bytes of any plan", bmBest(pts, func(r Read) float64 {
			req, resp := r.WireBytesRTU()
			return float64(req + resp)
		}), "–")
		row("shortest cycle of any plan", bmBest(pts, func(r Read) float64 {
			return float64(CycleTimeRTU([]Read{r}, baud))
		}), "–")
		fmt.Print(t.String())
	})

	var reads []Read
	for b.Loop() {
		reads = Plan(pts, nil, 8)
	}
	by, _, _ := bmWire(reads)
	b.ReportMetric(float64(len(reads)), "requests/cycle")
	b.ReportMetric(float64(MinimalReads(pts, nil, 8)), "min-requests/cycle")
	b.ReportMetric(float64(by), "rtu-B/cycle")
	b.ReportMetric(float64(naiveBytes), "naive-rtu-B/cycle")
	b.ReportMetric(float64(CycleTimeRTU(reads, baud))/float64(time.Millisecond), "ms/cycle@9600")
	b.ReportMetric(float64(naiveTime)/float64(time.Millisecond), "naive-ms/cycle@9600")
}
