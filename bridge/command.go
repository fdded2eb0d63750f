package bridge

import (
	"context"
	"sync"
	"time"
)

// PointValue is one named value: a point of a command, or a value read
// back after a write.
type PointValue struct {
	Name  string
	Value Value
}

// Command is a write request to one device, from an MQTT command topic
// ({gateway}/{adapter}/{device}/set or .../{point}/set).
type Command struct {
	Adapter string
	Device  string
	Values  []PointValue // in the order given
}

// Commander is implemented by adapters that execute commands (writes).
type Commander interface {
	// Command writes cmd's values to the device and returns the values read
	// back where the protocol allows (else the values written), or why it
	// failed. It returns when ctx ends at the latest.
	Command(ctx context.Context, cmd Command) ([]PointValue, error)
}

// AvailabilityFunc reports that a device the adapter polls, observes or
// holds a port for went online or offline. The gateway publishes it,
// retained, on {gateway}/{adapter}/{device}/availability.
type AvailabilityFunc func(device string, online bool)

// Limiter lets one event through per interval and counts the rest, so a
// flood of bad input yields a log line now and then, never silence and
// never a flood. The zero value with Every set is ready to use.
type Limiter struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed uint64
}

// Allow reports whether to log now, and how many events were suppressed
// since the last one logged.
func (l *Limiter) Allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
