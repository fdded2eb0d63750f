package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// ReadResult is what ReadOnce read.
type ReadResult struct {
	First, Last int    // addresses covered
	Unit        string // "registers" or "bits"
	Order       string
	Elapsed     time.Duration
	Values      []ReadValue
}

// ReadValue is one decoded value of ReadOnce.
type ReadValue struct {
	Address int
	Raw     string // the registers in hex, or the bit
	Text    string // the decoded value, or the error
}

// ReadOnce reads count consecutive values shaped like pt (its address is
// the first one's) from unit on the line of m, in as few requests as the
// protocol allows: the commissioning tool `gateway modbus read`.
func ReadOnce(ctx context.Context, m config.Modbus, unit int, pt config.ModbusPoint, count int, log *slog.Logger) (ReadResult, error) {
	if unit < 0 || unit > 255 {
		return ReadResult{}, fmt.Errorf("unit %d out of range 0..255", unit)
	}
	if m.Timeout <= 0 {
		m.Timeout = config.Duration(time.Second)
	}
	first, err := NewPoint(pt)
	if err != nil {
		return ReadResult{}, err
	}
	w := first.Width()
	if pt.Address < 0 || pt.Address+count*w > 65536 {
		return ReadResult{}, fmt.Errorf("addresses %d..%d out of range 0..65535", pt.Address, pt.Address+count*w-1)
	}
	m.Devices = []config.ModbusDevice{{Name: "read", UnitID: unit, MaxGap: 0}}
	pts := make([]config.ModbusPoint, count)
	for i := range pts {
		pts[i] = pt
		pts[i].Name = fmt.Sprintf("v%d", i)
		pts[i].Address = pt.Address + i*w
	}
	m.Devices[0].Points = pts
	a, err := New(m, Deps{Log: log})
	if err != nil {
		return ReadResult{}, err
	}
	tr, _, err := a.open(ctx)
	if err != nil {
		return ReadResult{}, err
	}
	defer func() { _ = tr.Close() }()
	d := a.devices[0]
	res := ReadResult{First: pt.Address, Last: pt.Address + count*w - 1, Unit: "registers", Order: first.Order}
	if first.IsBit() {
		res.Unit, res.Order = "bits", ""
	}
	raw := make([]string, count)
	start := time.Now()
	for _, r := range d.reads {
		resp, err := a.do(ctx, tr, readRequest(d.unit, r))
		if err != nil {
			return res, fmt.Errorf("%s %d..%d: %w", r.Table, r.Address, int(r.Address)+int(r.Count)-1, err)
		}
		a.decode(d, r, resp)
		for _, i := range r.Points {
			off := int(d.points[i].Address) - int(r.Address)
			if d.points[i].IsBit() {
				if off < len(resp.Bits) && resp.Bits[off] {
					raw[i] = "1"
				} else {
					raw[i] = "0"
				}
				continue
			}
			var sb strings.Builder
			for k := 0; k < w && off+k < len(resp.Registers); k++ {
				if k > 0 {
					sb.WriteByte(' ')
				}
				fmt.Fprintf(&sb, "0x%04X", resp.Registers[off+k])
			}
			raw[i] = sb.String()
		}
	}
	res.Elapsed = time.Since(start)
	for i := range d.points {
		v := ReadValue{Address: int(d.points[i].Address), Raw: raw[i]}
		if d.bad[i] != "" {
			v.Text = "error: " + d.bad[i]
		} else {
			v.Text = string(d.vals[i].AppendText(nil))
			if d.vals[i].Kind == bridge.KindString {
				v.Text = fmt.Sprintf("%q", d.vals[i].Str)
			}
		}
		res.Values = append(res.Values, v)
	}
	return res, nil
}
