package main

import (
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP switchyard_shares_total Shares.
# TYPE switchyard_shares_total counter
switchyard_shares_total{reason="",result="accepted"} 12
switchyard_shares_total{reason="stale",result="rejected"} 3
switchyard_shares_total{reason="no_upstream",result="lost"} 2
switchyard_pool_state{pool="p0",state="live"} 1
weird{a="x\"y\\z",b="1"} 5e+06
go_goroutines 27
`
	m, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"switchyard_shares_total", nil, 17},
		{"switchyard_shares_total", []string{"result", "rejected"}, 3},
		{"switchyard_shares_total", []string{"result", "lost", "reason", "no_upstream"}, 2},
		{"switchyard_pool_state", []string{"pool", "p0", "state", "live"}, 1},
		{"switchyard_pool_state", []string{"pool", "p1"}, 0},
		{"weird", []string{"a", `x"y\z`}, 5e6},
		{"go_goroutines", nil, 27},
	} {
		if got := m.sum(tc.name, tc.labels...); got != tc.want {
			t.Errorf("sum(%s %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	by := m.byLabel("switchyard_shares_total", "reason", "result", "rejected")
	if len(by) != 1 || by["stale"] != 3 {
		t.Errorf("byLabel = %v", by)
	}
	for _, bad := range []string{"nonumber", `x{a="1"`, `x{a=1} 2`, "x{} "} {
		if _, err := parseMetrics(bad); err == nil {
			t.Errorf("parseMetrics(%q): no error", bad)
		}
	}
}

func TestMinerLedger(t *testing.T) {
	l := &minerLedger{m: map[string]*minerCount{}}
	for _, line := range []string{
		`{"worker":"soak.0","result":"accepted"}`,
		`{"worker":"soak.0","result":"rejected","reason":"stale"}`,
		`{"worker":"soak.1","result":"lost","reason":"disconnect"}`,
		`{"worker":"soak.0","result":"accepted"}`,
	} {
		if _, err := l.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	m := l.snapshot()
	if c := m["soak.0"]; c == nil || c.submitted != 3 || c.accepted != 2 || c.rejected["stale"] != 1 || c.lost != 0 {
		t.Errorf("soak.0: %+v", c)
	}
	if c := m["soak.1"]; c == nil || c.submitted != 1 || c.lost != 1 {
		t.Errorf("soak.1: %+v", c)
	}
}
