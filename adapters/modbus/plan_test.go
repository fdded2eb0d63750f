package modbus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// plPoint returns a point for plan tests.
func plPoint(name string, table Table, addr int, ty Type, length int) Point {
	if table.IsBit() {
		ty = TypeBool
	}
	return Point{Name: name, Table: table, Address: uint16(addr), Type: ty, Length: length, Scale: 1, Order: "ABCD"}
}

func plReg(name string, addr int, ty Type) Point { return plPoint(name, TableHolding, addr, ty, 0) }

// plFeasible reports whether one read may cover exactly the points of group,
// by the rules of Plan, checked from scratch: one table; and either a single
// point, or a span within the limit whose addresses unused by the group
// never run longer than maxGap.
func plFeasible(points []Point, group []int, maxGap int) bool {
	if len(group) == 1 {
		return true
	}
	maxGap = max(maxGap, 0)
	t := points[group[0]].Table
	lo, hi := 1<<20, -1
	for _, i := range group {
		p := points[i]
		if p.Table != t {
			return false
		}
		lo = min(lo, int(p.Address))
		hi = max(hi, int(p.Address)+p.Width()-1)
	}
	if hi-lo+1 > t.MaxRead() {
		return false
	}
	used := make([]bool, hi-lo+1)
	for _, i := range group {
		p := points[i]
		for a := int(p.Address); a < int(p.Address)+p.Width(); a++ {
			used[a-lo] = true
		}
	}
	run := 0
	for _, u := range used {
		if u {
			run = 0
		} else if run++; run > maxGap {
			return false
		}
	}
	return true
}

// plBruteForce returns the fewest reads over all partitions of idx into
// allowed groups, whatever the order (exhaustive: small idx only).
func plBruteForce(points []Point, idx []int, maxGap int) int {
	n := len(idx)
	if n > 14 {
		panic("plBruteForce: too many points")
	}
	full := 1<<n - 1
	ok := make([]bool, full+1)
	for m := 1; m <= full; m++ {
		var g []int
		for k := 0; k < n; k++ {
			if m&(1<<k) != 0 {
				g = append(g, idx[k])
			}
		}
		ok[m] = plFeasible(points, g, maxGap)
	}
	best := make([]int, full+1)
	for m := 1; m <= full; m++ {
		low := m & -m
		best[m] = n + 1
		// Every allowed group holding the lowest point of m.
		rest := m &^ low
		for s := rest; ; s = (s - 1) & rest {
			if g := s | low; ok[g] {
				best[m] = min(best[m], 1+best[m&^g])
			}
			if s == 0 {
				break
			}
		}
	}
	return best[full]
}

// plChainDP returns the fewest reads when each read takes a run of
// consecutive points in (table, address) order, by dynamic programming with
// plFeasible checking every run from scratch.
func plChainDP(points []Point, idx []int, maxGap int) int {
	order := slices.Clone(idx)
	if order == nil {
		for i := range points {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		pa, pb := points[order[a]], points[order[b]]
		if pa.Table != pb.Table {
			return pa.Table < pb.Table
		}
		if pa.Address != pb.Address {
			return pa.Address < pb.Address
		}
		return pa.Width() < pb.Width()
	})
	// Oversized points each take a read; they cannot share one.
	total := 0
	var chain []int
	for _, i := range order {
		if p := points[i]; p.Width() > p.Table.MaxRead() {
			total++
		} else {
			chain = append(chain, i)
		}
	}
	n := len(chain)
	best := make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		best[i] = n + 1
		for j := i; j < n; j++ {
			if plFeasible(points, chain[i:j+1], maxGap) {
				best[i] = min(best[i], 1+best[j+1])
			}
		}
	}
	return total + best[0]
}

