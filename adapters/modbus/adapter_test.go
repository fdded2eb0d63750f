package modbus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/modbustest"
	"github.com/causeway/causeway/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// availLog records availability transitions.
type availLog struct {
	mu  sync.Mutex
	evs []string
}

func (l *availLog) fn(device string, online bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := device + "=offline"
	if online {
		s = device + "=online"
	}
	l.evs = append(l.evs, s)
}

func (l *availLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.evs, " ")
}

func (l *availLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e == s {
			return true
		}
	}
	return false
}

func testBlock(url string) config.Modbus {
	return config.Modbus{
		Name: "mb", URL: url, Serial: config.Serial{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1, USBInterface: -1},
		Timeout: config.Duration(200 * time.Millisecond), Retries: 1,
		Devices: []config.ModbusDevice{{
			Name: "dev", UnitID: 1, Interval: config.Duration(100 * time.Millisecond), MaxGap: 8,
			Points: []config.ModbusPoint{
				{Name: "a", Table: "holding", Address: 0, Type: "uint16", Order: "ABCD", Scale: 1},
				{Name: "sp", Table: "holding", Address: 1, Type: "int16", Order: "ABCD", Scale: 0.5, Writable: true},
			},
		}},
	}
}

// runner is an adapter's Run in a goroutine, with its frames.
type runner struct {
	frames chan bridge.Frame
	done   chan struct{} // closed when Run returned
	err    error
	stop   func()
}

// runAdapter runs a until stop is called (or the test ends).
func runAdapter(t *testing.T, a *Adapter) *runner {
	t.Helper()
	bus := bridge.NewBus(64)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{frames: make(chan bridge.Frame, 1024), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.err = a.Run(ctx, bus, func() {})
		close(r.done)
	}()
	go func() {
		defer wg.Done()
		for f := range bus.Frames() {
			select {
			case r.frames <- f:
			default:
			}
		}
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-r.done:
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of cancel")
				return
			}
			bus.Close() // Run returned: nothing sends any more
			wg.Wait()
		})
	}
	t.Cleanup(r.stop)
	return r
}

func nextFrame(t *testing.T, frames <-chan bridge.Frame) bridge.Frame {
	t.Helper()
	select {
	case f := <-frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5s")
	}
	return bridge.Frame{}
}

func TestRunPollsAndStopsCleanly(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 0 7 10\n"})
	var av availLog
	a, err := New(testBlock(srv.URL()), Deps{Availability: av.fn})
	if err != nil {
		t.Fatal(err)
	}
	r := runAdapter(t, a)
	f := nextFrame(t, r.frames)
	if f.Adapter != "mb" || f.Device != "dev" || len(f.Points) != 2 || !f.Points[0].Good() || f.Points[0].Value.Int != 7 {
		t.Fatalf("frame %+v", f)
	}
	if v, _ := f.Points[1].Value.Float(); v != 5 {
		t.Fatalf("scaled point %+v, want 5", f.Points[1])
	}
	if !av.has("dev=online") {
		t.Fatalf("availability %s", av.String())
	}
	r.stop()
	if r.err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", r.err)
	}
	if !av.has("dev=offline") {
		t.Fatalf("no offline on shutdown: %s", av.String())
	}
	st := a.Stats()
	if st.Cycles == 0 || st.Frames == 0 || st.Requests == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The serial port going away (the pty pair torn down, as when a USB
// adapter is pulled) makes Run return an error, so that the supervisor
// opens it again; the devices go offline. Run never hangs on a dead port.
func TestSerialPortLostEndsRun(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{RTU: true, Init: "1 holding 0 7 10\n"})
	var av availLog
	a, err := New(testBlock(srv.URL()), Deps{Availability: av.fn})
	if err != nil {
		t.Fatal(err)
	}
	r := runAdapter(t, a)
	nextFrame(t, r.frames)
	srv.Stop() // kills the server and socat: the pty is gone
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "serial") {
			t.Fatalf("Run returned %v, want a serial line error", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after the serial port vanished")
	}
	if !av.has("dev=offline") {
		t.Fatalf("no offline after the port was lost: %s", av.String())
	}
}

