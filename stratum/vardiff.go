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

// Retarget returns a miner's next difficulty, aiming at one share per
// target. The miner sent shares shares at difficulty cur over elapsed, so
// at difficulty cur·shares·target/elapsed it would have sent one per
// target. The result:
//
//   - moves at most RetargetMaxStep times up or down (no shares at all is
//     the full step down);
//   - is clamped to [min, max] (min <= 0: no lower bound; max <= 0: no
//     upper bound);
//   - is cur itself when it differs from cur by less than RetargetMinChange
//     (30%) and cur is within bounds.
//
// A cur that is not a positive finite number is replaced by min (or 1 when
// min <= 0). With elapsed <= 0, target <= 0 or shares < 0 there is nothing
// to measure and cur comes back (clamped). Retarget keeps no state and
// reads no clock: the caller chooses the window, and should let a few
// shares (or a few target intervals) pass before calling, since a window
// of one or two shares is mostly noise.
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
	next := cur * float64(shares) * (float64(target) / float64(elapsed))
	next = math.Min(next, cur*RetargetMaxStep)
	next = math.Max(next, cur/RetargetMaxStep)
	next = clamp(next)
	if clamp(cur) == cur && math.Abs(next-cur) < RetargetMinChange*cur {
		return cur
	}
	return next
}
