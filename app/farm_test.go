package app

import (
	"testing"
	"time"
)

func TestFarmHistoryRates(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	f := NewFarmHistory(time.Minute)
	// 25 hours at a steady 1000 difficulty a second credited, read every
	// 10 s; 1 share in 100 rejected, 1 in 200 lost.
	var cur FarmReading
	for s := 0; s <= 25*3600; s += 10 {
		cur = FarmReading{At: t0.Add(time.Duration(s) * time.Second), Credited: 1000 * float64(s),
			Accepted: 0.985 * float64(s), Rejected: 0.01 * float64(s), Lost: 0.005 * float64(s)}
		f.Record(cur)
	}
	if n := len(f.ring); n != 24*60+1 {
		t.Errorf("ring holds %d readings, want %d (one a minute for 24 h)", n, 24*60+1)
	}
	want := Hashrate(1000, 1)
	for _, r := range f.Rates(cur) {
		if r.CoveredSeconds != r.WindowSeconds {
			t.Errorf("window %v s covers %v s", r.WindowSeconds, r.CoveredSeconds)
		}
		if d := r.HashrateHs/want - 1; d > 1e-9 || d < -1e-9 {
			t.Errorf("window %v s: %v H/s, want %v", r.WindowSeconds, r.HashrateHs, want)
		}
		if d := r.RejectRatio - 0.01; d > 1e-9 || d < -1e-9 {
			t.Errorf("window %v s: reject ratio %v", r.WindowSeconds, r.RejectRatio)
		}
		if d := r.LostRatio - 0.005; d > 1e-9 || d < -1e-9 {
			t.Errorf("window %v s: lost ratio %v", r.WindowSeconds, r.LostRatio)
		}
	}

	// Fresh: every window covers the time since the first reading.
	f = NewFarmHistory(time.Minute)
	f.Record(FarmReading{At: t0})
	f.Record(FarmReading{At: t0.Add(30 * time.Second), Credited: 99}) // inside the step: not kept
	rates := f.Rates(FarmReading{At: t0.Add(90 * time.Second), Credited: 90})
	for _, r := range rates {
		if r.CoveredSeconds != 90 || r.HashrateHs != Hashrate(90, 90) {
			t.Errorf("window %v s after 90 s: covered %v, %v H/s", r.WindowSeconds, r.CoveredSeconds, r.HashrateHs)
		}
	}
	if r := NewFarmHistory(0).Rates(FarmReading{At: t0}); r[0].CoveredSeconds != 0 || r[0].HashrateHs != 0 {
		t.Errorf("no readings: %+v", r[0])
	}
}