// plCheck checks the invariants of a plan: every selected point is in
// exactly one read, of its table, inside the read's range; each read is as
// tight as its points, within the limit (or a lone oversized point), free
// of gaps longer than maxGap, with its points in address order; the reads
// come in table and address order; and there are as few reads as possible.
func plCheck(t testing.TB, points []Point, idx []int, maxGap int, reads []Read) {
	t.Helper()
	want := map[int]bool{}
	if idx == nil {
		for i := range points {
			want[i] = true
		}
	} else {
		for _, i := range idx {
			want[i] = true
		}
	}
	seen := map[int]int{}
	for k, r := range reads {
		if len(r.Points) == 0 {
			t.Fatalf("read %d (%v) covers no point", k, r)
		}
		if len(r.Names) != len(r.Points) {
			t.Fatalf("read %d (%v): %d names for %d points", k, r, len(r.Names), len(r.Points))
		}
		lo, hi := 1<<20, -1
		for j, i := range r.Points {
			p := points[i]
			if n, dup := seen[i]; dup {
				t.Fatalf("point %d (%s) in reads %d and %d", i, p.Name, n, k)
			}
			seen[i] = k
			if !want[i] {
				t.Fatalf("read %d covers point %d, which was not asked for", k, i)
			}
			if r.Names[j] != p.Name {
				t.Fatalf("read %d: name %q for point %d (%q)", k, r.Names[j], i, p.Name)
			}
			s, e := int(p.Address), int(p.Address)+p.Width()
			if p.Table != r.Table || s < int(r.Address) || e > r.End() {
				t.Fatalf("point %s (%v %d..%d) outside its read %v", p.Name, p.Table, s, e-1, r)
			}
			if j > 0 && int(points[r.Points[j-1]].Address) > s {
				t.Fatalf("read %v: points not in address order", r)
			}
			lo, hi = min(lo, s), max(hi, e)
		}
		if lo != int(r.Address) || hi != r.End() {
			t.Fatalf("read %v is not tight: its points span %d..%d", r, lo, hi-1)
		}
		if int(r.Count) > r.Table.MaxRead() && len(r.Points) != 1 {
			t.Fatalf("read %v exceeds the limit of %d", r, r.Table.MaxRead())
		}
		if !plFeasible(points, r.Points, maxGap) {
			t.Fatalf("read %v is not allowed (maxGap %d)", r, maxGap)
		}
		if k > 0 {
			q := reads[k-1]
			if q.Table > r.Table || (q.Table == r.Table && q.Address > r.Address) {
				t.Fatalf("reads out of order: %v before %v", q, r)
			}
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d points covered, %d asked for", len(seen), len(want))
	}
	if m := MinimalReads(points, idx, maxGap); m != len(reads) {
		t.Fatalf("%d reads, MinimalReads says %d", len(reads), m)
	}
}

func plPlan(t testing.TB, points []Point, idx []int, maxGap int) []Read {
	t.Helper()
	reads := Plan(points, idx, maxGap)
	plCheck(t, points, idx, maxGap, reads)
	return reads
}

func plSpans(reads []Read) string {
	var s []string
	for _, r := range reads {
		s = append(s, fmt.Sprintf("%s %d+%d", r.Table, r.Address, r.Count))
	}
	return strings.Join(s, ", ")
}

func TestPlanRegisterLimit(t *testing.T) {
	for _, tc := range []struct {
		pts  []Point
		want string
	}{
		{[]Point{plReg("a", 0, TypeUint16), plReg("b", 124, TypeUint16)}, "holding 0+125"},
		{[]Point{plReg("a", 0, TypeUint16), plReg("b", 125, TypeUint16)}, "holding 0+1, holding 125+1"},
		{[]Point{plReg("a", 0, TypeUint16), plReg("b", 123, TypeFloat32)}, "holding 0+125"},
		{[]Point{plReg("a", 0, TypeUint16), plReg("b", 124, TypeFloat32)}, "holding 0+1, holding 124+2"},
		{[]Point{plReg("a", 1000, TypeFloat64), plReg("b", 1121, TypeFloat64)}, "holding 1000+125"},
		{[]Point{plReg("a", 1000, TypeFloat64), plReg("b", 1122, TypeFloat64)}, "holding 1000+4, holding 1122+4"},
		{[]Point{plPoint("s", TableInput, 0, TypeString, 125), plPoint("t", TableInput, 124, TypeUint16, 0)}, "input 0+125"},
		{[]Point{plPoint("s", TableInput, 0, TypeString, 125), plPoint("t", TableInput, 125, TypeUint16, 0)}, "input 0+125, input 125+1"},
	} {
		reads := plPlan(t, tc.pts, nil, 125)
		if got := plSpans(reads); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.pts, got, tc.want)
		}
	}
	// 125 adjacent registers: one read; a 126th: two.
	var pts []Point
	for a := range 126 {
		pts = append(pts, plReg(fmt.Sprint("r", a), a, TypeUint16))
	}
	if got := plSpans(plPlan(t, pts[:125], nil, 0)); got != "holding 0+125" {
		t.Errorf("125 registers: %s", got)
	}
	if got := plSpans(plPlan(t, pts, nil, 0)); got != "holding 0+125, holding 125+1" {
		t.Errorf("126 registers: %s", got)
	}
}

