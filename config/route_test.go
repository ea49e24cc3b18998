package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// routePools is appended to the route snippets below, after their own
// lines, so that line numbers in the cases count from the snippet's start.
const routePools = `
[[pool]]
name = "alpha-main"
url = "stratum+tcp://a.example.com:3333"
user = "alpha.farm"

[[pool]]
name = "alpha-second"
url = "stratum+tcp://b.example.com:3333"
user = "alpha.farm"

[[pool]]
name = "farm-backup"
url = "stratum+tcp://c.example.com:3333"
user = "farm.backup"
`

// problems parses src and returns every problem it has, formatted.
func problems(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse([]byte(src), "config.toml")
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse() error is %T, want *Error: %v", err, err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.Error())
	}
	return out
}

// TestRouteProblems: every rule on [[route]] tables, each problem with its
// exact message, key and line, and nothing else reported.
func TestRouteProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string   // routePools is appended
		want []string // every problem, exactly
	}{
		{name: "valid routes",
			toml: "[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\", \"alpha-second\"]\nbackup = \"farm-backup\"\n" +
				"[[route]]\nname = \"farm_2\"\npools = [\"farm-backup\"]\nworker_mode = \"per-worker\""},

		// Names.
		{name: "name missing", toml: "[[route]]\npools = [\"alpha-main\"]",
			want: []string{`config.toml:1: route[0].name: required: a unique name such as "alpha", the route label in logs and metrics`}},
		{name: "name with capitals", toml: "[[route]]\nname = \"Alpha\"\npools = [\"alpha-main\"]",
			want: []string{`config.toml:2: route[0].name: must be 1 to 32 of a-z 0-9 _ - (got "Alpha")`}},
		{name: "name too long", toml: "[[route]]\nname = \"" + strings.Repeat("a", 33) + "\"\npools = [\"alpha-main\"]",
			want: []string{`config.toml:2: route[0].name: must be 1 to 32 of a-z 0-9 _ - (got "` + strings.Repeat("a", 33) + `")`}},
		{name: "name twice",
			toml: "[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\"]\n[[route]]\nname = \"alpha\"\npools = [\"alpha-second\"]",
			want: []string{`config.toml:6: route[1].name: "alpha" is already the name of route[0]`}},

		// Pools.
		{name: "pools missing", toml: "[[route]]\nname = \"alpha\"",
			want: []string{`config.toml:1: route[0].pools: required: at least one [[pool]] name, such as ["alpha-main"]`}},
		{name: "pools empty", toml: "[[route]]\nname = \"alpha\"\npools = []",
			want: []string{`config.toml:3: route[0].pools: required: at least one [[pool]] name, such as ["alpha-main"]`}},
		{name: "unknown pool", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\", \"alpah-main\"]",
			want: []string{`config.toml:3: route[0].pools[1]: no [[pool]] named "alpah-main" (pools: alpha-main, alpha-second, farm-backup)`}},
		{name: "unknown pool on its own line", toml: "[[route]]\nname = \"alpha\"\npools = [\n  \"alpha-main\", # the main one\n  \"alpah-main\",\n]",
			want: []string{`config.toml:5: route[0].pools[1]: no [[pool]] named "alpah-main" (pools: alpha-main, alpha-second, farm-backup)`}},
		{name: "unknown backup", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\nbackup = \"nope\"",
			want: []string{`config.toml:4: route[0].backup: no [[pool]] named "nope" (pools: alpha-main, alpha-second, farm-backup)`}},
		{name: "unknown backup in a list", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\nbackup = [\"farm-backup\", \"nope\"]",
			want: []string{`config.toml:4: route[0].backup[1]: no [[pool]] named "nope" (pools: alpha-main, alpha-second, farm-backup)`}},
		{name: "pool twice in pools", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\", \"alpha-main\"]",
			want: []string{`config.toml:3: route[0].pools[1]: "alpha-main" is already in this route, as route[0].pools[0]`}},
		{name: "pool also a backup", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\nbackup = \"alpha-main\"",
			want: []string{`config.toml:4: route[0].backup: "alpha-main" is already in this route, as route[0].pools[0]`}},
		{name: "a pool in two routes is fine (a shared backup)",
			toml: "[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\"]\nbackup = \"farm-backup\"\n" +
				"[[route]]\nname = \"beta\"\npools = [\"alpha-second\"]\nbackup = [\"farm-backup\"]"},
		{name: "pool name of the wrong type", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\", 3]",
			want: []string{`config.toml:3: route[0].pools[1]: expected a string (got integer 3)`}},
		{name: "pools as a string", toml: "[[route]]\nname = \"alpha\"\npools = \"alpha-main\"",
			want: []string{`config.toml:3: route[0].pools: expected an array of strings, such as ["a", "b"] (got string "alpha-main")`}},

		// Workers.
		{name: "empty worker pattern", toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\", \"\"]\npools = [\"alpha-main\"]",
			want: []string{`config.toml:3: route[0].workers[1]: must not be empty: a pattern such as "alpha.*" ('*' any run of characters, '?' one)`}},
		{name: "bracket in a worker pattern", toml: "[[route]]\nname = \"alpha\"\nworkers = [\"rack[1-3].*\"]\npools = [\"alpha-main\"]",
			want: []string{`config.toml:3: route[0].workers[0]: '[' is not supported: '*' matches any run of characters, '?' one, anything else itself (got "rack[1-3].*")`}},
		{name: "workers as a string", toml: "[[route]]\nname = \"alpha\"\nworkers = \"alpha.*\"\npools = [\"alpha-main\"]",
			want: []string{`config.toml:3: route[0].workers: expected an array of strings, such as ["a", "b"] (got string "alpha.*")`}},

		// Listen.
		{name: "listen without port", toml: "[[route]]\nname = \"alpha\"\nlisten = \"3334\"\npools = [\"alpha-main\"]",
			want: []string{`config.toml:3: route[0].listen: must be host:port, such as "0.0.0.0:3334" (got "3334")`}},
		{name: "bad second listen", toml: "[[route]]\nname = \"alpha\"\nlisten = [\"0.0.0.0:3334\",\n  \"0.0.0.0:x\"]\npools = [\"alpha-main\"]",
			want: []string{`config.toml:4: route[0].listen[1]: port must be a number from 0 to 65535 (got "x")`}},
		{name: "listen as a number", toml: "[[route]]\nname = \"alpha\"\nlisten = 3334\npools = [\"alpha-main\"]",
			want: []string{`config.toml:3: route[0].listen: expected a string or an array of strings, such as "a" or ["a", "b"] (got integer 3334)`}},
		{name: "wildcard and a specific address on one port",
			toml: "[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\nlisten = [\"0.0.0.0:3335\", \"10.0.0.1:3334\"]\npools = [\"alpha-second\"]",
			want: []string{`config.toml:7: route[1].listen[1]: "10.0.0.1:3334" and "0.0.0.0:3334" (route[0].listen) cannot both be bound: the same port, and one of them is every address; write the same address in every route (got "10.0.0.1:3334")`}},
		{name: "a specific address on server.listen's port",
			toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\nlisten = \"127.0.0.1:3333\"\npools = [\"alpha-second\"]",
			want: []string{`config.toml:6: route[1].listen: "127.0.0.1:3333" and "0.0.0.0:3333" (server.listen) cannot both be bound: the same port, and one of them is every address; write the same address in every route (got "127.0.0.1:3333")`}},
		{name: "two specific addresses on one port are fine",
			toml: "[[route]]\nname = \"alpha\"\nlisten = \"10.0.0.1:3333\"\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\nlisten = \"10.0.0.2:3333\"\npools = [\"alpha-second\"]"},
		{name: "metrics on a route's port",
			toml: "[metrics]\nlisten = \"127.0.0.1:3334\"\n[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\"]",
			want: []string{`config.toml:2: metrics.listen: must differ from route[0].listen ("0.0.0.0:3334") (got "127.0.0.1:3334")`}},
		{name: "metrics on server.listen that no route uses is fine",
			toml: "[metrics]\nlisten = \"0.0.0.0:3333\"\n[[route]]\nname = \"alpha\"\nlisten = \"0.0.0.0:3334\"\npools = [\"alpha-main\"]"},

		// Overlaps.
		{name: "patterns that overlap",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\"]\npools = [\"alpha-main\"]\n[[route]]\nname = \"s19\"\nworkers = [\"rack?.*\", \"*.s19\"]\npools = [\"alpha-second\"]",
			want: []string{`config.toml:3: route[0].workers[0]: "alpha.*" overlaps route[1].workers[1] "*.s19" on 0.0.0.0:3333 (both match "alpha.s19")`}},
		{name: "patterns that cannot overlap",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\"]\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\nworkers = [\"beta.*\", \"alpha\"]\npools = [\"alpha-second\"]\n" +
				"[[route]]\nname = \"rest\"\npools = [\"farm-backup\"]"},
		{name: "patterns overlap on a shared listener only",
			toml: "[[route]]\nname = \"alpha\"\nlisten = [\"0.0.0.0:3334\", \"0.0.0.0:3335\"]\nworkers = [\"a*\"]\npools = [\"alpha-main\"]\n" +
				"[[route]]\nname = \"beta\"\nlisten = [\"0.0.0.0:3336\", \"0.0.0.0:3335\"]\nworkers = [\"*b\"]\npools = [\"alpha-second\"]\n" +
				"[[route]]\nname = \"gamma\"\nlisten = [\"0.0.0.0:3334\", \"0.0.0.0:3335\", \"0.0.0.0:3336\"]\npools = [\"farm-backup\"]",
			want: []string{`config.toml:4: route[0].workers[0]: "a*" overlaps route[1].workers[0] "*b" on 0.0.0.0:3335 (both match "ab")`}},
		{name: "overlap reported once for routes sharing two listeners",
			toml: "[[route]]\nname = \"alpha\"\nlisten = [\"0.0.0.0:3334\", \"0.0.0.0:3335\"]\nworkers = [\"*\"]\npools = [\"alpha-main\"]\n" +
				"[[route]]\nname = \"beta\"\nlisten = [\"0.0.0.0:3334\", \"0.0.0.0:3335\"]\nworkers = [\"??\"]\npools = [\"alpha-second\"]",
			want: []string{`config.toml:4: route[0].workers[0]: "*" overlaps route[1].workers[0] "??" on 0.0.0.0:3334 (both match "xx")`}},
		{name: "two catch-alls on one listener",
			toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\npools = [\"alpha-second\"]",
			want: []string{`config.toml:4: route[1].workers: not set, so route[1] (beta) takes every worker on 0.0.0.0:3333, as route[0] (alpha) already does: set workers on one of them, or give one its own listen`}},
		{name: "a pattern route and a catch-all share a listener",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"*\"]\npools = [\"alpha-main\"]\n[[route]]\nname = \"rest\"\npools = [\"alpha-second\"]"},

		// Worker mode.
		{name: "bad worker_mode", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\nworker_mode = \"per_worker\"",
			want: []string{`config.toml:4: route[0].worker_mode: must be "aggregate" or "per-worker" (got "per_worker")`}},

		// Shape.
		{name: "unknown key in a route", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\npool = \"x\"",
			want: []string{`config.toml:4: route[0].pool: unknown key (did you mean "pools"?)`}},
		{name: "route as a single table", toml: "[route]\nname = \"alpha\"",
			want: []string{`config.toml:1: route: expected [[route]] tables, with double brackets (got a table)`}},
		{name: "index is not a key", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\"]\nIndex = 1",
			want: []string{`config.toml:4: route[0].Index: unknown key; known keys here: name, listen, workers, pools, backup, worker_mode`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.toml+"\n"+routePools)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestWeightProblems: within a route (without routes, among all pools)
// the pools of one priority all have a weight or none has; backups do not
// count.
func TestWeightProblems(t *testing.T) {
	pool := func(name string, prio, weight int) string {
		return fmt.Sprintf("[[pool]]\nname = %q\nurl = \"stratum+tcp://%s.example.com:3333\"\nuser = \"u\"\npriority = %d\nweight = %d\n", name, name, prio, weight)
	}
	pools := pool("a", 0, 70) + pool("b", 0, 30) + pool("c", 0, 0) + pool("d", 5, 0) // lines 1, 7, 13, 19
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{name: "no routes: mixed weights in one priority", toml: pools,
			want: []string{`config.toml:18: pool[2].weight: must be more than 0, like a (70) and b (30) of the same priority (0): the pools of a priority all have a weight (a split) or none has (failover in order) (got 0)`}},
		{name: "no routes: a weight left out counts as 0",
			toml: pool("a", 0, 70) + "[[pool]]\nname = \"b\"\nurl = \"stratum+tcp://b.example.com:3333\"\nuser = \"u\"\n",
			want: []string{`config.toml:7: pool[1].weight: must be more than 0, like a (70) of the same priority (0): the pools of a priority all have a weight (a split) or none has (failover in order) (got 0)`}},
		{name: "no routes: every pool of a priority weighted", toml: pool("a", 0, 70) + pool("b", 0, 30) + pool("c", 1, 0)},
		{name: "no routes: none weighted", toml: pool("a", 0, 0) + pool("b", 0, 0)},
		{name: "route: mixed weights",
			toml: pools + "[[route]]\nname = \"alpha\"\npools = [\"d\", \"c\", \"a\"]\n[[route]]\nname = \"beta\"\nlisten = \"0.0.0.0:3334\"\npools = [\"c\", \"b\"]",
			want: []string{`config.toml:18: pool[2].weight: must be more than 0, like a (70) of the same priority (0) in route[0] (alpha): the pools of a priority all have a weight (a split) or none has (failover in order) (got 0)`}},
		{name: "route: a split and an unweighted backup",
			toml: pools + "[[route]]\nname = \"alpha\"\npools = [\"a\", \"b\"]\nbackup = [\"c\", \"d\"]"},
		{name: "route: the other priority's pool has no weight",
			toml: pools + "[[route]]\nname = \"alpha\"\npools = [\"a\", \"d\"]\nbackup = \"c\"\n[[route]]\nname = \"beta\"\nlisten = \"0.0.0.0:3334\"\npools = [\"b\"]\nbackup = \"c\""},
		{name: "negative weight is its own problem",
			toml: pool("a", 0, 70) + pool("b", 0, -1),
			want: []string{`config.toml:12: pool[1].weight: must be 0 (off) or more (got -1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.toml)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		toml string // routePools is appended
		want []string
	}{
		{name: "no routes", toml: ""},
		{name: "pools in no route",
			toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-second\"]",
			want: []string{
				`config.toml:5: pool[0]: "alpha-main" is in no route: nothing will mine on it`,
				`config.toml:15: pool[2]: "farm-backup" is in no route: nothing will mine on it`,
			}},
		{name: "a backup is in a route", toml: "[[route]]\nname = \"alpha\"\npools = [\"alpha-main\", \"alpha-second\"]\nbackup = \"farm-backup\""},
		{name: "patterns leave workers without a route",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\"]\npools = [\"alpha-main\"]\n[[route]]\nname = \"beta\"\nworkers = [\"rack*.s19\", \"beta?\"]\npools = [\"alpha-second\", \"farm-backup\"]\n" +
				"[[route]]\nname = \"gamma\"\nlisten = \"0.0.0.0:3334\"\npools = [\"farm-backup\"]",
			want: []string{`config.toml:3: route[0].workers: 0.0.0.0:3333 has no route for a worker matching none of "alpha.*", "rack*.s19", "beta?": such a miner is refused at mining.authorize; a route on 0.0.0.0:3333 without workers takes them`}},
		{name: "a catch-all takes the rest",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\"]\npools = [\"alpha-main\"]\n[[route]]\nname = \"rest\"\npools = [\"alpha-second\", \"farm-backup\"]"},
		{name: "patterns that take every name",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"alpha.*\", \"*\"]\npools = [\"alpha-main\", \"alpha-second\", \"farm-backup\"]"},
		{name: "one character or more leaves the empty name",
			toml: "[[route]]\nname = \"alpha\"\nworkers = [\"?*\"]\npools = [\"alpha-main\", \"alpha-second\", \"farm-backup\"]",
			want: []string{`config.toml:3: route[0].workers: 0.0.0.0:3333 has no route for a worker matching none of "?*": such a miner is refused at mining.authorize; a route on 0.0.0.0:3333 without workers takes them`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml+"\n"+routePools), "config.toml")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.Warnings() {
				got = append(got, w.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestGlobsCoverAll(t *testing.T) {
	tests := []struct {
		patterns []string
		want     bool
	}{
		{[]string{"*"}, true},
		{[]string{"**"}, true},
		{[]string{"?*"}, false},
		{[]string{"?*", "*"}, true},
		{[]string{"*?"}, false},
		{[]string{"a*", "*"}, true},
		{[]string{"??*", "?", "*a"}, false}, // the empty name
		{[]string{"??*", "?", "x*"}, false},
		{[]string{"a*", "b*", "?"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := globsCoverAll(tt.patterns); got != tt.want {
			t.Errorf("globsCoverAll(%q) = %v, want %v", tt.patterns, got, tt.want)
		}
	}
}

func TestRouteSpecs(t *testing.T) {
	t.Run("no routes", func(t *testing.T) {
		c, err := Parse([]byte("[server]\nlisten = \"0.0.0.0:4000\"\nworker_mode = \"per-worker\"\n"+routePools+"priority = -1\n"), "c.toml")
		if err != nil {
			t.Fatal(err)
		}
		specs := c.RouteSpecs()
		if len(specs) != 1 {
			t.Fatalf("RouteSpecs() = %+v, want one", specs)
		}
		s := specs[0]
		if s.Name != DefaultRoute || s.Index != -1 || !reflect.DeepEqual(s.Listen, []string{"0.0.0.0:4000"}) ||
			s.Workers != nil || s.Backups != 0 || s.WorkerMode != WorkerModePerWorker || !reflect.DeepEqual(s.Pools, c.Pools) {
			t.Errorf("default route = %+v", s)
		}
		if names := poolNames(s.Pools); !reflect.DeepEqual(names, []string{"farm-backup", "alpha-main", "alpha-second"}) {
			t.Errorf("default route's pools = %q, ranked as c.Pools", names)
		}
		if ls := c.Listeners(); !reflect.DeepEqual(ls, []string{"0.0.0.0:4000"}) {
			t.Errorf("Listeners() = %q", ls)
		}
		if ws := c.Warnings(); ws != nil {
			t.Errorf("Warnings() = %v", ws)
		}
	})
	t.Run("routes", func(t *testing.T) {
		src := routePools + `
[[pool]]
name = "late"
url = "stratum+tcp://d.example.com:3333"
user = "u"
priority = 3

[[route]]
name = "alpha"
listen = ["0.0.0.0:3334", "0.0.0.0:3335"]
pools = ["late", "alpha-second", "alpha-main"]
backup = ["farm-backup", "alpha-main-2"]

[[route]]
name = "beta"
listen = "0.0.0.0:3335"
workers = ["beta.*"]
pools = ["alpha-main"]
worker_mode = "per-worker"
`
		src += "\n[[pool]]\nname = \"alpha-main-2\"\nurl = \"stratum+tcp://e.example.com:3333\"\nuser = \"u\"\n"
		c, err := Parse([]byte(src), "c.toml")
		if err != nil {
			t.Fatal(err)
		}
		specs := c.RouteSpecs()
		if len(specs) != 2 {
			t.Fatalf("RouteSpecs() = %+v", specs)
		}
		a, b := specs[0], specs[1]
		if a.Name != "alpha" || a.Index != 0 || !reflect.DeepEqual(a.Listen, []string{"0.0.0.0:3334", "0.0.0.0:3335"}) || a.Workers != nil ||
			a.Backups != 2 || a.WorkerMode != WorkerModeAggregate {
			t.Errorf("alpha = %+v", a)
		}
		if names := poolNames(a.Pools); !reflect.DeepEqual(names, []string{"alpha-second", "alpha-main", "late", "farm-backup", "alpha-main-2"}) {
			t.Errorf("alpha's pools = %q: by priority, then the route's order, then the backups", names)
		}
		tiers := a.Tiers()
		var got [][]string
		for _, tr := range tiers {
			got = append(got, poolNames(tr))
		}
		if want := [][]string{{"alpha-second", "alpha-main"}, {"late"}, {"farm-backup"}, {"alpha-main-2"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("alpha's tiers = %q, want %q", got, want)
		}
		if b.Name != "beta" || b.Index != 1 || !reflect.DeepEqual(b.Workers, []string{"beta.*"}) || b.Backups != 0 ||
			b.WorkerMode != WorkerModePerWorker || !reflect.DeepEqual(poolNames(b.Pools), []string{"alpha-main"}) {
			t.Errorf("beta = %+v", b)
		}
		if ls := c.Listeners(); !reflect.DeepEqual(ls, []string{"0.0.0.0:3334", "0.0.0.0:3335"}) {
			t.Errorf("Listeners() = %q", ls)
		}
		// The spec is a copy: changing it leaves the Config as it was.
		a.Workers = append(a.Workers, "x")
		a.Listen[0] = "changed"
		if c.Routes[0].Listen[0] != "0.0.0.0:3334" || c.Routes[0].Workers != nil {
			t.Errorf("RouteSpecs shares its slices with the Config")
		}
	})
}

func poolNames(ps []Pool) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestRouter(t *testing.T) {
	listeners := []string{"0.0.0.0:3333", "0.0.0.0:3334", "0.0.0.0:3335"}
	routes := []RouteSpec{
		{Name: "rest", Listen: []string{"0.0.0.0:3333"}},
		{Name: "alpha", Listen: []string{"0.0.0.0:3333", "0.0.0.0:3334"}, Workers: []string{"alpha.*", "*.alpha"}},
		{Name: "s19", Listen: []string{"0.0.0.0:3333"}, Workers: []string{"rack??.s19-*"}},
		{Name: "elsewhere", Listen: []string{"192.0.2.1:1"}},
		{Name: "exact", Listen: []string{"0.0.0.0:3333"}, Workers: []string{"solo", "odd\uFFFD*"}},
	}
	r := NewRouter(listeners, routes)
	tests := []struct {
		listener int
		worker   string
		route    int
		ok       bool
	}{
		{0, "alpha.rack1", 1, true},
		{0, "rack1.alpha", 1, true},
		{0, "rack12.s19-004", 2, true},
		{0, "rack1.s19-004", 0, true}, // one character short: the catch-all
		{0, "", 0, true},
		{0, "beta.rack1", 0, true},
		{0, "solo", 4, true},
		{0, "solo2", 0, true},
		{0, "odd\xff.1", 4, true}, // U+FFFD is any byte that is not UTF-8, as in GlobMatch
		{0, "odd.1", 0, true},
		{1, "alpha.rack1", 1, true},
		{1, "beta.rack1", -1, false}, // patterns only on 3334
		{1, "alpha", -1, false},
		{2, "alpha.rack1", -1, false}, // no route on 3335
		{3, "alpha.rack1", -1, false},
		{-1, "alpha.rack1", -1, false},
	}
	for _, tt := range tests {
		route, ok := r.Match(tt.listener, tt.worker)
		if route != tt.route || ok != tt.ok {
			t.Errorf("Match(%d, %q) = %d, %v; want %d, %v", tt.listener, tt.worker, route, ok, tt.route, tt.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { r.Match(0, "rack12.s19-004") }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func BenchmarkRouterMatch(b *testing.B) {
	routes := []RouteSpec{{Name: "rest", Listen: []string{"l"}}}
	for i := range 20 {
		routes = append(routes, RouteSpec{Name: fmt.Sprint(i), Listen: []string{"l"}, Workers: []string{fmt.Sprintf("customer%02d.*", i), fmt.Sprintf("*.c%02d", i)}})
	}
	r := NewRouter([]string{"l"}, routes)
	b.ReportAllocs()
	for b.Loop() {
		r.Match(0, "customer19.rack7.s19-042")
	}
}

func TestListenerFor(t *testing.T) {
	ap := netip.MustParseAddrPort
	bound := []netip.AddrPort{ap("0.0.0.0:3333"), ap("192.0.2.1:3334"), ap("[::]:3334"), ap("127.0.0.1:3335"), ap("192.0.2.7:3333")}
	tests := []struct {
		local string
		want  int
		ok    bool
	}{
		{"192.0.2.9:3333", 0, true},
		{"192.0.2.7:3333", 4, true}, // its own address first
		{"192.0.2.1:3334", 1, true},
		{"[::ffff:192.0.2.1]:3334", 1, true},
		{"[2001:db8::1]:3334", 2, true},
		{"192.0.2.2:3334", 2, true},
		{"127.0.0.1:3335", 3, true},
		{"127.0.0.2:3335", -1, false},
		{"192.0.2.1:4000", -1, false},
	}
	for _, tt := range tests {
		got, ok := ListenerFor(bound, ap(tt.local))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ListenerFor(%s) = %d, %v; want %d, %v", tt.local, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything.at.all", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "é", true}, // one character, two bytes
		{"??", "é", false},
		{"alpha.*", "alpha.", true},
		{"alpha.*", "alpha.rack1", true},
		{"alpha.*", "alpha", false},
		{"alpha.*", "xalpha.rack1", false},
		{"*.s19", "rack1.s19", true},
		{"*.s19", "rack1.s19x", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYc!", false},
		{"*a*a*a", "aaa", true},
		{"*a*a*a", "aa", false},
		{"rack??.*", "rack12.s19", true},
		{"rack??.*", "rack1.s19", false},
		{"[x]", "[x]", true}, // no classes: a '[' is itself
		{`a\*`, `a\b`, true}, // no escapes
		{"é*", "éclair", true},
		{"*é", "café", true},
		{"*é", "cafe", false},
		{"?", "\xff", true}, // a byte that is not UTF-8 is one character
		{"\uFFFD", "\xff", true},
		{"A*", "alpha", false}, // case matters
	}
	for _, tt := range tests {
		if got := GlobMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("GlobMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestGlobsOverlap(t *testing.T) {
	tests := []struct {
		a, b    string
		example string
		ok      bool
	}{
		{"alpha.*", "*.s19", "alpha.s19", true},
		{"alpha.*", "beta.*", "", false},
		{"alpha.*", "alpha", "", false},
		{"alpha*", "alpha", "alpha", true},
		{"*", "*", "x", true}, // not empty when it can be
		{"", "*", "", true},
		{"", "?", "", false},
		{"?", "??", "", false},
		{"a*", "*b", "ab", true},
		{"*a*", "*b*", "ba", true},
		{"a?c", "?b?", "abc", true},
		{"rack?.*", "*.s19", "rackx.s19", true},
		{"x*y", "*z", "", false},
		{"*ab", "ba*", "bab", true},
		{"é*", "*?é", "éé", true},
		{"a*a*a", "aa", "", false},
	}
	for _, tt := range tests {
		for _, swap := range []bool{false, true} {
			a, b := tt.a, tt.b
			if swap {
				a, b = b, a
			}
			ex, ok := GlobsOverlap(a, b)
			if ok != tt.ok || (ok && len([]rune(ex)) != len([]rune(tt.example))) {
				t.Errorf("GlobsOverlap(%q, %q) = %q, %v; want %v and an example as long as %q", a, b, ex, ok, tt.ok, tt.example)
			}
			if !swap && ok && ex != tt.example {
				t.Errorf("GlobsOverlap(%q, %q) = %q, want %q", a, b, ex, tt.example)
			}
			if ok && (!GlobMatch(a, ex) || !GlobMatch(b, ex)) {
				t.Errorf("GlobsOverlap(%q, %q) = %q, which does not match both", a, b, ex)
			}
		}
	}
}

// TestGlobsOverlapExact checks GlobsOverlap against brute force: for every
// pair of patterns of up to 3 characters from {a, b, *, ?}, it finds a
// common name exactly when one of the names of up to 6 characters from
// {a, b, x} matches both, and one of the shortest (non-empty when one
// is). Those names suffice: a shortest common name has at most one
// character per literal and '?' of the two patterns, and a character
// neither pattern names can be x.
func TestGlobsOverlapExact(t *testing.T) {
	patterns := words("ab*?", 3)
	names := words("abx", 6)
	for _, a := range patterns {
		for _, b := range patterns {
			best := -1
			for _, n := range names {
				if GlobMatch(a, n) && GlobMatch(b, n) {
					l := len(n)
					if l == 0 {
						l = 100 // non-empty first
					}
					if best < 0 || l < best {
						best = l
					}
				}
			}
			ex, ok := GlobsOverlap(a, b)
			if ok != (best >= 0) {
				t.Fatalf("GlobsOverlap(%q, %q) = %q, %v; brute force found a common name: %v", a, b, ex, ok, best >= 0)
			}
			if !ok {
				continue
			}
			l := len(ex)
			if l == 0 {
				l = 100
			}
			if l != best {
				t.Errorf("GlobsOverlap(%q, %q) = %q, but a common name of length %d exists", a, b, ex, best)
			}
			if !GlobMatch(a, ex) || !GlobMatch(b, ex) {
				t.Errorf("GlobsOverlap(%q, %q) = %q, which does not match both", a, b, ex)
			}
		}
	}
}

// words returns every string of up to n characters from alphabet.
func words(alphabet string, n int) []string {
	out := []string{""}
	level := []string{""}
	for range n {
		var next []string
		for _, w := range level {
			for _, c := range alphabet {
				next = append(next, w+string(c))
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// FuzzGlobsOverlap: when GlobsOverlap finds a name, both patterns match it;
// when it finds none, no name made from one of the patterns (each '*' as
// nothing or a run of 'x', each '?' as 'x') matches both. And a Router
// with the pattern matches as GlobMatch does.
func FuzzGlobsOverlap(f *testing.F) {
	f.Add("alpha.*", "*.s19")
	f.Add("a*b*c", "*c?b*")
	f.Add("é?*", "*\xff")
	f.Add("", "*")
	f.Add("rack??.*", "rack1?.s19-*")
	f.Add("odd\uFFFD*", "odd\xff*")
	f.Add("a*b?c", "ab")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 64 || len(b) > 64 {
			return
		}
		r := NewRouter([]string{"l"}, []RouteSpec{{Listen: []string{"l"}, Workers: []string{a}}})
		for _, n := range []string{b, a, a + b, b + a} {
			if _, ok := r.Match(0, n); ok != GlobMatch(a, n) {
				t.Fatalf("Router with %q: Match(%q) = %v, GlobMatch %v", a, n, ok, !ok)
			}
		}
		ex, ok := GlobsOverlap(a, b)
		if ok {
			if !GlobMatch(a, ex) || !GlobMatch(b, ex) {
				t.Fatalf("GlobsOverlap(%q, %q) = %q, which does not match both", a, b, ex)
			}
			if ex == "" && (strings.ContainsAny(a, "*") && strings.ContainsAny(b, "*")) {
				t.Fatalf("GlobsOverlap(%q, %q) = \"\", but a name of one 'x' matches both stars", a, b)
			}
			return
		}
		for _, p := range [][2]string{{a, b}, {b, a}} {
			for _, star := range []string{"", "x", "xxxx"} {
				n := strings.ReplaceAll(strings.ReplaceAll(p[0], "*", star), "?", "x")
				if GlobMatch(p[0], n) && GlobMatch(p[1], n) { // not always p[0]'s: "\xee*\xa8" without its '*' is one character
					t.Fatalf("GlobsOverlap(%q, %q) found nothing, but both match %q", a, b, n)
				}
			}
		}
	})
}
