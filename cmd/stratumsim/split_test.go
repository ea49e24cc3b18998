package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/config"
)

func TestParseClasses(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "big=1:1,mid=1:0.1,small=1:0.01", want: "[{big 1 1} {mid 1 0.1} {small 1 0.01}]"},
		{in: " big=1:10 , small=4:1 ", want: "[{big 1 10} {small 4 1}]"},
		{in: "", err: "no classes"},
		{in: "big=1", err: "want name=count-weight"},
		{in: "=1:1", err: "want name=count-weight"},
		{in: "a.b=1:1", err: "a name without"},
		{in: "big=0:1", err: "count weight > 0"},
		{in: "big=1:-1", err: "rate > 0"},
		{in: "big=x:1", err: "rate > 0"},
		{in: "big=1:1,big=2:2", err: "the name big twice"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseClasses(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseClasses(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != tc.want {
				t.Fatalf("parseClasses(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFleetClassesDivision(t *testing.T) {
	for _, tc := range []struct {
		classes string
		n       int
		want    string // miners per class
	}{
		{"big=1:1,mid=1:0.1,small=1:0.01", 2000, "[667 667 666]"},
		{"big=1:1,small=4:0.1", 5, "[1 4]"},
		{"big=1:1,mid=1:0.1,small=1:0.01", 5, "[2 2 1]"},
		{"big=1:1,mid=1:0.1,small=1:0.01", 1, "[1 0 0]"},
		{"a=3:1,b=1:1", 10, "[8 2]"}, // 7.5 and 2.5: the tie goes to the earlier class
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.classes, tc.n), func(t *testing.T) {
			specs, err := parseClasses(tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			cs := fleetClasses(specs, tc.n)
			var got []int
			total := 0
			for i, c := range cs {
				got = append(got, c.Miners)
				total += c.Miners
				if c.User != specs[i].name || c.MaxSharesPerSecond != specs[i].rate {
					t.Fatalf("class %d = %+v, spec %+v", i, c, specs[i])
				}
			}
			if fmt.Sprint(got) != tc.want || total != tc.n {
				t.Fatalf("miners %v (total %d), want %s", got, total, tc.want)
			}
		})
	}
}

func TestParseWeights(t *testing.T) {
	for in, want := range map[string]string{"70,30": "[70 30]", "0,0": "[0 0]", "70,0": "error", "70": "error", "a,b": "error", "-1,2": "error"} {
		w, err := parseWeights(in)
		got := fmt.Sprint(w)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("parseWeights(%q) = %s (%v), want %s", in, got, err, want)
		}
	}
}

// creditSeries builds samples every 100 ms over secs seconds, pool rates (per
// second) from rate.
func creditSeries(t0 time.Time, secs float64, rate func(s float64) [numSplitPools]float64) []creditSample {
	var ss []creditSample
	var acc [numSplitPools]float64
	for i := 0; float64(i)/10 <= secs; i++ {
		s := float64(i) / 10
		if i > 0 {
			r := rate(s)
			for k := range acc {
				acc[k] += r[k] / 10
			}
		}
		ss = append(ss, creditSample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), credited: acc})
	}
	return ss
}

