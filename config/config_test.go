package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// okPool is appended to snippets that are not about pools, after their own
// lines, so that line numbers in the cases count from the snippet's start.
const okPool = `
[[pool]]
name = "primary"
url = "stratum+tcp://pool.example.com:3333"
user = "account.farm1"
`

func TestDefault(t *testing.T) {
	want := &Config{
		Server: Server{
			Listen:                 "0.0.0.0:3333",
			MaxConnections:         100000,
			MaxConnectionsPerIP:    0,
			MaxLineBytes:           8192,
			AuthTimeout:            Duration(30 * time.Second),
			MaxSubmitsPerSecond:    100,
			MaxPendingWriteBytes:   1048576,
			Extranonce1Size:        2,
			MinPoolExtranonce2Size: 4,
			WorkerMode:             "aggregate",
			EventLoops:             0,
		},
		Difficulty: Difficulty{
			Initial:             65536,
			Min:                 1024,
			Max:                 1e12,
			TargetShareInterval: Duration(10 * time.Second),
			RetargetInterval:    Duration(60 * time.Second),
		},
		Failover: Failover{
			DialTimeout:      Duration(3 * time.Second),
			SubmitTimeout:    Duration(3 * time.Second),
			SubmitTimeoutMin: Duration(500 * time.Millisecond),
			JobTimeout:       Duration(120 * time.Second),
			Keepalive:        Duration(2 * time.Second),
			UserTimeout:      Duration(4 * time.Second),
			FailbackAfter:    Duration(60 * time.Second),
			Standby:          1,
			WhenAllDown:      "hold",
			MaxRejectRatio:   0.5,
			RejectWindow:     50,
			BackoffMin:       Duration(500 * time.Millisecond),
			BackoffMax:       Duration(30 * time.Second),
		},
		Pools: nil,
		Metrics: Metrics{
			Listen:            "127.0.0.1:9333",
			PerWorker:         false,
			BearerToken:       "",
			BasicAuthUser:     "",
			BasicAuthPassword: "",
			GroupBy:           "prefix:1",
		},
		Log: Log{Level: "info", Format: "console"},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, want)
	}

	// The only problem with the defaults is that there is no pool.
	err := Default().Validate()
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Key != "pool" {
		t.Errorf("Default().Validate() = %v, want only the missing pool", err)
	}
}

// TestDefaultsFromFile checks that a file with only a pool gets every default,
// except standby, which fits the single pool.
func TestDefaultsFromFile(t *testing.T) {
	c, err := Parse([]byte(okPool), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Failover.Standby = 0
	want.Pools = []Pool{{Name: "primary", URL: "stratum+tcp://pool.example.com:3333", User: "account.farm1"}}
	c.src = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(one pool) =\n%+v\nwant\n%+v", c, want)
	}
}

func TestExample(t *testing.T) {
	c, err := Load("../config.example.toml")
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if len(c.Pools) != 2 || c.Pools[0].Name != "primary" || c.Pools[1].Name != "backup" {
		t.Fatalf("pools = %+v, want primary then backup", c.Pools)
	}
	ep, err := c.Pools[1].Endpoint()
	if err != nil || !ep.TLS || ep.Addr() != "backup-pool.example.net:443" {
		t.Errorf("backup endpoint = %+v, %v", ep, err)
	}
	// The backup shows a second uplink, commented out: an interface this
	// host lacks would make `switchyard check` fail on the example.
	if c.Pools[1].Interface != "" || c.Pools[1].Bind != "" {
		t.Errorf("backup pool sets interface %q, bind %q: the example must pass check on any host", c.Pools[1].Interface, c.Pools[1].Bind)
	}
	if ps := c.HostProblems(nil); len(ps) != 0 {
		t.Errorf("config.example.toml has host problems: %v", ps)
	}
	text, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, backup, _ := strings.Cut(string(text), `name = "backup"`); !strings.Contains(backup, "\n# interface = \"wwan0\"") {
		t.Error(`backup pool should show a second uplink: # interface = "wwan0"`)
	}

	// The example shows every default: apart from pools, it is Default().
	want := Default()
	c.Pools, c.src = nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config.example.toml differs from Default():\n%+v\nwant\n%+v", c, want)
	}
}