func TestPlanBitLimit(t *testing.T) {
	for _, tb := range []Table{TableCoil, TableDiscrete} {
		c := func(a int) Point { return plPoint(fmt.Sprint("c", a), tb, a, TypeBool, 0) }
		if got := plSpans(plPlan(t, []Point{c(0), c(1999)}, nil, 2000)); got != tb.String()+" 0+2000" {
			t.Errorf("%v 0, 1999: %s", tb, got)
		}
		if got := plSpans(plPlan(t, []Point{c(0), c(2000)}, nil, 2000)); got != fmt.Sprintf("%v 0+1, %v 2000+1", tb, tb) {
			t.Errorf("%v 0, 2000: %s", tb, got)
		}
		var pts []Point
		for a := range 2001 {
			pts = append(pts, c(a))
		}
		if got := plSpans(plPlan(t, pts, nil, 0)); got != fmt.Sprintf("%v 0+2000, %v 2000+1", tb, tb) {
			t.Errorf("%v 2001 bits: %s", tb, got)
		}
	}
}

func TestPlanGap(t *testing.T) {
	for _, maxGap := range []int{0, 1, 8, 100} {
		for _, gap := range []int{maxGap, maxGap + 1} {
			pts := []Point{plReg("a", 10, TypeFloat32), plReg("b", 12+gap, TypeUint16)}
			reads := plPlan(t, pts, nil, maxGap)
			if merged := len(reads) == 1; merged != (gap <= maxGap) {
				t.Errorf("maxGap %d, gap %d: %s", maxGap, gap, plSpans(reads))
			}
		}
	}
	// Adjacent points merge with maxGap 0, and a negative maxGap counts as 0.
	pts := []Point{plReg("a", 0, TypeUint16), plReg("b", 1, TypeInt32), plReg("c", 4, TypeUint16)}
	for _, g := range []int{0, -5} {
		if got := plSpans(plPlan(t, pts, nil, g)); got != "holding 0+3, holding 4+1" {
			t.Errorf("maxGap %d: %s", g, got)
		}
	}
	// The gap is counted from the end of the read so far, not of the last
	// point: a long point bridges what follows it.
	pts = []Point{plPoint("s", TableHolding, 0, TypeString, 10), plReg("a", 2, TypeUint16), plReg("b", 12, TypeUint16)}
	if got := plSpans(plPlan(t, pts, nil, 2)); got != "holding 0+13" {
		t.Errorf("bridge: %s", got)
	}
}

func TestPlanTablesNeverMerge(t *testing.T) {
	pts := []Point{
		plPoint("h", TableHolding, 0, TypeUint16, 0),
		plPoint("i", TableInput, 0, TypeUint16, 0),
		plPoint("d", TableDiscrete, 0, TypeBool, 0),
		plPoint("c", TableCoil, 0, TypeBool, 0),
		plPoint("h2", TableHolding, 1, TypeUint16, 0),
		plPoint("c2", TableCoil, 1, TypeBool, 0),
	}
	reads := plPlan(t, pts, nil, 10)
	if got := plSpans(reads); got != "coil 0+2, discrete 0+1, input 0+1, holding 0+2" {
		t.Errorf("got %s", got)
	}
	var fcs []uint8
	for _, r := range reads {
		fcs = append(fcs, r.Table.ReadFunction())
	}
	if !slices.Equal(fcs, []uint8{1, 2, 4, 3}) {
		t.Errorf("function codes %v", fcs)
	}
}