func TestFirstSustained(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// A carries everything until 10 s, then B does; A returns at 30 s.
	ss := creditSeries(t0, 60, func(s float64) [numSplitPools]float64 {
		switch {
		case s <= 10:
			return [numSplitPools]float64{70, 30, 0}
		case s <= 30:
			return [numSplitPools]float64{0, 100, 0}
		case s <= 40:
			return [numSplitPools]float64{50, 50, 0} // converging
		}
		return [numSplitPools]float64{70, 30, 0}
	})
	takeover := func(d [numSplitPools]float64, secs float64) bool { return d[poolB]/secs >= 95 }
	inSplit := func(d [numSplitPools]float64, _ float64) bool {
		a, _, _ := fractions(d)
		return a >= 0.68 && a <= 0.72
	}
	for _, tc := range []struct {
		name      string
		from      time.Time
		w, hold   time.Duration
		ok        func([numSplitPools]float64, float64) bool
		want      time.Duration
		wantFound bool
	}{
		// The forward window [t, t+2s] has ≥ 95 % of 100/s from B once
		// less than 5 % of it lies before 10 s: t ≥ 9.9 s.
		{"takeover", t0.Add(5 * time.Second), 2 * time.Second, 5 * time.Second, takeover, 4900 * time.Millisecond, true},
		// [t, t+2s] is 50/50 before 40 s and 70/30 after: A's fraction
		// reaches 0.68 at t = 39.8 s.
		{"split back", t0.Add(30 * time.Second), 2 * time.Second, 5 * time.Second, inSplit, 9800 * time.Millisecond, true},
		{"already in split", t0, 2 * time.Second, 5 * time.Second, inSplit, 0, true},
		// A hold longer than what is left of the series is not shown.
		{"hold past the end", t0.Add(30 * time.Second), 2 * time.Second, 30 * time.Second, inSplit, 0, false},
		{"never", t0, time.Second, time.Second, func([numSplitPools]float64, float64) bool { return false }, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := firstSustained(ss, tc.from, tc.w, tc.hold, tc.ok)
			if found != tc.wantFound || (found && (got-tc.want).Abs() > 150*time.Millisecond) {
				t.Fatalf("firstSustained = %s, %v; want %s, %v", got, found, tc.want, tc.wantFound)
			}
		})
	}
}

func TestSplitPhaseFlushed(t *testing.T) {
	r := &splitRun{weights: [2]int{70, 30}}
	a := splitSnap{at: time.Unix(0, 0), moves: 3}
	b := splitSnap{at: time.Unix(60, 0), moves: 13, credited: [numSplitPools]float64{690, 310, 0}}
	a.fleet.Submits, b.fleet.Submits = 100, 1100
	b.fleet.Accepted = 990
	b.fleet.Rejected = map[string]uint64{"pool_switched": 6, "stale": 2}
	b.fleet.Lost = 1
	b.fleet.Unsubmitted = map[string]uint64{"stale": 1}
	p := r.phase("x", a, b)
	if p.Moves != 10 || p.Submits != 1000 || p.Flushed != 10 || p.FlushedFraction != 10.0/1001 {
		t.Fatalf("moves %v submits %d flushed %d (%v)", p.Moves, p.Submits, p.Flushed, p.FlushedFraction)
	}
	if p.FractionA != 0.69 || p.FractionB != 0.31 || fmt.Sprintf("%.4f", p.ErrorA) != "-0.0100" || p.FractionC != 0 {
		t.Fatalf("fractions %v %v %v error %v", p.FractionA, p.FractionB, p.FractionC, p.ErrorA)
	}
	if row := p.row(); strings.Count(row, "|") != strings.Count(strings.SplitN(splitTableHeader, "\n", 2)[0], "|") {
		t.Errorf("row %q does not fit the header", row)
	}
}

