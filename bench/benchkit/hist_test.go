package benchkit

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsAreContiguous(t *testing.T) {
	var prevHi uint64
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d] maps to %d/%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d, want MaxUint64", prevHi)
	}
}

func TestEmpty(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Percentile(50) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
}

func TestSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{50, 50}, {99, 99}, {1, 1}, {100, 100}, {0, 1}, {99.5, 100}} {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if h.Mean() != 50.5 || h.Min() != 1 || h.Max() != 100 || h.Count() != 100 {
		t.Errorf("mean %v min %d max %d n %d", h.Mean(), h.Min(), h.Max(), h.Count())
	}
}

// Percentiles must agree with an exact sorted sample within the bucket
// resolution (1/64 relative) for a wide, skewed distribution.
func TestPercentilesAgainstSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 0, 200000)
	for range 200000 {
		v := int64(math.Exp(r.NormFloat64()*2+7)) + 1 // ~ 1 µs .. seconds
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, p := range []float64{1, 10, 50, 90, 99, 99.9, 99.99} {
		rank := int(math.Ceil(p / 100 * float64(len(vals))))
		want := vals[rank-1]
		got := h.Percentile(p)
		if diff := math.Abs(float64(got-want)) / float64(want); diff > 1.0/64 {
			t.Errorf("p%v = %d, exact %d (rel err %.4f)", p, got, want, diff)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestMergeAndNegative(t *testing.T) {
	var a, b, all Histogram
	for v := int64(-5); v < 5000; v++ {
		all.Record(v)
		if v%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	a.Merge(&Histogram{})
	if a.Count() != all.Count() || a.Min() != 0 || a.Max() != 4999 {
		t.Fatalf("merged n=%d min=%d max=%d", a.Count(), a.Min(), a.Max())
	}
	for _, p := range []float64{50, 90, 99} {
		if a.Percentile(p) != all.Percentile(p) {
			t.Errorf("p%v merged %d, direct %d", p, a.Percentile(p), all.Percentile(p))
		}
	}
}

func TestHugeValue(t *testing.T) {
	var h Histogram
	h.Record(math.MaxInt64)
	if h.Percentile(50) != math.MaxInt64 {
		t.Fatalf("p50 = %d", h.Percentile(50))
	}
}

func TestFormatMicros(t *testing.T) {
	for us, want := range map[int64]string{0: "0µs", 999: "999µs", 1250: "1.25ms", 12_500: "12.5ms", 12_345_678: "12.3s"} {
		if got := FormatMicros(us); got != want {
			t.Errorf("FormatMicros(%d) = %q, want %q", us, got, want)
		}
	}
}
