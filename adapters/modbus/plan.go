package modbus

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Read is one read request of a plan: a table, a start address, a count
// (registers or bits), and the points it covers.
type Read struct {
	Table   Table
	Address uint16
	Count   uint16
	Points  []int    // indices into the points slice given to Plan, in address order
	Names   []string // the names of those points, in the same order (for String and logs)
}

// End returns the address just past the read (Address + Count), as an int
// so that a read ending at 65535 does not wrap.
func (r Read) End() int { return int(r.Address) + int(r.Count) }

// String describes the read for logs and the plan command, e.g.
// "holding 100..109 (10 registers): supply_temp, return_temp".
func (r Read) String() string {
	var b strings.Builder
	b.WriteString(r.Table.String())
	b.WriteByte(' ')
	b.WriteString(r.addresses())
	fmt.Fprintf(&b, " (%s)", r.quantity())
	if len(r.Points) > 0 {
		b.WriteString(": ")
		b.WriteString(r.pointList())
	}
	return b.String()
}

// addresses returns "100..109", or "100" for a read of one.
func (r Read) addresses() string {
	if r.Count <= 1 {
		return strconv.Itoa(int(r.Address))
	}
	return strconv.Itoa(int(r.Address)) + ".." + strconv.Itoa(r.End()-1)
}

// quantity returns "10 registers", "1 bit", ...
func (r Read) quantity() string {
	s := strconv.Itoa(int(r.Count)) + " " + r.Table.unit()
	if r.Count != 1 {
		s += "s"
	}
	return s
}

// pointList returns the point names joined by ", " (or "#3" where a name
// is missing).
func (r Read) pointList() string {
	names := make([]string, len(r.Points))
	for i, p := range r.Points {
		if i < len(r.Names) && r.Names[i] != "" {
			names[i] = r.Names[i]
		} else {
			names[i] = "#" + strconv.Itoa(p)
		}
	}
	return strings.Join(names, ", ")
}

// dataBytes returns the bytes of data in the normal response to the read.
func (r Read) dataBytes() int {
	if r.Table.IsBit() {
		return (int(r.Count) + 7) / 8
	}
	return 2 * int(r.Count)
}

// WireBytesRTU returns the bytes of the request and of the normal response
// in RTU framing: the request is 8 bytes (unit, function, address, count,
// CRC); the response 5 bytes (unit, function, byte count, CRC) plus the data,
// 2 bytes a register or 1 byte per 8 bits.
func (r Read) WireBytesRTU() (req, resp int) {
	return 8, 5 + r.dataBytes()
}

// CycleTimeRTU estimates how long one poll cycle of reads takes on a serial
// line at baud: every byte is 11 bits (start, 8 data, parity or a second
// stop bit, stop), and each of the two frames of a read (request and
// response) is followed by the 3.5-character silence that ends an RTU
// frame. Above 19200 baud the Modbus serial line specification (§2.5.1.1)
// fixes that silence at 1.75 ms, and so does this estimate. The device's
// turnaround time is not counted (taken as 0). A baud ≤ 0 gives 0.
func CycleTimeRTU(reads []Read, baud int) time.Duration {
	if baud <= 0 {
		return 0
	}
	var bits int64
	for _, r := range reads {
		req, resp := r.WireBytesRTU()
		bits += int64(req+resp) * 11
	}
	frames := int64(2 * len(reads))
	if baud > 19200 {
		return time.Duration(bits)*time.Second/time.Duration(baud) + time.Duration(frames)*1750*time.Microsecond
	}
	// 3.5 characters of 11 bits after each frame: 38.5 bits; count halves.
	half := 2*bits + 77*frames
	return time.Duration(half) * time.Second / time.Duration(2*baud)
}

// planItem is one point as the planner sees it.
type planItem struct {
	idx        int
	table      Table
	start, end int // first and last register or bit, inclusive
}

// planItems returns the selected points (all for a nil idx) sorted by
// table, start address, end address and index, without duplicates.
func planItems(points []Point, idx []int) []planItem {
	n := len(idx)
	if idx == nil {
		n = len(points)
	}
	items := make([]planItem, 0, n)
	for k := 0; k < n; k++ {
		i := k
		if idx != nil {
			i = idx[k]
		}
		p := &points[i]
		w := max(p.Width(), 1)
		s := int(p.Address)
		items = append(items, planItem{idx: i, table: p.Table, start: s, end: s + w - 1})
	}
	slices.SortFunc(items, func(a, b planItem) int {
		return cmp.Or(cmp.Compare(a.table, b.table), cmp.Compare(a.start, b.start),
			cmp.Compare(a.end, b.end), cmp.Compare(a.idx, b.idx))
	})
	return slices.CompactFunc(items, func(a, b planItem) bool { return a.idx == b.idx })
}