// TestSplitConfig checks the run's config with the config package: the
// pools, their weights and priorities, the route.
func TestSplitConfig(t *testing.T) {
	text := splitConfig("127.0.0.1:3333", "127.0.0.1:9333", [numSplitPools]string{"127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"},
		[2]int{70, 30}, []string{"big.*", "small.*"}, 1e-8, 20*time.Second, 5*time.Second)
	c, err := config.Parse([]byte(text), "split.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(c.Pools) != 3 || c.Pools[0].Weight != 70 || c.Pools[1].Weight != 30 || c.Pools[2].Priority != 10 ||
		c.Difficulty.Initial != 1e-8 || c.Difficulty.Min != 1e-8 || c.Difficulty.Max != 1e-8 {
		t.Fatalf("parsed %+v", c)
	}
	rs := c.RouteSpecs()
	if len(rs) != 1 || rs[0].Name != splitRoute || fmt.Sprint(rs[0].Workers) != "[big.* small.*]" ||
		fmt.Sprint(rs[0].Listen) != "[127.0.0.1:3333]" || rs[0].Backups != 1 {
		t.Fatalf("routes %+v", rs)
	}
	var tiers []string
	for _, tier := range rs[0].Tiers() {
		var names []string
		for _, p := range tier {
			names = append(names, fmt.Sprintf("%s/%d", p.Name, p.Weight))
		}
		tiers = append(tiers, strings.Join(names, "+"))
	}
	if got := strings.Join(tiers, " "); got != "A/70+B/30 C/0" {
		t.Fatalf("tiers %s, want A/70+B/30 C/0", got)
	}
}

// TestSplitRun runs the scenario briefly against a freshly built binary:
// A and B both credited in the steady phase, B alone takes the work when A
// goes dark while C, the backup, credits nothing. It checks what happened,
// not how fast or how exact.
func TestSplitRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs switchyard")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchyard")
	build := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("switchyard does not build now (another package mid-edit?): %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "check.toml")
	text := splitConfig("127.0.0.1:1", "127.0.0.1:2", [numSplitPools]string{"127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"},
		[2]int{70, 30}, []string{"big.*"}, 1e-8, time.Second, time.Second)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "-config", cfg).CombinedOutput(); err != nil {
		t.Skipf("switchyard check does not accept [[route]] with weights yet: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	err := runSplit(t.Context(), []string{"-switchyard", bin, "-out", out, "-miners", "24",
		"-classes", "big=1:20,mid=1:2,small=1:0.2", "-ramp", "200ms", "-warmup", "500ms", "-duration", "2s", "-interval", "1s",
		"-dark-for", "3s", "-return-for", "1s", "-failback-after", "500ms", "-backoff-max", "500ms",
		"-job-interval", "5s", "-window", "500ms", "-hold", "500ms", "-limit", "1m"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "split.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep splitReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	phases := map[string]splitPhase{}
	for _, p := range rep.Phases {
		phases[p.Name] = p
	}
	steady, dark, back := phases["steady"], phases["dark"], phases["return"]
	if len(rep.Phases) != 4 || len(rep.Intervals) != 2 {
		t.Fatalf("%d phases, %d intervals: %s", len(rep.Phases), len(rep.Intervals), b)
	}
	if steady.Credited[poolA] <= 0 || steady.Credited[poolB] <= 0 || steady.Credited[poolC] != 0 {
		t.Errorf("steady: credited %v, want A and B, not C", steady.Credited)
	}
	if rep.Takeover < 0 || dark.Credited[poolB] <= 0 {
		t.Errorf("dark: B never took over (credited %v)", dark.Credited)
	}
	if dark.Credited[poolC] != 0 {
		t.Errorf("dark: C credited %g while B was live", dark.Credited[poolC])
	}
	// The split's return takes failback_after and a controller tick
	// (5 s): longer than this test; the benchmark measures it.
	if back.Credited[poolC] != 0 {
		t.Errorf("return: C credited %g", back.Credited[poolC])
	}
	for _, p := range rep.Phases {
		if p.Submits == 0 || len(p.Classes) != 3 {
			t.Errorf("%s: %d submits, %d classes", p.Name, p.Submits, len(p.Classes))
		}
	}
}

func TestTimeline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ss := creditSeries(t0, 5, func(s float64) [numSplitPools]float64 {
		if s <= 3 {
			return [numSplitPools]float64{70, 30, 0}
		}
		return [numSplitPools]float64{0, 100, 0}
	})
	tl := timeline(ss, t0.Add(time.Second), time.Second)
	if len(tl) != 4 {
		t.Fatalf("%d rows, want 4: %v", len(tl), tl)
	}
	for i, want := range [][4]float64{{0, 70, 30, 0}, {1, 70, 30, 0}, {2, 0, 100, 0}, {3, 0, 100, 0}} {
		for k := range want {
			if d := tl[i][k] - want[k]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("row %d = %v, want %v", i, tl[i], want)
			}
		}
	}
}