func TestPlanOverlap(t *testing.T) {
	pts := []Point{
		plReg("low", 11, TypeUint16),                     // the low word of "both"
		plReg("both", 10, TypeUint32),                    // 10..11
		plReg("high", 10, TypeUint16),                    // 10
		plPoint("name", TableHolding, 5, TypeString, 10), // 5..14
		plReg("far", 30, TypeUint16),
	}
	reads := plPlan(t, pts, nil, 8)
	if got := plSpans(reads); got != "holding 5+10, holding 30+1" {
		t.Errorf("got %s", got)
	}
	if got := reads[0].String(); got != "holding 5..14 (10 registers): name, high, both, low" {
		t.Errorf("String() = %q", got)
	}
	// The same point twice in idx is read once.
	reads = plPlan(t, pts, []int{4, 4, 0}, 125)
	if got := reads[0].String(); got != "holding 11..30 (20 registers): low, far" {
		t.Errorf("String() = %q", got)
	}
}

func TestPlanOversized(t *testing.T) {
	// Only a hand-made point can be wider than a read; it gets its own.
	pts := []Point{
		plReg("a", 0, TypeUint16),
		plPoint("huge", TableHolding, 2, TypeString, 130),
		plReg("b", 4, TypeUint16),
		plReg("c", 300, TypeUint16),
	}
	reads := plPlan(t, pts, nil, 8)
	if got := plSpans(reads); got != "holding 0+5, holding 2+130, holding 300+1" {
		t.Errorf("got %s", got)
	}
}

func TestPlanSelection(t *testing.T) {
	pts := []Point{plReg("a", 0, TypeUint16), plReg("b", 50, TypeUint16), plReg("c", 2, TypeUint16)}
	reads := plPlan(t, pts, []int{2, 0}, 0)
	if got := plSpans(reads); got != "holding 0+1, holding 2+1" {
		t.Errorf("got %s", got)
	}
	if reads := plPlan(t, pts, []int{}, 8); len(reads) != 0 {
		t.Errorf("empty selection: %v", reads)
	}
	if reads := plPlan(t, nil, nil, 8); len(reads) != 0 {
		t.Errorf("no points: %v", reads)
	}
}

// plScattered returns n points spread over input and holding registers and
// coils, of every type, some clustered and some far apart.
func plScattered(r *rand.Rand, n int) []Point {
	types := []Type{TypeBool, TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeInt64, TypeUint64, TypeFloat32, TypeFloat64, TypeString}
	tables := []Table{TableHolding, TableHolding, TableInput, TableCoil, TableDiscrete}
	var pts []Point
	addr := map[Table]int{}
	for i := range n {
		tb := tables[r.IntN(len(tables))]
		switch r.IntN(4) {
		case 0:
			addr[tb] += r.IntN(3)
		case 1:
			addr[tb] += r.IntN(12)
		case 2:
			addr[tb] += r.IntN(60)
		default:
			addr[tb] = r.IntN(400)
		}
		ty := types[r.IntN(len(types))]
		length := 0
		if ty == TypeString {
			length = 1 + r.IntN(20)
			if r.IntN(10) == 0 {
				length = 100 + r.IntN(26)
			}
		}
		pts = append(pts, plPoint(fmt.Sprint("p", i), tb, addr[tb], ty, length))
	}
	return pts
}

func TestPlanScattered40(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 40))
	pts := plScattered(r, 40)
	for _, maxGap := range []int{0, 1, 4, 8, 20, 60, 125} {
		reads := plPlan(t, pts, nil, maxGap)
		if dp := plChainDP(pts, nil, maxGap); dp != len(reads) {
			t.Errorf("maxGap %d: %d reads, the dynamic program finds %d", maxGap, len(reads), dp)
		}
		t.Logf("maxGap %3d: %2d reads (40 points)", maxGap, len(reads))
	}
}

