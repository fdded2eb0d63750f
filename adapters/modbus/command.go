package modbus

import (
	"context"
	"fmt"

	"github.com/causeway/causeway/adapters/modbus/wire"
	"github.com/causeway/causeway/bridge"
)

// cmdJob is a command handed to the line goroutine.
type cmdJob struct {
	ctx    context.Context // the caller's: a job whose caller gave up is not run
	d      *device
	writes []pointWrite
	done   chan cmdResult // buffered: the line never blocks on it
}

type pointWrite struct {
	idx  int
	regs []uint16
	bit  bool
}

type cmdResult struct {
	vals []bridge.PointValue
	err  error
}

// Command implements bridge.Commander: it writes the values to writable
// points, encoded with each point's type, byte order and inverse scale,
// then reads them back. Every value is checked before anything is
// written: one bad value writes nothing.
func (a *Adapter) Command(ctx context.Context, cmd bridge.Command) ([]bridge.PointValue, error) {
	d, ok := a.byName[cmd.Device]
	if !ok {
		return nil, fmt.Errorf("no device %s on adapter %s", cmd.Device, a.cfg.Name)
	}
	j := &cmdJob{ctx: ctx, d: d, done: make(chan cmdResult, 1)}
	for _, pv := range cmd.Values {
		i, ok := d.byName[pv.Name]
		if !ok {
			return nil, fmt.Errorf("no point %s on device %s", pv.Name, d.name)
		}
		p := &d.points[i]
		if !p.Writable {
			return nil, fmt.Errorf("point %s is not writable", pv.Name)
		}
		w := pointWrite{idx: i}
		var err error
		if p.IsBit() {
			w.bit, err = p.EncodeBit(pv.Value)
		} else {
			w.regs, err = p.Encode(pv.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("point %s: %w", pv.Name, err)
		}
		j.writes = append(j.writes, w)
	}
	select {
	case a.cmds <- j:
	case <-ctx.Done():
		return nil, fmt.Errorf("modbus line %s busy or not running: %w", a.cfg.Name, ctx.Err())
	}
	select {
	case r := <-j.done:
		return r.vals, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no outcome from modbus line %s: %w", a.cfg.Name, ctx.Err())
	}
}

// serveCommands executes the commands waiting, between two poll requests.
func (a *Adapter) serveCommands(ctx context.Context, tr wire.Transport, serial bool) error {
	for {
		select {
		case j := <-a.cmds:
			if err := a.execute(ctx, tr, serial, j); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// execute runs one command on the line: each write, then a read-back of
// each point written. A serial line failure is returned (the adapter
// restarts); every other outcome goes to the command's result.
func (a *Adapter) execute(ctx context.Context, tr wire.Transport, serial bool, j *cmdJob) error {
	d := j.d
	if j.ctx.Err() != nil {
		return nil // the caller gave up before the line was free
	}
	var out []bridge.PointValue
	fail := func(err error) error {
		j.done <- cmdResult{vals: out, err: err}
		if serial && isLineFailure(err) && ctx.Err() == nil {
			return fmt.Errorf("modbus serial line: %w", err)
		}
		return nil
	}
	for _, w := range j.writes {
		p := &d.points[w.idx]
		req := writeRequest(d.unit, p, w)
		a.stats.writes.Add(1)
		if _, err := a.do(ctx, tr, req); err != nil {
			a.stats.writeErrors.Add(1)
			return fail(fmt.Errorf("write %s (%s %d): %w", p.Name, p.Table, p.Address, err))
		}
		r := Read{Table: p.Table, Address: p.Address, Count: uint16(p.Width()), Points: []int{w.idx}}
		resp, err := a.do(ctx, tr, readRequest(d.unit, r))
		if err != nil {
			return fail(fmt.Errorf("%s written, but reading it back failed: %w", p.Name, err))
		}
		var v bridge.Value
		if p.IsBit() {
			if len(resp.Bits) < 1 {
				return fail(fmt.Errorf("%s written, but its read-back was empty", p.Name))
			}
			v = p.DecodeBit(resp.Bits[0])
		} else {
			if len(resp.Registers) < p.Width() {
				return fail(fmt.Errorf("%s written, but its read-back was short", p.Name))
			}
			if v, err = p.Decode(resp.Registers[:p.Width()]); err != nil {
				return fail(fmt.Errorf("%s written, but its read-back does not decode: %w", p.Name, err))
			}
		}
		out = append(out, bridge.PointValue{Name: p.Name, Value: v})
	}
	j.done <- cmdResult{vals: out}
	return nil
}

// writeRequest picks the function: 5 for a coil, 6 for one register, 16
// for several.
func writeRequest(unit byte, p *Point, w pointWrite) wire.Request {
	if p.IsBit() {
		return wire.Request{Unit: unit, Function: wire.FuncWriteSingleCoil, Address: p.Address, Count: 1, Bits: []bool{w.bit}}
	}
	if len(w.regs) == 1 {
		return wire.Request{Unit: unit, Function: wire.FuncWriteSingleRegister, Address: p.Address, Count: 1, Values: w.regs}
	}
	return wire.Request{Unit: unit, Function: wire.FuncWriteMultipleRegisters, Address: p.Address, Count: uint16(len(w.regs)), Values: w.regs}
}

var _ bridge.Commander = (*Adapter)(nil)
