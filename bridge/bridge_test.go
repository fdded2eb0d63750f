package bridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBusBackpressure(t *testing.T) {
	b := NewBus(2)
	if err := b.TrySend(Frame{Device: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := b.TrySend(Frame{Device: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := b.TrySend(Frame{Device: "c"}); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("third TrySend = %v, want ErrBackpressure", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Send(ctx, Frame{Device: "c"}); !errors.Is(err, ErrBackpressure) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on full bus = %v", err)
	}
	if st := b.Stats(); st.Sent != 2 || st.Refused != 2 || st.Depth != 2 {
		t.Fatalf("stats = %+v", st)
	}
	f := <-b.Frames()
	if f.Device != "a" {
		t.Fatalf("FIFO broken: got %q", f.Device)
	}
	if err := b.Send(context.Background(), Frame{Device: "d"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.TrySend(Frame{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	var got []string
	for f := range b.Frames() {
		got = append(got, f.Device)
	}
	if len(got) != 2 || got[0] != "b" || got[1] != "d" {
		t.Fatalf("drain after close = %v", got)
	}
}

func TestSendAndWaitAck(t *testing.T) {
	b := NewBus(4)
	refuse := errors.New("refused: queue full")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range b.Frames() {
			if f.Device == "bad" {
				f.Resolve(refuse)
			} else {
				f.Resolve(nil)
			}
		}
	}()
	ctx := context.Background()
	if err := b.SendAndWait(ctx, Frame{Device: "ok"}); err != nil {
		t.Fatalf("ok frame: %v", err)
	}
	if err := b.SendAndWait(ctx, Frame{Device: "bad"}); !errors.Is(err, refuse) {
		t.Fatalf("bad frame: %v", err)
	}
	b.Close()
	wg.Wait()
}

func TestSendAndWaitTimeoutWhenNotAcked(t *testing.T) {
	b := NewBus(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := b.SendAndWait(ctx, Frame{Device: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// The frame stays on the bus; acking late must not block or panic.
	f := <-b.Frames()
	f.Resolve(nil)
}

func TestValueEncoding(t *testing.T) {
	cases := []struct {
		v          Value
		json, text string
	}{
		{Number(21.5), "21.5", "21.5"},
		{Number(40), "40", "40"},
		{Number(math.Copysign(0, -1)), "-0", "-0"},
		{Number(1e-7), "1e-7", "1e-7"},
		{Number(1.5e-300), "1.5e-300", "1.5e-300"},
		{Number(1e21), "1e+21", "1e+21"},
		{Number(123456789012), "123456789012", "123456789012"},
		{Number(math.NaN()), "null", "NaN"},
		{Int(-9007199254740993), "-9007199254740993", "-9007199254740993"},
		{Bool(true), "true", "true"},
		{String("a\"b\\c\n\x01é"), `"a\"b\\c\n\u0001é"`, "a\"b\\c\n\x01é"},
		{String("\xff"), `"\ufffd"`, "\xff"},
		{Bytes([]byte{0, 1, 2}), `"AAEC"`, "\x00\x01\x02"},
		{Value{}, "null", ""},
	}
	for _, c := range cases {
		if got := string(c.v.AppendJSON(nil)); got != c.json {
			t.Errorf("%v JSON = %s, want %s", c.v, got, c.json)
		}
		if got := string(c.v.AppendText(nil)); got != c.text {
			t.Errorf("%v text = %q, want %q", c.v, got, c.text)
		}
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 20 {
			d := b.Delay(n)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

type flaky struct {
	name  string
	fails int32
	runs  atomic.Int32
}

func (f *flaky) Name() string { return f.name }
func (f *flaky) Kind() string { return "test" }
func (f *flaky) Run(ctx context.Context, bus *Bus, ready func()) error {
	n := f.runs.Add(1)
	if n <= f.fails {
		if n == 2 {
			panic("boom")
		}
		return errors.New("cannot bind")
	}
	ready()
	<-ctx.Done()
	return nil
}

func TestSupervisorRestartsWithBackoff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSupervisor(log, Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond})
	a := &flaky{name: "a", fails: 3}
	good := &flaky{name: "b"}
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan struct{})
	done := make(chan struct{})
	go func() {
		s.Run(ctx, NewBus(1), []Adapter{a, good}, func() { close(readyCh) })
		close(done)
	}()
	select {
	case <-readyCh:
	case <-time.After(5 * time.Second):
		t.Fatal("adapters never became ready")
	}
	if got := a.runs.Load(); got != 4 {
		t.Fatalf("flaky adapter ran %d times, want 4 (3 failures incl. a panic, then success)", got)
	}
	var restarts uint64
	for _, st := range s.States() {
		if st.Name == "a" {
			restarts = st.Restarts
			if !st.Running || st.LastErr == "" {
				t.Fatalf("state = %+v", st)
			}
		}
	}
	if restarts != 3 {
		t.Fatalf("restarts = %d", restarts)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("supervisor did not stop")
	}
}