// TestPlanProperty checks Plan on many random devices: the invariants of
// plCheck, the dynamic program over runs of points, and for small devices
// the exhaustive search over every partition (which also shows that reads
// of consecutive points lose nothing).
func TestPlanProperty(t *testing.T) {
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(10)
		if seed%10 == 0 {
			n = 20 + r.IntN(100)
		}
		pts := plScattered(r, n)
		if r.IntN(3) == 0 {
			// Tight clusters and overlaps.
			for i := range pts {
				if !pts[i].Table.IsBit() {
					pts[i].Address %= 40
				}
			}
		}
		maxGap := []int{0, 1, 2, 5, 8, 30, 125}[r.IntN(7)]
		var idx []int
		if r.IntN(4) == 0 {
			idx = r.Perm(n)[:r.IntN(n+1)]
		}
		reads := plPlan(t, pts, idx, maxGap)
		if dp := plChainDP(pts, idx, maxGap); dp != len(reads) {
			t.Fatalf("seed %d: %d reads, the dynamic program finds %d", seed, len(reads), dp)
		}
		if n <= 10 {
			sel := idx
			if sel == nil {
				sel = r.Perm(n)
			}
			if bf := plBruteForce(pts, sel, maxGap); bf != len(reads) {
				t.Fatalf("seed %d: %d reads, the exhaustive search finds %d\n%v", seed, len(reads), bf, reads)
			}
		}
	}
}

func TestSplit(t *testing.T) {
	pts := []Point{
		plReg("a", 0, TypeUint16), plReg("b", 1, TypeFloat32), plReg("c", 5, TypeUint16),
		plReg("d", 6, TypeUint16), plReg("e", 9, TypeInt64), plPoint("f", TableHolding, 15, TypeString, 4),
		plReg("g", 16, TypeUint16),
	}
	reads := plPlan(t, pts, nil, 8)
	if len(reads) != 1 {
		t.Fatalf("got %s", plSpans(reads))
	}
	halves := Split(reads[0], pts)
	if got := plSpans(halves); got != "holding 0+7, holding 9+10" {
		t.Errorf("first split: %s", got)
	}
	if len(halves[0].Points) != 4 || len(halves[1].Points) != 3 {
		t.Errorf("first split: %d + %d points", len(halves[0].Points), len(halves[1].Points))
	}
	// Split until every read holds one point: the points stay covered, once.
	rounds := 0
	for {
		var next []Read
		split := false
		for _, r := range reads {
			if h := Split(r, pts); h != nil {
				if len(h) != 2 || len(h[0].Points)+len(h[1].Points) != len(r.Points) ||
					len(h[0].Points)-len(h[1].Points) > 1 || len(h[1].Points) > len(h[0].Points) {
					t.Fatalf("Split(%v) = %v", r, h)
				}
				next = append(next, h...)
				split = true
			} else {
				if len(r.Points) != 1 {
					t.Fatalf("Split(%v) = nil", r)
				}
				next = append(next, r)
			}
		}
		reads = next
		covered := map[int]bool{}
		for _, r := range reads {
			for j, i := range r.Points {
				if covered[i] || r.Names[j] != pts[i].Name {
					t.Fatalf("round %d: point %d twice or misnamed: %v", rounds, i, reads)
				}
				covered[i] = true
				p := pts[i]
				if int(p.Address) < int(r.Address) || int(p.Address)+p.Width() > r.End() {
					t.Fatalf("round %d: %s outside %v", rounds, p.Name, r)
				}
			}
		}
		if len(covered) != len(pts) {
			t.Fatalf("round %d: %d of %d points covered", rounds, len(covered), len(pts))
		}
		if !split {
			break
		}
		rounds++
	}
	if rounds != 3 || len(reads) != len(pts) {
		t.Errorf("%d rounds, %d reads", rounds, len(reads))
	}
	for _, r := range reads {
		p := pts[r.Points[0]]
		if r.Address != p.Address || int(r.Count) != p.Width() {
			t.Errorf("single read %v for %s", r, p.Name)
		}
		if Split(r, pts) != nil {
			t.Errorf("Split of one point: not nil")
		}
	}
	if Split(Read{}, pts) != nil {
		t.Error("Split of an empty read: not nil")
	}
}