func TestCommandChecksBeforeWriting(t *testing.T) {
	a, err := New(testBlock("tcp://127.0.0.1:1"), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for _, c := range []struct {
		cmd  bridge.Command
		want string
	}{
		{bridge.Command{Device: "nope", Values: []bridge.PointValue{{Name: "a", Value: bridge.Int(1)}}}, "no device nope"},
		{bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "zz", Value: bridge.Int(1)}}}, "no point zz"},
		{bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "a", Value: bridge.Int(1)}}}, "point a is not writable"},
		{bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "sp", Value: bridge.Int(100000)}}}, "out of range"},
		{bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "sp", Value: bridge.String("x")}}}, "point sp"},
		// Valid, but the line is not running: a clear error when ctx ends.
		{bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "sp", Value: bridge.Number(2.5)}}}, "busy or not running"},
	} {
		_, err := a.Command(ctx, c.cmd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.cmd, err, c.want)
		}
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the last command should have waited for ctx")
	}
}

func TestCommandWritesAndReadsBack(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 0 7 10\n"})
	a, err := New(testBlock(srv.URL()), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := runAdapter(t, a)
	nextFrame(t, r.frames)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vals, err := a.Command(ctx, bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "sp", Value: bridge.Number(-3.5)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 1 || vals[0].Name != "sp" {
		t.Fatalf("values %+v", vals)
	}
	if v, _ := vals[0].Value.Float(); v != -3.5 {
		t.Fatalf("read back %+v, want -3.5", vals[0])
	}
	regs, err := srv.Get(1, "holding", 1, 1)
	if err != nil || regs[0] != 0xFFF9 { // -7 as int16
		t.Fatalf("register %04X %v, want FFF9", regs, err)
	}
}

// A serial port chosen by USB identity (usb = "vid:pid", usb_serial) is
// found through sysfs, also after it re-enumerated under another name.
func TestRTUPortSelectedByUSBIdentity(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{RTU: true, Init: "1 holding 0 7 10\n"})
	for _, name := range []string{"ttyUSB0", "ttyUSB3"} { // before and after a re-enumeration
		c := testBlock("rtu://")
		c.USB, c.USBSerial = "0403:6001", "A9XYZ"
		a, err := New(c, Deps{Ports: testpeer.FakeUSBSerial(t, name, srv.DevicePath())})
		if err != nil {
			t.Fatal(err)
		}
		r := runAdapter(t, a)
		if f := nextFrame(t, r.frames); !f.Points[0].Good() || f.Points[0].Value.Int != 7 {
			t.Fatalf("%s: frame %+v", name, f)
		}
		r.stop()
	}
	c := testBlock("rtu://")
	c.USB, c.USBSerial = "0403:6001", "OTHER"
	a, err := New(c, Deps{Ports: testpeer.FakeUSBSerial(t, "ttyUSB0", srv.DevicePath())})
	if err != nil {
		t.Fatal(err)
	}
	r := runAdapter(t, a)
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "0403:6001") {
			t.Fatalf("Run with an absent adapter returned %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not fail with no matching USB adapter")
	}
}

// A cycle that takes longer than the interval skips the ticks it overran
// instead of running them back to back.
func TestOverrunningCycleSkipsTicks(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 0 7 10\n"})
	if _, err := srv.Control("delay 1 120"); err != nil {
		t.Fatal(err)
	}
	c := testBlock(srv.URL())
	c.Timeout = config.Duration(time.Second)
	c.Devices[0].Interval = config.Duration(50 * time.Millisecond) // one cycle takes ~120 ms
	a, err := New(c, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := runAdapter(t, a)
	start := time.Now()
	n := 0
	for time.Since(start) < time.Second {
		f := nextFrame(t, r.frames)
		if !f.Points[0].Good() {
			t.Fatalf("frame %+v", f)
		}
		n++
	}
	r.stop()
	st := a.Stats()
	// 120 ms cycles on a 50 ms interval: a new cycle starts on the next
	// 50 ms tick after the previous one ends, every 150 ms, not back to back.
	if st.SkippedTicks < uint64(n) || n > 9 {
		t.Fatalf("%d frames in 1 s, %d ticks skipped: want about 7 frames and 2 skipped ticks per frame", n, st.SkippedTicks)
	}
	t.Logf("%d frames in 1 s, %d ticks skipped", n, st.SkippedTicks)
}
