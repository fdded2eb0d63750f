// Package benchkit holds the small pieces shared by the benchmark tools
// (cmd/coapload, cmd/mqttcount): a fixed-size latency histogram.
//
// It is benchmark tooling only: the gateway must never import it.
package benchkit

import (
	"math"
	"math/bits"
	"strconv"
)

// Log-linear buckets in the style of HdrHistogram: values below 2^subBits are
// counted exactly; above that every power-of-two range is split into
// 2^(subBits-1) equal buckets, so a bucket is never wider than 1/64 of its
// value (relative error under 1.6%, reported at the bucket midpoint: < 0.8%).
const (
	subBits    = 7
	subCount   = 1 << subBits // 128 exact buckets
	halfCount  = subCount / 2 // buckets per power of two above that
	maxShift   = 64 - subBits // shift for the largest uint64 values
	numBuckets = (maxShift + 2) * halfCount
)

// Histogram counts non-negative int64 values (typically microseconds) in
// bounded memory (about 30 KiB), whatever the number of samples. The zero
// value is ready to use. It is not safe for concurrent use: give each
// goroutine its own and Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	return shift*halfCount + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := i/halfCount - 1
	top := uint64(i - shift*halfCount)
	lo = top << uint(shift)
	hi = lo + (uint64(1) << uint(shift)) - 1
	return lo, hi
}

// Record adds one value; negative values are counted as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the arithmetic mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value at or below which p percent of the samples
// lie (nearest-rank), as the midpoint of its bucket clamped to the observed
// min and max; p is clamped to [0, 100]. It is 0 when the histogram is empty.
func (h *Histogram) Percentile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	if p <= 0 {
		return h.min
	}
	if p >= 100 {
		return h.max
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := int64(lo + (hi-lo)/2)
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// FormatMicros formats a duration given in microseconds for people:
// "850µs", "1.25ms", "12.5ms", "12.3s".
func FormatMicros(us int64) string {
	switch {
	case us >= 10_000_000:
		return strconv.FormatFloat(float64(us)/1e6, 'f', 1, 64) + "s"
	case us >= 10_000:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 1, 64) + "ms"
	case us >= 1_000:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatInt(us, 10) + "µs"
}
