package stratum

import (
	"math"
	"time"
)

// Vardiff tuning used by Retarget.
const (
	// RetargetMaxStep bounds one retarget: the difficulty moves at most
	// this factor up or down, so one unlucky window cannot throw a miner
	// far off.
	RetargetMaxStep = 4.0
	// RetargetMinChange is the smallest relative change Retarget makes;
	// smaller ones are share-count noise and would only churn
	// mining.set_difficulty (and the miner's work restarts).
	RetargetMinChange = 0.3
)

// RetargetSignificance is the chance, per tail, that Retarget moves a miner
// whose difficulty is right: it moves only on a share count that a miner
// at the target rate would send less often than this (Poisson). A fixed
// relative dead band alone moves a right miner in most windows: with six
// shares expected, a count off by 30% or more is the common case.
const RetargetSignificance = 0.005

// Retarget returns a miner's next difficulty, aiming at one share per
// target. The miner sent shares shares at difficulty cur over elapsed, so
// at difficulty cur·shares·target/elapsed it would have sent one per
// target. The result:
//
//   - is cur itself while the count is plausible for a miner at the target
//     rate (each Poisson tail at least RetargetSignificance), or differs
//     from cur by less than RetargetMinChange (30%), and cur is within
//     bounds;
//   - otherwise moves at most RetargetMaxStep times up or down (no shares
//     at all is the full step down);
//   - is clamped to [min, max] (min <= 0: no lower bound; max <= 0: no
//     upper bound).
//
// A cur that is not a positive finite number is replaced by min (or 1 when
// min <= 0). With elapsed <= 0, target <= 0 or shares < 0 there is nothing
// to measure and cur comes back (clamped). Retarget keeps no state and
// reads no clock: the caller chooses the window. A longer window tells a
// smaller error apart (with 6 shares expected only a count of 0 or 14 and
// more moves; with 24, 12 or 39).
func Retarget(cur float64, shares int, elapsed, target time.Duration, min, max float64) float64 {
	clamp := func(d float64) float64 {
		if max > 0 && d > max {
			d = max
		}
		if min > 0 && d < min {
			d = min
		}
		return d
	}
	if !(cur > 0) || math.IsInf(cur, 1) {
		if min > 0 {
			return clamp(min)
		}
		return clamp(1)
	}
	if elapsed <= 0 || target <= 0 || shares < 0 {
		return clamp(cur)
	}
	expected := float64(elapsed) / float64(target)
	next := cur * float64(shares) / expected
	next = math.Min(next, cur*RetargetMaxStep)
	next = math.Max(next, cur/RetargetMaxStep)
	next = clamp(next)
	if clamp(cur) == cur && (math.Abs(next-cur) < RetargetMinChange*cur || plausible(shares, expected)) {
		return cur
	}
	return next
}

// plausible reports whether k events are within both Poisson(λ) tails at
// RetargetSignificance: P(X <= k) and P(X >= k) are each at least that.
func plausible(k int, lambda float64) bool {
	if lambda <= 0 {
		return k == 0
	}
	if lambda > 400 {
		// Normal approximation, with continuity correction; the exact sum
		// below would underflow.
		z := 2.5758 // two-sided 1% (0.5% per tail)
		return math.Abs(float64(k)-lambda) <= z*math.Sqrt(lambda)+0.5
	}
	// P(X <= k) and P(X >= k) = 1 - P(X <= k-1), summed in order.
	term := math.Exp(-lambda) // P(X = 0)
	below := 0.0              // P(X <= k-1)
	for i := 0; i < k; i++ {
		below += term
		term *= lambda / float64(i+1)
		if below >= 1-RetargetSignificance {
			return false // P(X >= k) is already too small
		}
	}
	atMost := below + term // P(X <= k)
	return atMost >= RetargetSignificance && 1-below >= RetargetSignificance
}