// Plan coalesces points into the fewest reads. Points are taken per table
// in address order; a point joins the read before it when the run of unused
// registers (or bits) between the end of that read and the point is at most
// maxGap (a negative maxGap counts as 0), and the read stays within the
// protocol limit (MaxReadRegisters, MaxReadBits). Overlapping points share
// reads. A point wider than the limit (only possible for a hand-made point)
// gets a read of its own. idx selects the points to plan (nil: all); each
// index is planned once. The reads come in table order (coil, discrete,
// input, holding), each table by address.
//
// The same maxGap applies to bits and registers.
//
// Plan is optimal: no set of reads that obeys the same rules (each read
// covers whole points, spans at most the limit, and holds no run of more
// than maxGap addresses that none of its own points uses) is smaller.
// Proof: drop the points wider than the limit, which can share no read.
// Per table, sort the rest by start; let X₁, X₂, … be the points at which
// Plan opens a read, Sₖ the start of Xₖ and Eₖ the last address the k-th
// read covers. Xₖ₊₁ is refused by read k either for the limit, and then it
// ends after Sₖ + limit − 1 ≥ Eₖ, or for the gap, and then it starts after
// Eₖ + 1 + maxGap. Either way Eₖ₊₁ > Eₖ, so every point before Xₖ₊₁ ends by
// Eₖ. Now take any allowed read R holding two openers Xₐ and X_b, a < b,
// and ask why read b−1 refused X_b. For the limit: X_b ends after
// S_{b−1} + limit − 1 ≥ Sₐ + limit − 1, and R starts by Sₐ, so R spans
// more than the limit. For the gap: the more than maxGap addresses
// E_{b−1}+1 … start(X_b)−1 belong to no point at all (those before X_b end
// by E_{b−1}, the others start at or after X_b), and they lie inside R,
// between Xₐ (which ends by E_{b−1}) and X_b. Either way R is not allowed:
// every allowed plan needs a read per opener, as many as Plan makes.
// MinimalReads finds the optimum by dynamic programming instead, and the
// tests compare both with an exhaustive search over all partitions.
func Plan(points []Point, idx []int, maxGap int) []Read {
	maxGap = max(maxGap, 0)
	items := planItems(points, idx)
	var reads []Read
	open := false
	var cur Read
	var start, end int
	flush := func() {
		if open {
			cur.Address, cur.Count = uint16(start), uint16(end-start+1)
			reads = append(reads, cur)
		}
		open = false
	}
	oversized := false
	for _, it := range items {
		limit := it.table.MaxRead()
		if it.end-it.start+1 > limit {
			// Placed after the loop, so that the read in progress can go on.
			oversized = true
			continue
		}
		if open && cur.Table == it.table && it.start-end-1 <= maxGap && max(end, it.end)-start+1 <= limit {
			end = max(end, it.end)
		} else {
			flush()
			open, cur, start, end = true, Read{Table: it.table}, it.start, it.end
		}
		cur.Points = append(cur.Points, it.idx)
		cur.Names = append(cur.Names, points[it.idx].Name)
	}
	flush()
	if oversized {
		for _, it := range items {
			if it.end-it.start+1 > it.table.MaxRead() {
				reads = append(reads, planReadOf(points, []int{it.idx}))
			}
		}
		slices.SortStableFunc(reads, func(a, b Read) int {
			return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Address, b.Address))
		})
	}
	return reads
}

// planReadOf returns the tightest read of the given points, which must be of
// one table and in address order.
func planReadOf(points []Point, idx []int) Read {
	r := Read{Points: idx, Names: make([]string, len(idx))}
	start, end := -1, -1
	for k, i := range idx {
		p := &points[i]
		s := int(p.Address)
		e := s + max(p.Width(), 1) - 1
		if k == 0 || s < start {
			start = s
		}
		end = max(end, e)
		r.Table = p.Table
		r.Names[k] = p.Name
	}
	r.Address, r.Count = uint16(start), uint16(end-start+1)
	return r
}

