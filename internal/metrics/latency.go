package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds of causeway_publish_latency_seconds:
// from 50µs (a frame published on the built-in broker and appended to an
// in-memory queue) to 10s (an fsync on a tired SD card, a full bus).
var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	1 * time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// numBuckets counts the +Inf bucket too.
const numBuckets = len(latencyBounds) + 1

// latency is a histogram with fixed buckets, exported as a constant
// histogram at scrape time. Its counts are per bucket (not cumulative) so
// that the StatsJSON interval quantiles are a subtraction away.
type latency struct {
	counts [numBuckets]atomic.Uint64
	sumNs  atomic.Uint64
}

func (l *latency) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sumNs.Add(uint64(d))
}

// snapshot returns the per-bucket counts and the sum in nanoseconds.
func (l *latency) snapshot() (counts [numBuckets]uint64, sumNs uint64) {
	for i := range l.counts {
		counts[i] = l.counts[i].Load()
	}
	return counts, l.sumNs.Load()
}

// quantile estimates the q-quantile (0 < q <= 1) of the observations
// counted per bucket in counts, the way PromQL's histogram_quantile does:
// linear interpolation inside the bucket holding the rank, from 0 for the
// first one. A rank in the +Inf bucket gives the highest finite bound (the
// value is at least that). ok is false without observations.
func quantile(q float64, counts *[numBuckets]uint64) (d time.Duration, ok bool) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var cum float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		prev := cum
		cum += float64(c)
		if cum < rank {
			continue
		}
		if i == len(latencyBounds) {
			return latencyBounds[len(latencyBounds)-1], true
		}
		var lower time.Duration
		if i > 0 {
			lower = latencyBounds[i-1]
		}
		upper := latencyBounds[i]
		frac := (rank - prev) / float64(c)
		return lower + time.Duration(math.Round(frac*float64(upper-lower))), true
	}
	return latencyBounds[len(latencyBounds)-1], true
}
