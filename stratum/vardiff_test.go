package stratum

import (
	"math"
	"math/rand/v2"
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
		{"too slow", 1000, 50, 1000 * time.Second, 1, 1e12, 500},
		{"too slow, but plausible in a short window: kept", 1000, 5, 100 * time.Second, 1, 1e12, 1000},
		{"6 expected, 2 sent: plausible, kept", 1000, 2, 60 * time.Second, 1, 1e12, 1000},
		{"6 expected, 14 sent: implausible, raised", 1000, 14, 60 * time.Second, 1, 1e12, 1000 * 14.0 / 6},
		{"6 expected, 12 sent: plausible, kept", 1000, 12, 60 * time.Second, 1, 1e12, 1000},
		{"20 expected, 31 sent (+55%): plausible, kept", 1000, 31, 200 * time.Second, 1, 1e12, 1000},
		{"1000 expected, 1400 sent: moved", 1000, 1400, 10000 * time.Second, 1, 1e12, 1400},
		{"far too slow: step capped /4", 1000, 1, 100 * time.Second, 1, 1e12, 250},
		{"no shares at all", 1000, 0, 100 * time.Second, 1, 1e12, 250},
		{"small change up ignored (+20%)", 1000, 12, 100 * time.Second, 1, 1e12, 1000},
		{"small change down ignored (-20%)", 1000, 8, 100 * time.Second, 1, 1e12, 1000},
		{"change of 30% made", 1000, 130, 1000 * time.Second, 1, 1e12, 1300},
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

// TestRetargetSteady: a miner already at the right difficulty keeps it in
// nearly every window. Its share counts are Poisson; a relative dead band
// alone (the 30% of RetargetMinChange) moves it in about half the windows
// of six expected shares, each move restarting work on some firmware.
func TestRetargetSteady(t *testing.T) {
	const (
		aim     = 10 * time.Second
		windows = 20000
	)
	rng := rand.New(rand.NewPCG(7, 11))
	for _, window := range []time.Duration{60 * time.Second, 120 * time.Second, 240 * time.Second} {
		lambda := window.Seconds() / aim.Seconds()
		moved := 0
		for range windows {
			if Retarget(1000, poisson(rng, lambda), window, aim, 1, 1e12) != 1000 {
				moved++
			}
		}
		if frac := float64(moved) / windows; frac > 0.02 {
			t.Errorf("window %v (%.0f shares expected): retargeted in %.1f%% of windows, want under 2%%", window, lambda, 100*frac)
		}
	}
}

// TestRetargetFindsRealChange: a miner whose hashrate fell to a quarter or
// tripled is moved in nearly every window of 24 expected shares.
func TestRetargetFindsRealChange(t *testing.T) {
	const aim = 10 * time.Second
	rng := rand.New(rand.NewPCG(3, 5))
	for _, factor := range []float64{0.25, 3} {
		moved := 0
		const trials = 2000
		for range trials {
			if Retarget(1000, poisson(rng, 24*factor), 240*time.Second, aim, 1, 1e12) != 1000 {
				moved++
			}
		}
		if frac := float64(moved) / trials; frac < 0.9 {
			t.Errorf("hashrate x%g: moved in %.0f%% of windows, want at least 90%%", factor, 100*frac)
		}
	}
}

// poisson draws from Poisson(lambda) by counting exponential gaps.
func poisson(rng *rand.Rand, lambda float64) int {
	k, t := 0, rng.ExpFloat64()
	for t < lambda {
		k++
		t += rng.ExpFloat64()
	}
	return k
}