// exampleWithRoutes returns config.example.toml with its routes example
// uncommented: in the section that starts at "# Routes:", every line that
// is a commented-out table header or key ("# [[route]]", "# name = ...").
func exampleWithRoutes(t *testing.T) []byte {
	t.Helper()
	text, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`^# (\[\[(pool|route)\]\]$|[a-z0-9_]+ = )`)
	lines := strings.Split(string(text), "\n")
	in, n := false, 0
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "# Routes:"):
			in = true
		case in && strings.HasPrefix(l, "# ----"):
			in = false
		case in && code.MatchString(l):
			lines[i] = strings.TrimPrefix(l, "# ")
			n++
		}
	}
	if n == 0 {
		t.Fatal(`config.example.toml has no routes example (a section starting "# Routes:")`)
	}
	return []byte(strings.Join(lines, "\n"))
}

// TestExampleRoutes: the routes example in config.example.toml, once
// uncommented, loads without a problem or a warning and does what its
// comments say.
func TestExampleRoutes(t *testing.T) {
	c, err := Parse(exampleWithRoutes(t), "config.example.toml")
	if err != nil {
		t.Fatalf("the routes example does not load:\n%v", err)
	}
	if ws := c.Warnings(); len(ws) != 0 {
		t.Errorf("the routes example has warnings: %v", ws)
	}
	routes := c.RouteSpecs()
	var got []string
	for _, r := range routes {
		var pools []string
		for _, p := range r.Pools {
			pools = append(pools, fmt.Sprintf("%s/%d", p.Name, p.Weight))
		}
		got = append(got, fmt.Sprintf("%s %v %v %v backups=%d %s", r.Name, r.Listen, r.Workers, pools, r.Backups, r.WorkerMode))
	}
	want := []string{
		"alpha [0.0.0.0:3334] [] [alpha-main/70 alpha-second/30 backup/0] backups=1 aggregate",
		"beta [0.0.0.0:3335] [] [beta-main/0 backup/0] backups=1 aggregate",
		"beta-lan [0.0.0.0:3333] [beta.*] [beta-main/0 backup/0] backups=1 per-worker",
		"farm [0.0.0.0:3333] [] [primary/0 backup/0] backups=1 aggregate",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ls := c.Listeners()
	if want := []string{"0.0.0.0:3334", "0.0.0.0:3335", "0.0.0.0:3333"}; !reflect.DeepEqual(ls, want) {
		t.Errorf("Listeners() = %q, want %q", ls, want)
	}
	r := NewRouter(ls, routes)
	for _, m := range []struct {
		listener int
		worker   string
		route    string
	}{
		{0, "alpha.rack1.s19-001", "alpha"},
		{0, "anything", "alpha"},
		{1, "beta.rack2", "beta"},
		{2, "beta.rack9.s21-004", "beta-lan"},
		{2, "farm.rack3", "farm"},
		{2, "betamax", "farm"},
	} {
		i, ok := r.Match(m.listener, m.worker)
		if !ok || routes[i].Name != m.route {
			t.Errorf("Match(%s, %q) = %d, %v; want route %s", ls[m.listener], m.worker, i, ok, m.route)
		}
	}
}

// TestExampleDocumentsEveryKey checks that config.example.toml sets every
// key of the schema, in struct order; the keys of [[route]] are in its
// routes example, commented out.
func TestExampleDocumentsEveryKey(t *testing.T) {
	c, err := Parse(exampleWithRoutes(t), "config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		names, index := fieldsOf(typ)
		for _, n := range names {
			f := typ.Field(index[n])
			key := joinKey(prefix, n)
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(key, f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(key+"[0]", f.Type.Elem())
			default:
				want = append(want, key)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	// A route shows only the keys it needs: each [[route]] key is in some
	// route of the example, and each route's keys are in struct order.
	last := 0
	for _, k := range want {
		if rest, ok := strings.CutPrefix(k, "route[0]."); ok {
			found := false
			for i := range c.Routes {
				_, in := c.src.lines["route["+strconv.Itoa(i)+"]."+rest]
				found = found || in
			}
			if !found {
				t.Errorf("config.example.toml: no [[route]] documents %s", rest)
			}
			continue
		}
		l, ok := c.src.lines[k]
		if !ok {
			t.Errorf("config.example.toml does not document %s", k)
			continue
		}
		if l < last {
			t.Errorf("config.example.toml: %s (line %d) is out of struct order", k, l)
		}
		last = l
	}
	names, _ := fieldsOf(reflect.TypeFor[Route]())
	for i := range c.Routes {
		last := 0
		for _, name := range names {
			key := "route[" + strconv.Itoa(i) + "]." + name
			if l, ok := c.src.lines[key]; ok {
				if l < last {
					t.Errorf("config.example.toml: %s (line %d) is out of struct order", key, l)
				}
				last = l
			}
		}
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name  string
		toml  string // okPool is appended unless pools is set
		pools bool
		want  []string // each must appear in the error
	}{
		// Types.
		{name: "string for int", toml: "[server]\nmax_connections = \"lots\"",
			want: []string{`config.toml:2: server.max_connections: expected an integer (got string "lots")`}},
		{name: "float for int", toml: "[server]\n\nextranonce1_size = 2.5",
			want: []string{`config.toml:3: server.extranonce1_size: expected an integer (got float 2.5)`}},
		{name: "int for string", toml: "[log]\nlevel = 3",
			want: []string{`config.toml:2: log.level: expected a string (got integer 3)`}},
		{name: "string for bool", toml: "[metrics]\nper_worker = \"yes\"",
			want: []string{`config.toml:2: metrics.per_worker: expected true or false (got string "yes")`}},
		{name: "string for float", toml: "[difficulty]\nmin = \"low\"",
			want: []string{`config.toml:2: difficulty.min: expected a number (got string "low")`}},
		{name: "int for float is fine", toml: "[difficulty]\ninitial = 2048\nmin = 1024"},
		{name: "table for section", toml: "server = 5",
			want: []string{`config.toml:1: server: expected a table (got integer 5)`}},
		{name: "wrong type in pool", pools: true,
			toml: okPool + "\n[[pool]]\nname = \"b\"\nurl = \"stratum+tcp://b.example.com:3333\"\nuser = \"u\"\npriority = \"high\"",
			want: []string{`config.toml:11: pool[1].priority: expected an integer (got string "high")`}},
		{name: "pool as a single table", pools: true, toml: "[pool]\nname = \"a\"",
			want: []string{`config.toml:1: pool: expected [[pool]] tables, with double brackets (got a table)`}},
		{name: "all type errors at once", toml: "[server]\nmax_connections = \"lots\"\nevent_loops = true\n[log]\nformat = 1",
			want: []string{"config.toml:2: server.max_connections:", "config.toml:3: server.event_loops:", "config.toml:5: log.format:"}},

		// Unknown keys.
		{name: "unknown top-level key", toml: "listen = \"0.0.0.0:3333\"",
			want: []string{`config.toml:1: listen: unknown key; known keys here: server, difficulty, failover, pool, route, metrics, log`}},
		{name: "unknown table", toml: "[servr]\nlisten = \"x\"",
			want: []string{`config.toml:1: servr: unknown table (did you mean "server"?)`}},
		{name: "unknown key in section", toml: "[failover]\nsubmit_timeout = \"3s\"\nsubmit_timout = \"3s\"",
			want: []string{`config.toml:3: failover.submit_timout: unknown key (did you mean "submit_timeout"?)`}},
		{name: "keys are case-sensitive", toml: "[server]\nListen = \"0.0.0.0:3333\"",
			want: []string{`config.toml:2: server.Listen: unknown key (did you mean "listen"?)`}},
		{name: "dash for underscore", toml: "[server]\nmax-connections = 5",
			want: []string{`config.toml:2: server.max-connections: unknown key (did you mean "max_connections"?)`}},
		{name: "unknown key in second pool", pools: true,
			toml: okPool + "\n[[pool]]\nname = \"b\"\nurl = \"stratum+tcp://b.example.com:3333\"\nuser = \"u\"\nbogus = 1",
			want: []string{`config.toml:11: pool[1].bogus: unknown key; known keys here: name, url,`}},
		{name: "index is not a key", pools: true, toml: okPool + "Index = 3",
			want: []string{`config.toml:6: pool[0].Index: unknown key`}},

		// Syntax.
		{name: "syntax error", toml: "[server]\nlisten = 0.0.0.0:3333",
			want: []string{"config.toml:2: invalid TOML: "}},
		{name: "duplicate key", toml: "[server]\nlisten = \"a:1\"\nlisten = \"b:2\"",
			want: []string{"config.toml:3: invalid TOML: "}},

		// Pools.
		{name: "no pools", pools: true, toml: "[server]\nlisten = \"0.0.0.0:3333\"",
			want: []string{"config.toml: pool: at least one [[pool]] is required"}},
		{name: "url without port", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+tcp://pool.example.com\"\nuser = \"u\"",
			want: []string{`config.toml:3: pool[0].url: port is required, such as stratum+tcp://pool.example.com:3333`}},
		{name: "http scheme", pools: true,
			toml: okPool + "\n[[pool]]\nname = \"b\"\nurl = \"http://b.example.com:3333\"\nuser = \"u\"",
			want: []string{`config.toml:9: pool[1].url: scheme must be stratum+tcp, stratum+ssl or stratum+tls (got "http")`}},
		{name: "empty host", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+tcp://:3333\"\nuser = \"u\"",
			want: []string{`config.toml:3: pool[0].url: host is required`}},
		{name: "url without scheme", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"pool.example.com:3333\"\nuser = \"u\"",
			want: []string{`config.toml:3: pool[0].url: must be scheme://host:port`}},
		{name: "url missing", pools: true, toml: "[[pool]]\nname = \"a\"\nuser = \"u\"",
			want: []string{`config.toml:1: pool[0].url: required`}},
		{name: "user missing", pools: true, toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+tcp://a.example.com:1\"",
			want: []string{`config.toml:1: pool[0].user: required`}},
		{name: "duplicate names", pools: true, toml: okPool + okPool,
			want: []string{`config.toml:8: pool[1].name: "primary" is already the name of pool[0]`}},
		{name: "duplicate names, reported in file order despite priority", pools: true,
			toml: okPool + okPool + "priority = -1",
			want: []string{`config.toml:8: pool[1].name: "primary" is already the name of pool[0]`}},
		{name: "bad name", pools: true,
			toml: "[[pool]]\nname = \"my pool\"\nurl = \"stratum+tcp://a.example.com:1\"\nuser = \"u\"",
			want: []string{`config.toml:2: pool[0].name: must be 1 to 64 of A-Z a-z 0-9 _ . - (got "my pool")`}},
		{name: "name missing", pools: true, toml: "[[pool]]\nurl = \"stratum+tcp://a.example.com:1\"\nuser = \"u\"",
			want: []string{`config.toml:1: pool[0].name: required`}},
		{name: "tls option on tcp url", pools: true, toml: okPool + "tls_skip_verify = true",
			want: []string{`config.toml:6: pool[0].tls_skip_verify: only applies to stratum+ssl:// or stratum+tls:// urls (url is stratum+tcp://)`}},
		{name: "tls pin on tcp url", pools: true, toml: okPool + "tls_pin_sha256 = \"00\"",
			want: []string{`config.toml:6: pool[0].tls_pin_sha256: only applies to stratum+ssl://`}},
		{name: "bad tls pin", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+ssl://a.example.com:443\"\nuser = \"u\"\ntls_pin_sha256 = \"abcd\"",
			want: []string{`config.toml:5: pool[0].tls_pin_sha256: must be 64 hex digits`}},
		{name: "tls ca file missing", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+tls://a.example.com:443\"\nuser = \"u\"\ntls_ca_file = \"/nonexistent/ca.pem\"",
			want: []string{`config.toml:5: pool[0].tls_ca_file: cannot read: `}},
		{name: "tls ca file with skip verify", pools: true,
			toml: "[[pool]]\nname = \"a\"\nurl = \"stratum+tls://a.example.com:443\"\nuser = \"u\"\ntls_ca_file = \"ca.pem\"\ntls_skip_verify = true",
			want: []string{`config.toml:5: pool[0].tls_ca_file: has no effect with tls_skip_verify = true`}},
		{name: "bind not an IP", pools: true, toml: okPool + "bind = \"eth0\"",
			want: []string{`config.toml:6: pool[0].bind: must be a local IP address`}},
		{name: "bad interface", pools: true, toml: okPool + "interface = \"a-very-long-interface-name\"",
			want: []string{`config.toml:6: pool[0].interface: must be a network interface name`}},
		{name: "socks5 without port", pools: true, toml: okPool + "socks5 = \"127.0.0.1\"",
			want: []string{`config.toml:6: pool[0].socks5: must be host:port`}},
		{name: "socks5 with scheme", pools: true, toml: okPool + "socks5 = \"socks5://127.0.0.1:1080\"",
			want: []string{`config.toml:6: pool[0].socks5: must be host:port`}},
		{name: "negative weight", pools: true, toml: okPool + "weight = -1",
			want: []string{`config.toml:6: pool[0].weight: must be 0 (off) or more (got -1)`}},
		{name: "bind and interface together are fine", pools: true,
			toml: okPool + "bind = \"192.0.2.10\"\ninterface = \"wwan0\"\nsocks5 = \"[::1]:1080\""},
		{name: "inline array of pools", pools: true,
			toml: `pool = [{name = "a", url = "stratum+tcp://a.example.com:1", user = "u", bogus = 1}]`,
			want: []string{`config.toml:1: pool[0].bogus: unknown key`}},

		// Difficulty.
		{name: "min above max", toml: "[difficulty]\nmin = 2048.0\nmax = 1024.0\ninitial = 1024.0",
			want: []string{`config.toml:2: difficulty.min: must not be more than max (1024) (got 2048)`}},
		{name: "initial above max", toml: "[difficulty]\ninitial = 2e12",
			want: []string{`config.toml:2: difficulty.initial: must be within min and max, [1024, 1e+12] (got 2e+12)`}},
		{name: "initial below min by default", toml: "[difficulty]\nmin = 100000.0",
			want: []string{`config.toml:1: difficulty.initial: must be within min and max, [100000, 1e+12] (got 65536)`}},
		{name: "zero min", toml: "[difficulty]\nmin = 0.0",
			want: []string{`config.toml:2: difficulty.min: must be a number more than 0 (got 0)`}},
		{name: "infinite max", toml: "[difficulty]\nmax = inf",
			want: []string{`config.toml:2: difficulty.max: must be a number more than 0 (got +Inf)`}},

		// Durations.
		{name: "submit_timeout_min zero", toml: "[failover]\nsubmit_timeout_min = \"0s\"",
			want: []string{`config.toml:2: failover.submit_timeout_min: must be more than 0s (got "0s")`}},
		{name: "duration without unit", toml: "[failover]\nsubmit_timeout = \"3\"",
			want: []string{`config.toml:2: failover.submit_timeout: invalid duration "3": want a number and a unit, such as "3s", "500ms" or "2m"`}},
		{name: "duration as number", toml: "[failover]\njob_timeout = 120",
			want: []string{`config.toml:2: failover.job_timeout: expected a duration string such as "3s" (got integer 120)`}},
		{name: "bad duration", toml: "[difficulty]\ntarget_share_interval = \"ten seconds\"",
			want: []string{`config.toml:2: difficulty.target_share_interval: invalid duration "ten seconds"`}},
		{name: "zero duration", toml: "[server]\nauth_timeout = \"0s\"",
			want: []string{`config.toml:2: server.auth_timeout: must be more than 0s (got "0s")`}},
		{name: "negative duration", toml: "[failover]\nkeepalive = \"-5s\"",
			want: []string{`config.toml:2: failover.keepalive: must be more than 0s (got "-5s")`}},
		{name: "backoff max below min", toml: "[failover]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"",
			want: []string{`config.toml:3: failover.backoff_max: must be at least backoff_min (2s) (got "1s")`}},
		{name: "zero failback is fine", toml: "[failover]\nfailback_after = \"0s\""},

		// Enumerations and ranges.
		{name: "bad when_all_down", toml: "[failover]\nwhen_all_down = \"panic\"",
			want: []string{`config.toml:2: failover.when_all_down: must be "hold" or "disconnect" (got "panic")`}},
		{name: "bad worker_mode", toml: "[server]\nworker_mode = \"per_worker\"",
			want: []string{`config.toml:2: server.worker_mode: must be "aggregate" or "per-worker" (got "per_worker")`}},
		{name: "bad log level", toml: "[log]\nlevel = \"verbose\"",
			want: []string{`config.toml:2: log.level: must be "trace", "debug", "info", "warn" or "error" (got "verbose")`}},
		{name: "bad log format", toml: "[log]\nformat = \"text\"",
			want: []string{`config.toml:2: log.format: must be "console" or "json" (got "text")`}},
		{name: "max_line_bytes too small", toml: "[server]\nmax_line_bytes = 100",
			want: []string{`config.toml:2: server.max_line_bytes: must be from 256 to 1048576 (got 100)`}},
		{name: "extranonce1_size too large", toml: "[server]\nextranonce1_size = 5",
			want: []string{`config.toml:2: server.extranonce1_size: must be from 1 to 4 (got 5)`}},
		{name: "pool extranonce2 too small for miners", toml: "[server]\nextranonce1_size = 2\nmin_pool_extranonce2_size = 3",
			want: []string{`config.toml:3: server.min_pool_extranonce2_size: must be from 4 to 10 with extranonce1_size = 2`}},
		{name: "larger prefix needs a larger pool size", toml: "[server]\nextranonce1_size = 3",
			want: []string{`server.min_pool_extranonce2_size: must be from 5 to 11 with extranonce1_size = 3`}},
		{name: "negative max_connections", toml: "[server]\nmax_connections = -1",
			want: []string{`config.toml:2: server.max_connections: must be 0 (no limit) or more (got -1)`}},
		{name: "tiny write buffer", toml: "[server]\nmax_pending_write_bytes = 100",
			want: []string{`config.toml:2: server.max_pending_write_bytes: must be at least 4096 (got 100)`}},
		{name: "bad listen", toml: "[server]\nlisten = \"3333\"",
			want: []string{`config.toml:2: server.listen: must be host:port, such as "0.0.0.0:3333" (got "3333")`}},
		{name: "listen on all interfaces with empty host", toml: "[server]\nlisten = \":3333\""},
		{name: "standby too high", toml: "[failover]\nstandby = 1",
			want: []string{`config.toml:2: failover.standby: must be from 0 to 0, one less than the number of pools (got 1)`}},
		{name: "reject ratio zero", toml: "[failover]\nmax_reject_ratio = 0.0",
			want: []string{`config.toml:2: failover.max_reject_ratio: must be more than 0 and at most 1 (got 0)`}},
		{name: "reject ratio above one", toml: "[failover]\nmax_reject_ratio = 1.5",
			want: []string{`failover.max_reject_ratio: must be more than 0 and at most 1 (got 1.5)`}},
		{name: "reject window zero", toml: "[failover]\nreject_window = 0",
			want: []string{`config.toml:2: failover.reject_window: must be from 1 to 100000 (got 0)`}},

		// Metrics.
		{name: "metrics on the miner port", toml: "[metrics]\nlisten = \"0.0.0.0:3333\"",
			want: []string{`config.toml:2: metrics.listen: must differ from server.listen ("0.0.0.0:3333")`}},
		{name: "metrics disabled", toml: "[metrics]\nlisten = \"\""},
		{name: "bearer and basic", toml: "[metrics]\nbearer_token = \"t\"\nbasic_auth_user = \"u\"\nbasic_auth_password = \"p\"",
			want: []string{`config.toml:2: metrics.bearer_token: set either bearer_token or basic_auth_user`}},
		{name: "basic user without password", toml: "[metrics]\nbasic_auth_user = \"u\"",
			want: []string{`config.toml:1: metrics.basic_auth_password: required with basic_auth_user`}},

		// Layout: lines are found for dotted keys and keys after tricky text.
		{name: "dotted key", toml: "server.max_line_bytes = 1",
			want: []string{`config.toml:1: server.max_line_bytes: must be from 256`}},
		{name: "multi-line string that looks like keys", pools: true,
			toml: okPool + "password = \"\"\"\n[[pool]]\nuser = 1\n\"\"\"\n\n[[pool]]\nname = \"b\"\nurl = \"ftp://b:1\"\nuser = \"u\"",
			want: []string{`config.toml:13: pool[1].url: scheme must be`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.toml
			if !tt.pools {
				src += "\n" + okPool
			}
			c, err := Parse([]byte(src), "config.toml")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse() = %+v, nil; want error containing %q", c, tt.want)
			}
			if c != nil {
				t.Errorf("Parse() returned a Config with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() error:\n%v\nwant it to contain\n%s", err, w)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("Parse() error is %T, want *Error", err)
			}
		})
	}
}

// TestOneProblemPerKey checks that a value with the wrong type is reported
// once, not again by validation of the default it leaves behind.
func TestOneProblemPerKey(t *testing.T) {
	_, err := Parse([]byte("[[pool]]\nname = \"a\"\nurl = 5\nuser = \"u\""), "c.toml")
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 {
		t.Fatalf("Parse() = %v, want exactly one problem", err)
	}
	want := Problem{File: "c.toml", Line: 3, Key: "pool[0].url", Message: "expected a string (got integer 5)"}
	if ce.Problems[0] != want {
		t.Errorf("problem = %+v, want %+v", ce.Problems[0], want)
	}
}

func TestErrorOrderAndUnwrap(t *testing.T) {
	src := "[log]\nlevel = \"x\"\n[server]\nlisten = 1\n[[pool]]\nname = \"a\"\n"
	_, err := Parse([]byte(src), "c.toml")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse() = %v, want *Error", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, p.Key)
	}
	want := []string{"log.level", "server.listen", "pool[0].url", "pool[0].user"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problem keys = %q, want %q (file order)", got, want)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want one per problem:\n%v", len(lines), err)
	}
	var p Problem
	if !errors.As(err, &p) || p.Key != "log.level" {
		t.Errorf("errors.As(Problem) = %+v, want the first problem", p)
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.toml", Line: 3, Key: "server.listen", Message: "bad"}, "a.toml:3: server.listen: bad"},
		{Problem{File: "a.toml", Key: "pool", Message: "bad"}, "a.toml: pool: bad"},
		{Problem{Line: 3, Key: "k", Message: "bad"}, "line 3: k: bad"},
		{Problem{Key: "k", Message: "bad"}, "k: bad"},
		{Problem{File: "a.toml", Line: 1, Message: "bad"}, "a.toml:1: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestValidateInCode(t *testing.T) {
	c := Default()
	c.Pools = []Pool{{Name: "a", URL: "stratum+tcp://a.example.com:1", User: "u"}}
	c.Failover.Standby = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	c.Server.WorkerMode = "x"
	err := c.Validate()
	if err == nil || err.Error() != `server.worker_mode: must be "aggregate" or "per-worker" (got "x")` {
		t.Errorf("Validate() = %v", err)
	}
}

func TestPoolsRanked(t *testing.T) {
	src := `
[[pool]]
name = "a"
url = "stratum+tcp://a.example.com:1"
user = "u"
priority = 2

[[pool]]
name = "b"
url = "stratum+tcp://b.example.com:1"
user = "u"

[[pool]]
name = "c"
url = "stratum+tcp://c.example.com:1"
user = "u"
priority = 2

[[pool]]
name = "d"
url = "stratum+tcp://d.example.com:1"
user = "u"
`
	c, err := Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var idx []int
	for _, p := range c.Pools {
		got = append(got, p.Name)
		idx = append(idx, p.Index)
	}
	if want := []string{"b", "d", "a", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ranked = %q, want %q", got, want)
	}
	if want := []int{1, 3, 0, 2}; !reflect.DeepEqual(idx, want) {
		t.Errorf("indexes = %v, want %v", idx, want)
	}
	if c.Failover.Standby != 1 {
		t.Errorf("standby = %d, want the default 1", c.Failover.Standby)
	}
}

func TestStandby(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		want  int
		isErr bool
	}{
		{"default with one pool", okPool, 0, false},
		{"default with two pools", okPool + strings.ReplaceAll(okPool, "primary", "b"), 1, false},
		{"explicit zero", "[failover]\nstandby = 0\n" + okPool, 0, false},
		{"explicit too high", "[failover]\nstandby = 2\n" + okPool + strings.ReplaceAll(okPool, "primary", "b"), 0, true},
		{"negative", "[failover]\nstandby = -1\n" + okPool, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), "c.toml")
			if tt.isErr {
				if err == nil || !strings.Contains(err.Error(), "failover.standby") {
					t.Errorf("Parse() = %v, want a failover.standby problem", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Failover.Standby != tt.want {
				t.Errorf("standby = %d, want %d", c.Failover.Standby, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration() != 90*time.Second {
		t.Errorf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" {
		t.Errorf("MarshalText() = %q", b)
	}
	for _, bad := range []string{"", "3", "3 s", "fast"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = nil, want error", bad)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/switchyard.toml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/switchyard.toml") {
		t.Errorf("Load() = %v", err)
	}
	var ce *Error
	if errors.As(err, &ce) {
		t.Errorf("a missing file is not a configuration problem")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(okPool))
	f.Add([]byte("[server]\nmax_connections = \"lots\"\n" + okPool))
	f.Add([]byte("a = \"\"\"\n[[pool]]\n\"\"\"\n[[pool]]\n'k.q' . \"x\" = [1,\n{a=1}]\n"))
	f.Add([]byte("pool = [{name = \"a\", url = \"stratum+tcp://a:1\", user = \"u\"}]"))
	f.Add([]byte(okPool + "[[route]]\nname = \"r\"\nlisten = [\"0.0.0.0:1\",\n 2]\nworkers = [\"a*\", \"[\"]\npools = \"primary\"\nbackup = [\"x\"]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.toml")
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a Config that does not validate: %v", verr)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("Parse() error %T %v, want *Error with problems", err, err)
		}
	})
}
