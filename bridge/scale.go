package bridge

import (
	"math"
	"strconv"
)

// Numeric helpers shared by the adapters that scale raw device integers
// (Modbus registers, binary serial fields): value = raw × scale + offset,
// shown as the decimal the device meant.

// ScaleDivisor returns n when scale is exactly 1/n for an integer n ≥ 2
// (0.1, 0.01, 0.5, ...), else 0. Dividing by n is correctly rounded where
// multiplying by 0.1 is not (215 * 0.1 = 21.500000000000004, 215 / 10 =
// 21.5).
func ScaleDivisor(scale float64) float64 {
	if math.Abs(scale) >= 1 {
		return 0
	}
	n := 1 / scale
	if n != math.Trunc(n) || math.IsInf(n, 0) || 1/n != scale {
		return 0
	}
	return n
}

// Decimals returns the fewest decimal places of a decimal that reads back
// as f: 0 for 20, 1 for 0.1, 2 for -273.15; 16 when there are more than 15
// (1/3) or f is too large to tell (beyond 2^49 once scaled). A decimal
// N/10^d with N < 2^53 parses to N / 10^d computed in float64 (both exact,
// the division correctly rounded), which is what it checks.
func Decimals(f float64) int {
	for d := 0; d <= 15; d++ {
		pow := math.Pow10(d)
		n := f * pow
		if !(math.Abs(n) < 1<<49) {
			break
		}
		if math.Round(n)/pow == f {
			return d
		}
	}
	return 16
}

// RoundDecimals rounds v, a scaled integer reading, to d decimal places
// (those of its scale and offset): 2981 × 0.1 − 273.15 gives 24.95, not
// 24.950000000000045. It leaves v alone when d is 0 or more than 15, or v
// is too large for float64 to hold it exactly to d places.
func RoundDecimals(v float64, d int) float64 {
	if d == 0 || d > 15 {
		return v
	}
	pow := math.Pow10(d)
	n := v * pow
	if !(math.Abs(n) < 1<<49) {
		return v
	}
	return math.Round(n) / pow
}

// ShortestFloat32 returns the float64 of the shortest decimal that reads
// back as f: 21.3 rather than float64(f) = 21.299999237060547.
func ShortestFloat32(f float32) float64 {
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || float32(x) != f {
		return float64(f)
	}
	return x
}
