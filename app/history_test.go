package app

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"switchyard/metrics"
)

var t0 = time.Date(2022, 1, 5, 12, 0, 0, 0, time.UTC)

func TestHashrate(t *testing.T) {
	cases := []struct {
		name          string
		diff, seconds float64
		want          float64
	}{
		{"difficulty 1 per second is 2^32 H/s", 1, 1, 4294967296},
		{"1000 difficulty over 10s", 1000, 10, 429496729600},
		// An S19 at 100 TH/s for 10 s accrues 1e15 / 2^32 difficulty.
		{"100 TH/s farm", 1e15 / 4294967296, 10, 1e14},
		{"no time", 5, 0, 0},
		{"negative time", 5, -1, 0},
		{"no difficulty", 0, 10, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Hashrate(c.diff, c.seconds)
			if math.Abs(got-c.want) > 1e-9*c.want || (c.want == 0 && got != 0) {
				t.Errorf("Hashrate(%g, %g) = %g, want %g", c.diff, c.seconds, got, c.want)
			}
		})
	}
}

// points returns the series of pool in v, or fails.
func points(t *testing.T, v HistoryView, pool string) [][2]float64 {
	t.Helper()
	for _, s := range v.Series {
		if s.Pool == pool {
			return s.Points
		}
	}
	t.Fatalf("no series for %s in %+v", pool, v.Series)
	return nil
}

func TestHistoryRates(t *testing.T) {
	h := NewHistory(10*time.Second, 30*time.Minute)
	h.Record(t0, map[string]float64{"primary": 0, "backup": 0})
	if v := h.Snapshot(nil); len(v.Series) != 0 {
		t.Fatalf("one reading made samples: %+v", v)
	}
	// 10s later: primary got 1000 difficulty, backup nothing.
	h.Record(t0.Add(10*time.Second), map[string]float64{"primary": 1000, "backup": 0})
	// 5s later (a late tick): primary 500 more → same hashrate over half the time.
	h.Record(t0.Add(15*time.Second), map[string]float64{"primary": 1500, "backup": 0})
	// 10s later: primary restarted (removed and added again) at 300; a new
	// pool "lte" appeared with 50; backup vanished.
	h.Record(t0.Add(25*time.Second), map[string]float64{"primary": 300, "lte": 50})

	v := h.Snapshot([]string{"primary", "backup"})
	if v.IntervalSeconds != 10 || v.WindowSeconds != 1800 {
		t.Errorf("interval %v window %v", v.IntervalSeconds, v.WindowSeconds)
	}
	var names []string
	for _, s := range v.Series {
		names = append(names, s.Pool)
	}
	if want := []string{"primary", "backup", "lte"}; !reflect.DeepEqual(names, want) {
		t.Errorf("series order %v, want %v", names, want)
	}
	ts := func(s int) float64 { return float64(t0.Add(time.Duration(s) * time.Second).Unix()) }
	want := map[string][][2]float64{
		"primary": {{ts(10), 429496729600}, {ts(15), 429496729600}, {ts(25), 128849018880}},
		"backup":  {{ts(10), 0}, {ts(15), 0}},
		"lte":     {{ts(25), 21474836480}},
	}
	for pool, w := range want {
		if got := points(t, v, pool); !reflect.DeepEqual(got, w) {
			t.Errorf("%s points %v, want %v", pool, got, w)
		}
	}
}

