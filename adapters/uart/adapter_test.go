package uart

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func kvBlock(port string) config.UART {
	return config.UART{
		Name: "u", Port: port, Serial: config.Serial{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1, USBInterface: -1},
		Framing: "line", Delimiter: "\n", LengthSize: 1, LengthOrder: "big", MaxFrame: 4096,
		Checksum: "none", Parser: "kv", Device: "dev", Write: "SET {point}={value}\n",
	}
}

type runner struct {
	frames chan bridge.Frame
	done   chan struct{}
	err    error
	stop   func()
}

func run(t *testing.T, a *Adapter) *runner {
	t.Helper()
	bus := bridge.NewBus(64)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{frames: make(chan bridge.Frame, 256), done: make(chan struct{})}
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
			r.frames <- f
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
			bus.Close()
			wg.Wait()
		})
	}
	t.Cleanup(r.stop)
	return r
}

func peer(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func frame(t *testing.T, r *runner) bridge.Frame {
	t.Helper()
	select {
	case f := <-r.frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5s")
	}
	return bridge.Frame{}
}

// go.bug.st/serial returns (0, nil) when a read times out: the adapter
// must not take it for the end of the port. Silence for several read
// timeouts, then a frame: it arrives and Run is still running.
func TestReadTimeoutIsNotEOF(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	a, err := New(kvBlock(pty.A), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, a)
	time.Sleep(4 * readTimeout)
	select {
	case <-r.done:
		t.Fatalf("Run returned %v on a silent port", r.err)
	default:
	}
	if _, err := peer(t, pty.B).Write([]byte("t=21.5 n=3\n")); err != nil {
		t.Fatal(err)
	}
	f := frame(t, r)
	if f.Device != "dev" || len(f.Points) != 2 || f.Points[0].Name != "t" {
		t.Fatalf("frame %+v", f)
	}
	r.stop()
	if r.err != nil {
		t.Fatalf("Run returned %v after cancel", r.err)
	}
	if st := a.Stats(); st.Frames != 1 || st.Bytes != 11 || st.Framer.Frames != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The port vanishing ends Run with an error (the supervisor reopens it),
// and every device seen goes offline.
func TestPortLostEndsRun(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	var mu sync.Mutex
	var evs []string
	a, err := New(kvBlock(pty.A), Deps{Availability: func(d string, on bool) {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, d+map[bool]string{true: "+", false: "-"}[on])
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, a)
	p := peer(t, pty.B)
	if _, err := p.Write([]byte("device=other x=1\n")); err != nil {
		t.Fatal(err)
	}
	frame(t, r)
	p.Close()
	pty.Stop()
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "serial port") {
			t.Fatalf("Run returned %v, want a serial port error", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after the port vanished")
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(evs, " ")
	if got != "other+ other-" {
		t.Fatalf("availability %q", got)
	}
}

// A port selected by USB identity is found through sysfs, also after it
// re-enumerated under another /dev name.
func TestPortSelectedByUSBIdentity(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	for _, name := range []string{"ttyUSB0", "ttyUSB2"} {
		c := kvBlock("")
		c.USB, c.USBSerial, c.USBInterface = "0403:6001", "A9XYZ", 0
		a, err := New(c, Deps{Ports: testpeer.FakeUSBSerial(t, name, pty.A)})
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, a)
		time.Sleep(50 * time.Millisecond) // the port is open before we write
		if _, err := peer(t, pty.B).Write([]byte("v=1\n")); err != nil {
			t.Fatal(err)
		}
		if f := frame(t, r); f.Points[0].Name != "v" {
			t.Fatalf("%s: frame %+v", name, f)
		}
		r.stop()
	}
}

// Commands write the template between reads; the result's values are
// what was written. Without a template commands are refused.
func TestCommandWritesTemplate(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	a, err := New(kvBlock(pty.A), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, a)
	p := peer(t, pty.B)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var vals []bridge.PointValue
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); { // until the port is open
		vals, err = a.Command(ctx, bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "relay", Value: bridge.Bool(true)}, {Name: "sp", Value: bridge.Number(21.5)}}})
		if err == nil || !strings.Contains(err.Error(), "not open") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || len(vals) != 2 {
		t.Fatalf("command: %v %v", vals, err)
	}
	buf := make([]byte, 64)
	_ = p.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := ""
	for !strings.HasSuffix(got, "sp=21.5\n") {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatalf("read %q: %v", got, err)
		}
		got += string(buf[:n])
	}
	if got != "SET relay=true\nSET sp=21.5\n" {
		t.Fatalf("the device read %q", got)
	}
	r.stop()

	c := kvBlock(pty.A)
	c.Write = ""
	b, err := New(c, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Command(ctx, bridge.Command{Device: "dev", Values: []bridge.PointValue{{Name: "x", Value: bridge.Int(1)}}}); err == nil || !strings.Contains(err.Error(), "no write template") {
		t.Fatalf("command without a template: %v", err)
	}
}
