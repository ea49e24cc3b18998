package stratum

import (
	"math"
	"testing"
	"time"
)

func TestRetarget(t *testing.T) {
	const aim = 10 * time.Second
	tests := []struct {
		name     string
		cur      float64
		shares   int
		elapsed  time.Duration
		min, max float64
		want     float64
	}{
		{"on target", 1000, 10, 100 * time.Second, 1, 1e12, 1000},
		{"too fast", 1000, 30, 100 * time.Second, 1, 1e12, 3000},
		{"far too fast: step capped x4", 1000, 100, 100 * time.Second, 1, 1e12, 4000},
		{"too slow", 1000, 5, 100 * time.Second, 1, 1e12, 500},
		{"far too slow: step capped /4", 1000, 1, 100 * time.Second, 1, 1e12, 250},
		{"no shares at all", 1000, 0, 100 * time.Second, 1, 1e12, 250},
		{"small change up ignored (+20%)", 1000, 12, 100 * time.Second, 1, 1e12, 1000},
		{"small change down ignored (-20%)", 1000, 8, 100 * time.Second, 1, 1e12, 1000},
		{"change of 30% made", 1000, 13, 100 * time.Second, 1, 1e12, 1300},
		{"clamped to max", 1000, 30, 100 * time.Second, 1, 2000, 2000},
		{"clamped to min", 1000, 1, 100 * time.Second, 512, 1e12, 512},
		{"at min and too slow: stays", 512, 1, 100 * time.Second, 512, 1e12, 512},
		{"below min, on target: raised to min", 100, 10, 100 * time.Second, 512, 1e12, 512},
		{"above max, small change: lowered to max", 5000, 10, 100 * time.Second, 1, 4096, 4096},
		{"below one", 0.01, 40, 100 * time.Second, 0.001, 1e12, 0.04},
		{"huge", 1e12, 30, 100 * time.Second, 0, 0, 3e12},
		{"no bounds", 1e12, 100, 100 * time.Second, 0, 0, 4e12},
		{"nothing elapsed: unchanged", 1000, 10, 0, 1, 1e12, 1000},
		{"negative shares: unchanged", 1000, -1, 100 * time.Second, 1, 1e12, 1000},
		{"cur zero: min", 0, 10, 100 * time.Second, 64, 1e12, 64},
		{"cur NaN: min", math.NaN(), 10, 100 * time.Second, 64, 1e12, 64},
		{"cur +Inf: min", math.Inf(1), 10, 100 * time.Second, 64, 1e12, 64},
		{"cur zero, no min: 1", 0, 10, 100 * time.Second, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Retarget(tt.cur, tt.shares, tt.elapsed, aim, tt.min, tt.max)
			if math.Abs(got-tt.want) > 1e-9*tt.want {
				t.Fatalf("Retarget(%g, %d, %v, %v, %g, %g) = %g, want %g",
					tt.cur, tt.shares, tt.elapsed, aim, tt.min, tt.max, got, tt.want)
			}
		})
	}
	if got := Retarget(1000, 30, 100*time.Second, 0, 1, 1e12); got != 1000 {
		t.Fatalf("target 0: Retarget = %g, want cur", got)
	}
}

// TestRetargetConverges runs a miner of fixed hashrate through repeated
// retargets: it must settle near one share per aim and then stay put.
func TestRetargetConverges(t *testing.T) {
	const (
		aim    = 10 * time.Second
		window = 120 * time.Second
		// Shares per second at difficulty 1 for this miner.
		rate = 6553.6
	)
	d := 1.0
	var last []float64
	for i := 0; i < 12; i++ {
		shares := int(rate / d * window.Seconds()) // expected count, no noise
		d = Retarget(d, shares, window, aim, 1, 1e12)
		last = append(last, d)
	}
	want := rate * aim.Seconds()
	if math.Abs(d-want) > 0.3*want {
		t.Fatalf("settled at %g, want about %g (path %v)", d, want, last)
	}
	if last[len(last)-1] != last[len(last)-2] {
		t.Fatalf("still moving after 12 retargets: %v", last)
	}
}