func TestHistoryIgnoresBadReadings(t *testing.T) {
	h := NewHistory(10*time.Second, time.Minute)
	h.Record(t0, map[string]float64{"p": 100})
	// The clock stepped back: no sample, only a new baseline.
	h.Record(t0.Add(-time.Second), map[string]float64{"p": 200})
	// Same instant: no sample.
	h.Record(t0.Add(-time.Second), map[string]float64{"p": 200})
	if v := h.Snapshot(nil); len(v.Series) != 0 {
		t.Fatalf("samples from a clock going back: %+v", v)
	}
	h.Record(t0.Add(9*time.Second), map[string]float64{"p": 210, "nan": math.NaN(), "neg": -1, "inf": math.Inf(1)})
	v := h.Snapshot(nil)
	if len(v.Series) != 1 || v.Series[0].Pool != "p" {
		t.Fatalf("bad totals made series: %+v", v.Series)
	}
	if got := v.Series[0].Points[0][1]; got != 4294967296 { // 10 difficulty in 10 s
		t.Errorf("rate after baseline reset = %v, want 4294967296", got)
	}
	if _, err := json.Marshal(v); err != nil {
		t.Errorf("snapshot does not encode: %v", err)
	}
}

func TestHistoryRingKeepsNewest(t *testing.T) {
	h := NewHistory(10*time.Second, 30*time.Second) // 3 samples
	for i := 0; i <= 5; i++ {                       // 6 readings, 5 samples
		// Difficulty grows by i each step: sample i has rate i·2^32/10.
		h.Record(t0.Add(time.Duration(i)*10*time.Second), map[string]float64{"p": float64(i * (i + 1) / 2)})
	}
	got := points(t, h.Snapshot(nil), "p")
	want := [][2]float64{
		{float64(t0.Unix() + 30), 3 * 4294967296 / 10.0},
		{float64(t0.Unix() + 40), 4 * 4294967296 / 10.0},
		{float64(t0.Unix() + 50), 5 * 4294967296 / 10.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ring = %v, want %v", got, want)
	}
	// And keeps going round.
	h.Record(t0.Add(60*time.Second), map[string]float64{"p": 15})
	if got := points(t, h.Snapshot(nil), "p"); len(got) != 3 || got[0][0] != float64(t0.Unix()+40) || got[2] != [2]float64{float64(t0.Unix() + 60), 0} {
		t.Errorf("after one more reading: %v", got)
	}
}

func TestHistoryCapacity(t *testing.T) {
	cases := []struct {
		name             string
		interval, window time.Duration
		want             int
	}{
		{"defaults", 0, 0, 180},
		{"10s over 30m", 10 * time.Second, 30 * time.Minute, 180},
		{"tiny interval is capped", time.Millisecond, 30 * time.Minute, 1024},
		{"interval past the window keeps two", time.Hour, time.Minute, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NewHistory(c.interval, c.window).capacity(); got != c.want {
				t.Errorf("capacity = %d, want %d", got, c.want)
			}
		})
	}
}

func TestSumByPool(t *testing.T) {
	m := metrics.New(nil).ForRoute(metrics.DefaultRoute)
	m.InitPool("a")
	m.InitPool("b")
	m.ForwardedDifficulty.WithLabelValues("a").Add(1.5)
	m.ForwardedDifficulty.WithLabelValues("b").Add(4)
	m.PoolVerdicts.WithLabelValues("a", metrics.ResultAccepted, "").Add(7)
	m.PoolVerdicts.WithLabelValues("a", metrics.ResultLost, "submit_timeout").Add(2)
	m.PoolVerdicts.WithLabelValues("a", metrics.ResultLost, "upstream_down").Add(1)

	if got := sumByPool(m.ForwardedDifficulty, nil); !reflect.DeepEqual(got, map[string]float64{"a": 1.5, "b": 4}) {
		t.Errorf("forwarded difficulty = %v", got)
	}
	lost := sumByPool(m.PoolVerdicts, func(l map[string]string) bool { return l["result"] == metrics.ResultLost })
	if !reflect.DeepEqual(lost, map[string]float64{"a": 3}) {
		t.Errorf("lost = %v, want a: 3", lost)
	}
	m.ForgetPool("b")
	if got := sumByPool(m.ForwardedDifficulty, nil); !reflect.DeepEqual(got, map[string]float64{"a": 1.5}) {
		t.Errorf("after forgetting b = %v", got)
	}
	if got := sumByPool(m.ForwardedDifficulty, nil); len(got) != 1 {
		t.Errorf("reading recreated a series: %v", got)
	}
}