// Split divides a read that the device answered with an exception into two
// reads of its points, cut between points: the first half of its points
// (the extra one when odd) and the rest, each read as tight as its points
// allow. Splitting again and again keeps the readable points read and ends
// with the bad point alone. A read of one point cannot be split: Split
// returns nil.
func Split(r Read, points []Point) []Read {
	if len(r.Points) < 2 {
		return nil
	}
	idx := slices.Clone(r.Points)
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := &points[a], &points[b]
		return cmp.Or(cmp.Compare(pa.Address, pb.Address), cmp.Compare(pa.Width(), pb.Width()))
	})
	h := (len(idx) + 1) / 2
	return []Read{planReadOf(points, idx[:h:h]), planReadOf(points, idx[h:])}
}

// MinimalReads returns the fewest reads that cover the selected points (nil
// idx: all) under the rules of Plan, found by dynamic programming over the
// points in address order rather than by Plan's greedy merge: for tests and
// benchmarks. Plan's comment proves the two agree.
func MinimalReads(points []Point, idx []int, maxGap int) int {
	maxGap = max(maxGap, 0)
	items := planItems(points, idx)
	total := 0
	for len(items) > 0 {
		// One table at a time; oversized points count one read each.
		n := 1
		for n < len(items) && items[n].table == items[0].table {
			n++
		}
		var chain []planItem
		for _, it := range items[:n] {
			if it.end-it.start+1 > it.table.MaxRead() {
				total++
			} else {
				chain = append(chain, it)
			}
		}
		total += planMinimalChain(chain, maxGap)
		items = items[n:]
	}
	return total
}

// planMinimalChain: best[i] is the fewest reads for chain[i:], trying every
// allowed read chain[i..j]. Points come sorted by start, so a read
// chain[i..j] is allowed exactly when each point in turn fits the read
// of those before it, and stops being allowed once one does not.
func planMinimalChain(chain []planItem, maxGap int) int {
	n := len(chain)
	if n == 0 {
		return 0
	}
	limit := chain[0].table.MaxRead()
	best := make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		best[i] = 1 + best[i+1]
		end := chain[i].end
		for j := i + 1; j < n; j++ {
			it := chain[j]
			if it.start-end-1 > maxGap || max(end, it.end)-chain[i].start+1 > limit {
				break
			}
			end = max(end, it.end)
			best[i] = min(best[i], 1+best[j+1])
		}
	}
	return best[0]
}

// FormatPlan writes a readable table of a device's plan: each request with
// its function code, address range, count and the points it covers, then a
// footer with the requests, registers and bits read, the bytes on the wire
// per cycle in RTU framing, and, when baud > 0, the estimated cycle time
// (CycleTimeRTU). Write errors are ignored, as with fmt.Fprintf.
func FormatPlan(w io.Writer, device string, unit int, points []Point, reads []Read, baud int) {
	npoints := 0
	for _, r := range reads {
		npoints += len(r.Points)
	}
	fmt.Fprintf(w, "device %s (unit %d): %d %s in %d %s\n", device, unit,
		npoints, planPlural(npoints, "point"), len(reads), planPlural(len(reads), "request"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tfc\ttable\taddress\tcount\tpoints")
	var regs, bits, wire int
	for k, r := range reads {
		names := make([]string, len(r.Points))
		for j, i := range r.Points {
			if i >= 0 && i < len(points) && points[i].Name != "" {
				names[j] = points[i].Name
			} else {
				names[j] = "#" + strconv.Itoa(i)
			}
		}
		fmt.Fprintf(tw, "  %d\t%02d\t%s\t%s\t%d\t%s\n", k+1, r.Table.ReadFunction(), r.Table,
			r.addresses(), r.Count, strings.Join(names, ", "))
		if r.Table.IsBit() {
			bits += int(r.Count)
		} else {
			regs += int(r.Count)
		}
		req, resp := r.WireBytesRTU()
		wire += req + resp
	}
	tw.Flush()
	fmt.Fprintf(w, "  %d %s per cycle, %d %s and %d %s read, %d bytes on the wire (RTU)",
		len(reads), planPlural(len(reads), "request"), regs, planPlural(regs, "register"), bits, planPlural(bits, "bit"), wire)
	if baud > 0 {
		d := CycleTimeRTU(reads, baud).Round(100 * time.Microsecond)
		fmt.Fprintf(w, ", about %v per cycle at %d baud", d, baud)
	}
	fmt.Fprintln(w)
}

func planPlural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
