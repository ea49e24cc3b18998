package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// byDot groups by the first "."-separated field, as group_by = "prefix:1".
func byDot(w string) string {
	if w == "" {
		return "(unnamed)"
	}
	g, _, _ := strings.Cut(w, ".")
	return g
}

// fixedRows is a small farm: healthy miners on two racks, one silent, one
// rejecting, one never authorized.
func fixedRows() []MinerRow {
	ok := func(w, remote string, hs float64, acc uint64) MinerRow {
		return MinerRow{Worker: w, Remote: remote, Agent: "cgminer/4.12", Difficulty: 1024, HashrateHs: hs,
			Submitted: acc, Accepted: acc, LastShare: t0.Add(-5 * time.Second), ConnectedSecs: 3600}
	}
	rows := []MinerRow{
		ok("rack1.a", "10.0.0.1:4000", 100e12, 900),
		ok("rack1.b", "10.0.0.2:4000", 110e12, 950),
		ok("rack2.a", "10.0.1.1:4000", 90e12, 800),
		ok("rack2.b", "10.0.1.2:4000", 95e12, 850),
	}
	silent := ok("rack2.silent", "10.0.1.3:4000", 80e12, 100)
	silent.LastShare = t0.Add(-10 * time.Minute)
	rejecting := ok("rack1.bad", "10.0.0.9:4000", 50e12, 60)
	rejecting.Submitted, rejecting.Rejected = 100, 40
	unnamed := MinerRow{Remote: "10.0.9.9:5000", ConnectedSecs: 2}
	return append(rows, silent, rejecting, unnamed)
}

func index(rows []MinerRow) *MinerIndex {
	return NewMinerIndex(func() []MinerRow { return slices.Clone(rows) }, ProblemRules{Target: 10 * time.Second}, byDot)
}

func workers(p MinerPage) []string {
	var out []string
	for _, r := range p.Rows {
		out = append(out, r.Worker)
	}
	return out
}

func TestMinerQuery(t *testing.T) {
	x := index(fixedRows())
	tests := []struct {
		name    string
		query   string
		want    []string
		matched int
	}{
		{"problems first, then by worker", "", []string{"rack1.bad", "rack2.silent", "", "rack1.a", "rack1.b", "rack2.a", "rack2.b"}, 7},
		{"limit and offset", "limit=2&offset=3", []string{"rack1.a", "rack1.b"}, 7},
		{"offset past the end", "offset=50", nil, 7},
		{"by hashrate, descending", "sort=-hashrate&limit=3", []string{"rack1.b", "rack1.a", "rack2.b"}, 7},
		{"by worker", "sort=worker&limit=3", []string{"", "rack1.a", "rack1.b"}, 7},
		{"by reject ratio, descending", "sort=-reject_ratio&limit=1", []string{"rack1.bad"}, 7},
		{"search any case", "q=RACK2", []string{"rack2.silent", "rack2.a", "rack2.b"}, 3},
		{"search the address", "q=10.0.0.", []string{"rack1.bad", "rack1.a", "rack1.b"}, 3},
		{"search the agent", "q=cgminer&limit=1", []string{"rack1.bad"}, 6},
		{"one group", "group=rack1&sort=worker", []string{"rack1.a", "rack1.b", "rack1.bad"}, 3},
		{"problems only", "problems=1", []string{"rack1.bad", "rack2.silent"}, 2},
		{"nothing matches", "q=nope", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q, err := ParseMinerQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			p := x.Query(q, t0)
			if got := workers(p); !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q", got, tt.want)
			}
			if p.Matched != tt.matched || p.Connected != 7 {
				t.Errorf("matched %d of %d, want %d of 7", p.Matched, p.Connected, tt.matched)
			}
		})
	}
}

func TestMinerProblems(t *testing.T) {
	x := index(fixedRows())
	p := x.Query(MinerQuery{Limit: 100}, t0)
	got := map[string][]string{}
	for _, r := range p.Rows {
		if len(r.Problems) > 0 {
			got[r.Worker] = r.Problems
		}
	}
	want := map[string][]string{"rack2.silent": {ProblemNoShares}, "rack1.bad": {ProblemRejecting}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("problems %v, want %v", got, want)
	}
	if p.Problems != 2 || p.Mining != 5 {
		t.Errorf("problems %d, mining %d; want 2 and 5", p.Problems, p.Mining)
	}
	if c := x.Census(t0); c != (Census{Connected: 7, Mining: 5, Idle: 2, Problems: 2}) {
		t.Errorf("census %+v", c)
	}

	cases := []struct {
		name string
		row  MinerRow
		want []string
	}{
		{"just connected, no share yet", MinerRow{Worker: "w", ConnectedSecs: 20}, nil},
		{"connected 3x target, no share", MinerRow{Worker: "w", ConnectedSecs: 31}, []string{ProblemNoShares}},
		{"slow miner at its own pace", MinerRow{Worker: "w", ConnectedSecs: 3600, Difficulty: 1024, HashrateHs: 1024 * hashesPerDifficulty / 60,
			LastShare: t0.Add(-150 * time.Second), Submitted: 60, Accepted: 60}, nil},
		{"slow miner past 3x its pace", MinerRow{Worker: "w", ConnectedSecs: 3600, Difficulty: 1024, HashrateHs: 1024 * hashesPerDifficulty / 60,
			LastShare: t0.Add(-190 * time.Second), Submitted: 60, Accepted: 60}, []string{ProblemNoShares}},
		{"rejects below the threshold", MinerRow{Worker: "w", ConnectedSecs: 60, LastShare: t0, Submitted: 100, Accepted: 95, Rejected: 5}, nil},
		{"rejects above the threshold", MinerRow{Worker: "w", ConnectedSecs: 60, LastShare: t0, Submitted: 100, Accepted: 94, Rejected: 6}, []string{ProblemRejecting}},
		{"too few shares to judge", MinerRow{Worker: "w", ConnectedSecs: 60, LastShare: t0, Submitted: 10, Rejected: 9}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := index([]MinerRow{c.row})
			p := x.Query(MinerQuery{Limit: 1}, t0)
			if got := p.Rows[0].Problems; !slices.Equal(got, c.want) {
				t.Errorf("problems %v, want %v", got, c.want)
			}
		})
	}
}