func TestReadString(t *testing.T) {
	for _, tc := range []struct {
		r    Read
		want string
	}{
		{Read{Table: TableHolding, Address: 100, Count: 10, Points: []int{0, 1}, Names: []string{"supply_temp", "return_temp"}},
			"holding 100..109 (10 registers): supply_temp, return_temp"},
		{Read{Table: TableInput, Address: 7, Count: 1, Points: []int{3}, Names: []string{"x"}}, "input 7 (1 register): x"},
		{Read{Table: TableCoil, Address: 0, Count: 16, Points: []int{2, 5}}, "coil 0..15 (16 bits): #2, #5"},
		{Read{Table: TableDiscrete, Address: 65535, Count: 1}, "discrete 65535 (1 bit)"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestWireBytesAndCycleTime(t *testing.T) {
	for _, tc := range []struct {
		r         Read
		req, resp int
	}{
		{Read{Table: TableHolding, Count: 10}, 8, 25},
		{Read{Table: TableInput, Count: 125}, 8, 255},
		{Read{Table: TableCoil, Count: 1}, 8, 6},
		{Read{Table: TableCoil, Count: 8}, 8, 6},
		{Read{Table: TableDiscrete, Count: 9}, 8, 7},
		{Read{Table: TableCoil, Count: 2000}, 8, 255},
	} {
		req, resp := tc.r.WireBytesRTU()
		if req != tc.req || resp != tc.resp {
			t.Errorf("%v: %d, %d; want %d, %d", tc.r, req, resp, tc.req, tc.resp)
		}
	}
	reads := []Read{{Table: TableHolding, Count: 10}, {Table: TableCoil, Count: 8}}
	// 9600 baud: (33 + 14) bytes * 11 bits + 4 silences of 38.5 bits = 671 bits.
	if got, want := CycleTimeRTU(reads, 9600), 671*time.Second/9600; got != want {
		t.Errorf("9600: %v, want %v", got, want)
	}
	// 19200 still counts 3.5 characters.
	if got, want := CycleTimeRTU(reads, 19200), 671*time.Second/19200; got != want {
		t.Errorf("19200: %v, want %v", got, want)
	}
	// 115200: the silence is fixed at 1.75 ms.
	if got, want := CycleTimeRTU(reads, 115200), 517*time.Second/115200+4*1750*time.Microsecond; got != want {
		t.Errorf("115200: %v, want %v", got, want)
	}
	if got := CycleTimeRTU(reads, 0); got != 0 {
		t.Errorf("baud 0: %v", got)
	}
	if got := CycleTimeRTU(nil, 9600); got != 0 {
		t.Errorf("no reads: %v", got)
	}
}

func TestFormatPlan(t *testing.T) {
	pts := []Point{
		plReg("supply_temp", 100, TypeInt16),
		plReg("return_temp", 101, TypeInt16),
		plReg("flow", 108, TypeFloat32),
		plPoint("pump", TableCoil, 0, TypeBool, 0),
		plPoint("alarm", TableDiscrete, 12, TypeBool, 0),
		plPoint("serial", TableInput, 30000, TypeString, 8),
	}
	reads := plPlan(t, pts, nil, 8)
	var b bytes.Buffer
	FormatPlan(&b, "boiler", 1, pts, reads, 9600)
	want := `device boiler (unit 1): 6 points in 4 requests
  #  fc  table     address       count  points
  1  01  coil      0             1      pump
  2  02  discrete  12            1      alarm
  3  04  input     30000..30007  8      serial
  4  03  holding   100..109      10     supply_temp, return_temp, flow
  4 requests per cycle, 18 registers and 2 bits read, 90 bytes on the wire (RTU), about 135.2ms per cycle at 9600 baud
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	b.Reset()
	FormatPlan(&b, "meter", 7, pts, reads[3:], 0)
	want = `device meter (unit 7): 3 points in 1 request
  #  fc  table    address   count  points
  1  03  holding  100..109  10     supply_temp, return_temp, flow
  1 request per cycle, 10 registers and 0 bits read, 33 bytes on the wire (RTU)
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func BenchmarkPlan1000(b *testing.B) {
	r := rand.New(rand.NewPCG(1000, 1))
	types := []Type{TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeFloat32, TypeFloat64, TypeUint64}
	pts := make([]Point, 1000)
	addr := 0
	for i := range pts {
		addr += r.IntN(6)
		pts[i] = plReg(fmt.Sprint("p", i), addr, types[r.IntN(len(types))])
	}
	r.Shuffle(len(pts), func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
	reads := Plan(pts, nil, 8)
	plCheck(b, pts, nil, 8, reads)
	b.ReportAllocs()
	for b.Loop() {
		Plan(pts, nil, 8)
	}
	b.ReportMetric(float64(len(reads)), "reads")
}
