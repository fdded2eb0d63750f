package app

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mapping"
)

// pumpHarness runs pump in a synctest bubble and records every delivery
// as "+<time since start> <topic> <payload>".
type pumpHarness struct {
	t      *testing.T
	start  time.Time
	frames chan bridge.Frame
	engine atomic.Pointer[mapping.Engine]
	done   chan struct{}

	mu      sync.Mutex
	got     []string
	mapped  int
	nilAcks int // deliveries without a frame (Due, Flush)
}

func newPumpHarness(t *testing.T, routes ...mapping.Route) *pumpHarness {
	h := &pumpHarness{t: t, start: time.Now(), frames: make(chan bridge.Frame), done: make(chan struct{})}
	h.swap(routes...)
	deliver := func(msgs []bridge.Message, ack bridge.AckFunc) {
		h.mu.Lock()
		for _, m := range msgs {
			h.got = append(h.got, fmt.Sprintf("+%v %s %s", time.Since(h.start), m.Topic, m.Payload))
		}
		if ack == nil {
			h.nilAcks++
		}
		h.mu.Unlock()
		if ack != nil {
			ack(nil)
		}
	}
	mapped := func(f *bridge.Frame, e *mapping.Engine) {
		if e != h.engine.Load() {
			t.Errorf("mapped with an engine that is not in force")
		}
		h.mu.Lock()
		h.mapped++
		h.mu.Unlock()
	}
	go func() {
		defer close(h.done)
		pump(h.frames, h.engine.Load, deliver, mapped)
	}()
	return h
}

// swap stores a new engine, as a reload does.
func (h *pumpHarness) swap(routes ...mapping.Route) {
	e, err := mapping.New("gw", routes)
	if err != nil {
		h.t.Fatal(err)
	}
	h.engine.Store(e)
}

// send hands a frame of adapter "m", read now, to the pump and waits for
// its ack.
func (h *pumpHarness) send(device string, pts ...bridge.Point) {
	acked := make(chan error, 1)
	h.frames <- bridge.Frame{Adapter: "m", Device: device, Time: time.Now(), Points: pts, Ack: func(err error) { acked <- err }}
	if err := <-acked; err != nil {
		h.t.Fatal(err)
	}
}

// at sleeps until start+d.
func (h *pumpHarness) at(d time.Duration) {
	time.Sleep(time.Until(h.start.Add(d)))
}

// expect checks the deliveries since the last call.
func (h *pumpHarness) expect(want ...string) {
	h.t.Helper()
	synctest.Wait()
	h.mu.Lock()
	got := h.got
	h.got = nil
	h.mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Errorf("at +%v:\n got %q\nwant %q", time.Since(h.start), got, want)
	}
}

func (h *pumpHarness) close() {
	close(h.frames)
	<-h.done
}

func pt(name string, v float64) bridge.Point {
	return bridge.Point{Name: name, Value: bridge.Number(v)}
}

func TestPumpMinIntervalAndHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPumpHarness(t, mapping.Route{Match: "m/**", Topic: "{device}/{point}", Payload: "value", QoS: 1,
			Deadband: 1, MinInterval: 5 * time.Second, MaxInterval: 20 * time.Second})
		h.send("d", pt("t", 1))
		h.expect("+0s d/t 1")
		h.at(1 * time.Second)
		h.send("d", pt("t", 3)) // held until +5s
		h.at(2 * time.Second)
		h.send("d", pt("t", 4)) // the latest wins
		h.send("d", pt("u", 0))
		h.expect("+2s d/u 0")
		h.at(5*time.Second - 1)
		h.expect()
		h.at(6 * time.Second)
		h.expect("+5s d/t 4") // by the timer, no frame needed
		h.at(60 * time.Second)
		h.expect("+22s d/u 0", "+25s d/t 4", "+42s d/u 0", "+45s d/t 4") // heartbeats
		h.close()
		h.expect()
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.mapped != 4 || h.nilAcks != 5 {
			t.Errorf("mapped %d frames, %d deliveries from the timer", h.mapped, h.nilAcks)
		}
	})
}

func TestPumpReloadAndShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kept := mapping.Route{Match: "m/d/*", Topic: "{device}/{point}", Payload: "value", QoS: 1, Deadband: 1, MinInterval: 5 * time.Second}
		changed := mapping.Route{Match: "m/x/*", Topic: "x/{point}", Payload: "value", QoS: 1, MinInterval: 5 * time.Second}
		h := newPumpHarness(t, changed, kept)
		h.send("d", pt("t", 1))
		h.send("x", pt("t", 1))
		h.expect("+0s d/t 1", "+0s x/t 1")
		h.at(1 * time.Second)
		h.send("d", pt("t", 3))
		h.send("x", pt("t", 3))
		h.expect() // both held until +5s

		h.at(2 * time.Second)
		changed.QoS = 2
		h.swap(changed, kept) // a reload
		h.at(3 * time.Second)
		h.expect() // the pump has not looked at the engine yet
		h.send("d", pt("t", 3.5))
		h.expect("+3s x/t 3") // the old engine's held value of the changed route, at the swap

		h.at(5*time.Second + 1)
		h.expect("+5s d/t 3.5") // the kept route's held value, by the new engine
		h.at(6 * time.Second)
		h.send("x", pt("t", 3))
		h.expect("+6s x/t 3") // the changed route starts again: a first value

		h.at(7 * time.Second)
		h.send("d", pt("t", 10)) // held until +10s
		h.at(8 * time.Second)
		h.close() // shutdown: held values go out
		h.expect("+8s d/t 10")
	})
}

func TestPumpReloadWithoutFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := mapping.Route{Match: "m/**", Topic: "{device}/{point}", Payload: "value", QoS: 1, MinInterval: 10 * time.Second}
		h := newPumpHarness(t, r)
		h.send("d", pt("t", 1))
		h.at(1 * time.Second)
		h.send("d", pt("t", 2))
		h.expect("+0s d/t 1")
		h.swap(r)
		h.at(10 * time.Second)
		h.expect("+10s d/t 2") // the timer finds the new engine, which took the held value over
		h.close()
		h.expect()
	})
}

func TestPumpWithoutRBE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPumpHarness(t)
		h.send("d", pt("t", 1))
		h.send("d", pt("t", 1))
		h.at(time.Hour)
		h.expect(`+0s gw/m/d {"time":"2000-01-01T00:00:00.000Z","t":1}`, `+0s gw/m/d {"time":"2000-01-01T00:00:00.000Z","t":1}`)
		h.close()
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.nilAcks != 0 {
			t.Errorf("%d deliveries without a frame", h.nilAcks)
		}
	})
}