func TestMinerGroups(t *testing.T) {
	x := index(fixedRows())
	p := x.Query(MinerQuery{Limit: 0}, t0)
	var got []string
	for _, g := range p.Groups {
		got = append(got, fmt.Sprintf("%s:%d/%d/%d", g.Name, g.Miners, g.Mining, g.Problems))
	}
	// Groups with problems first, then by name.
	if want := []string{"rack1:3/3/1", "rack2:3/2/1", "(unnamed):1/0/0"}; !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	if p.GroupCount != 3 || len(p.Rows) != 0 {
		t.Errorf("group_count %d, %d rows", p.GroupCount, len(p.Rows))
	}
	if g := p.Groups[0]; g.HashrateHs != 260e12 || g.Accepted != 1910 || g.Rejected != 40 {
		t.Errorf("rack1 sums %+v", g)
	}

	// Many groups: the page lists MaxMinerGroups, and the one asked for.
	var rows []MinerRow
	for i := range 300 {
		rows = append(rows, MinerRow{Worker: fmt.Sprintf("r%03d.m", i), LastShare: t0, ConnectedSecs: 60})
	}
	p = index(rows).Query(MinerQuery{Limit: 10, Group: "r250", GroupSet: true}, t0)
	if p.GroupCount != 300 || len(p.Groups) != MaxMinerGroups+1 || p.Groups[MaxMinerGroups].Name != "r250" {
		t.Errorf("group_count %d, %d groups listed, last %q", p.GroupCount, len(p.Groups), p.Groups[len(p.Groups)-1].Name)
	}
	if got := workers(p); !slices.Equal(got, []string{"r250.m"}) {
		t.Errorf("rows of group r250: %v", got)
	}

	// A new rule applies to the next snapshot.
	x.SetGroupBy(func(string) string { return "all" })
	if p := x.Query(MinerQuery{}, t0); p.GroupCount != 1 || p.Groups[0].Name != "all" || p.Groups[0].Miners != 7 {
		t.Errorf("after SetGroupBy: %+v", p.Groups)
	}
}

// TestMinerReconnectLoop: a worker that keeps coming back from the same
// address on new connections is a problem miner; one that stays, or a
// farm that grows, is not.
func TestMinerReconnectLoop(t *testing.T) {
	var rows []MinerRow
	x := NewMinerIndex(func() []MinerRow { return slices.Clone(rows) }, ProblemRules{}, nil)
	steady := MinerRow{Worker: "steady", Remote: "10.0.0.1:1000", ConnectedSecs: 1000, LastShare: t0}
	now := t0
	for i := range 6 {
		// "flappy" reconnects between every two observations: a new port, a
		// connection younger than the interval.
		flappy := MinerRow{Worker: "flappy", Remote: fmt.Sprintf("10.0.0.2:%d", 2000+i), ConnectedSecs: 1, LastShare: now}
		steady.ConnectedSecs += 5
		rows = []MinerRow{steady, flappy}
		for k := range i { // a rack powering on: one more miner each time
			rows = append(rows, MinerRow{Worker: "grow", Remote: "10.0.0.3:" + fmt.Sprint(3000+k), ConnectedSecs: float64(5 * (i - k)), LastShare: now})
		}
		x.Observe(now)
		now = now.Add(5 * time.Second)
	}
	p := x.Query(MinerQuery{Limit: 100, Sort: "worker"}, now.Add(-5*time.Second))
	for _, r := range p.Rows {
		switch r.Worker {
		case "flappy":
			if r.Reconnects != 5 || !slices.Contains(r.Problems, ProblemReconnecting) {
				t.Errorf("flappy: %d reconnects, problems %v; want 5 and reconnecting", r.Reconnects, r.Problems)
			}
		default:
			if r.Reconnects != 0 || len(r.Problems) != 0 {
				t.Errorf("%s %s: %d reconnects, problems %v", r.Worker, r.Remote, r.Reconnects, r.Problems)
			}
		}
	}
	// Past the window the count decays and the key is forgotten once gone.
	rows = []MinerRow{steady}
	x.Observe(now.Add(11 * time.Minute))
	x.Observe(now.Add(22 * time.Minute))
	x.mu.Lock()
	n := len(x.tracked)
	x.mu.Unlock()
	if n != 1 {
		t.Errorf("tracker keeps %d keys, want 1 (steady)", n)
	}
}

func TestParseMinerQuery(t *testing.T) {
	tests := []struct {
		query string
		want  MinerQuery
		err   string
	}{
		{"", MinerQuery{Limit: DefaultMinerLimit, Sort: "problems"}, ""},
		{"limit=10&offset=20&sort=-hashrate&q=rack&problems=true&group=",
			MinerQuery{Limit: 10, Offset: 20, Sort: "-hashrate", Q: "rack", ProblemsOnly: true, GroupSet: true}, ""},
		{"limit=5000", MinerQuery{}, "limit must be a whole number from 0 to 1000 (got \"5000\")"},
		{"offset=-1", MinerQuery{}, "offset must be a whole number from 0"},
		{"sort=speed", MinerQuery{}, "sort must be one of problems, worker,"},
		{"problems=maybe", MinerQuery{}, "problems must be 1, true, 0 or false"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q, err := ParseMinerQuery(v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrBadQuery) {
					t.Errorf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || q != tt.want {
				t.Errorf("ParseMinerQuery = %+v, %v; want %+v", q, err, tt.want)
			}
		})
	}
}

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		s, sub string
		want   bool
	}{{"Rack7.S19", "rack7.s", true}, {"rack", "", true}, {"ab", "abc", false}, {"xAbC", "abc", true}, {"abd", "abc", false}} {
		if got := containsFold(c.s, c.sub); got != c.want {
			t.Errorf("containsFold(%q, %q) = %v", c.s, c.sub, got)
		}
	}
}

// FakeMinerRows makes n rows like a farm's: racks of 50, a few problem
// miners among them.
func fakeMinerRows(n int, now time.Time) []MinerRow {
	rows := make([]MinerRow, n)
	for i := range rows {
		r := &rows[i]
		r.Worker = fmt.Sprintf("rack%03d.s19-%05d", i/50, i)
		r.Remote = fmt.Sprintf("10.%d.%d.%d:4028", i>>16&255, i>>8&255, i&255)
		r.Agent = "bmminer/2.0.0"
		r.Difficulty = 65536
		r.HashrateHs = 100e12 + float64(i%97)*1e11
		r.Accepted = uint64(1000 + i%500)
		r.Submitted = r.Accepted
		r.LastShare = now.Add(-time.Duration(i%20) * time.Second)
		r.ConnectedSecs = 86400
		r.Lane = i % 8
		r.Extranonce1 = fmt.Sprintf("%04x", i&0xffff)
		if i%1000 == 7 {
			r.Rejected = r.Accepted / 5
			r.Submitted += r.Rejected
		}
	}
	return rows
}

// BenchmarkMinerQuery100k is one page of /api/v1/miners at 100,000
// miners, JSON-encoded: "fresh" from the snapshot a refresh shares with
// the status request, "snapshot" with the snapshot rebuilt (annotated,
// grouped), as the first request of a refresh does. BenchmarkMinerObserve
// is the reconnect tracking the app runs every history interval.
func BenchmarkMinerQuery100k(b *testing.B) {
	now := time.Now()
	rows := fakeMinerRows(100_000, now)
	for _, bc := range []struct{ name, query string }{
		{"default", "limit=50"},
		{"sort=-hashrate", "limit=50&sort=-hashrate"},
		{"sort=worker&offset=50000", "limit=50&sort=worker&offset=50000"},
		{"q=rack01", "limit=50&q=rack01"},
	} {
		for _, fresh := range []bool{true, false} {
			name := bc.name + "/snapshot"
			if fresh {
				name = bc.name + "/fresh"
			}
			b.Run(name, func(b *testing.B) {
				v, _ := url.ParseQuery(bc.query)
				q, _ := ParseMinerQuery(v)
				x := NewMinerIndex(func() []MinerRow { return slices.Clone(rows) }, ProblemRules{}, byDot)
				x.Observe(now)
				b.ReportAllocs()
				var size int
				for b.Loop() {
					if !fresh {
						x.mu.Lock()
						x.snap = nil
						x.mu.Unlock()
					}
					body, err := json.Marshal(x.Query(q, now))
					if err != nil {
						b.Fatal(err)
					}
					size = len(body)
				}
				b.ReportMetric(float64(size), "bytes/page")
			})
		}
	}
}

func BenchmarkMinerObserve100k(b *testing.B) {
	now := time.Now()
	rows := fakeMinerRows(100_000, now)
	x := NewMinerIndex(func() []MinerRow { return slices.Clone(rows) }, ProblemRules{}, byDot)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Second)
		x.Observe(now)
	}
}
