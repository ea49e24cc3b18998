package main

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"switchyard/sim"
)

// runCheck runs `switchyard check args...` and returns its output and exit
// code.
func runCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"check"}, args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func startSimPool(t *testing.T, cfg sim.PoolConfig) *sim.Pool {
	t.Helper()
	cfg.JobInterval = time.Hour
	p, err := sim.StartPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// probePool is one [[pool]] table of a probe test's config.
type probePool struct {
	name, addr, user string
	extra            string // more keys, one a line
}

func probeConfig(pools ...probePool) string {
	var b strings.Builder
	b.WriteString("[server]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n")
	for _, p := range pools {
		fmt.Fprintf(&b, "[[pool]]\nname = %q\nurl = \"stratum+tcp://%s\"\nuser = %q\n%s", p.name, p.addr, p.user, p.extra)
	}
	return b.String()
}

// block returns the lines `check -probe` printed for pool name.
func block(out, name string) string {
	_, rest, ok := strings.Cut(out, "pool "+name+":")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\npool "); i >= 0 {
		rest = rest[:i]
	} else if i := strings.Index(rest, "\nprobe:"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// TestCheckProbe: `check -probe` dials every pool with a real session and
// tells, for each, whether switchyard can mine there and why not: a
// public-pool-like pool (4-byte extranonce2) fits the default settings, a
// NiceHash-like one (3 bytes) is refused as extranonce2_too_small, a pool
// refusing the account says unauthorized, a port nobody listens on says
// connection refused. Any failing pool makes the exit code 1.
func TestCheckProbe(t *testing.T) {
	public := startSimPool(t, sim.PoolConfig{Profile: sim.ProfilePublicPool})
	nicehash := startSimPool(t, sim.PoolConfig{Profile: sim.ProfileNiceHash})
	strict := startSimPool(t, sim.PoolConfig{Users: []string{"acct"}})
	dir := t.TempDir()

	good := writeFile(t, dir, "good.toml", probeConfig(probePool{"public", public.Addr(), "acct.farm", ""}))
	out, code := runCheck(t, "-probe", "-config", good)
	if code != 0 {
		t.Fatalf("exit %d for a pool that fits, want 0:\n%s", code, out)
	}
	b := block(out, "public")
	for _, want := range []string{
		"path: the routing table",
		"reachable:  yes, connected in ",
		"authorized: yes, as acct.farm; first job ",
		"extranonce: extranonce1 4 bytes, extranonce2 4 bytes",
		"difficulty: 16384",
		"versions:   rolling, mask 1fffe000",
		"fits:       yes: 4-byte extranonce2 holds the 2-byte miner prefix (server.extranonce1_size) and every miner's 2 bytes",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("public pool's block lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`connected in \d+\.\dms`).MatchString(b) || !strings.HasSuffix(strings.TrimSpace(out), "probe: 1 of 1 pools ok") {
		t.Errorf("latency or summary missing:\n%s", out)
	}

	mixed := writeFile(t, dir, "mixed.toml", probeConfig(
		probePool{"public", public.Addr(), "acct.farm", ""},
		probePool{"nicehash", nicehash.Addr(), "acct.farm", ""},
		probePool{"strict", strict.Addr(), "someone.else", ""},
		probePool{"gone", freePort(t), "acct.farm", ""},
	))
	out, code = runCheck(t, "-probe", "-config", mixed)
	if code != 1 {
		t.Fatalf("exit %d with three failing pools, want 1:\n%s", code, out)
	}
	for _, c := range []struct{ pool, want string }{
		{"public", "fits:       yes"},
		{"nicehash", "extranonce: extranonce1 5 bytes, extranonce2 3 bytes"},
		{"nicehash", "fits:       no: extranonce2_too_small: the pool's extranonce2 is 3 bytes, server.min_pool_extranonce2_size is 4 (2-byte prefix + 2 per miner); switchyard refuses this pool"},
		{"strict", "reachable:  yes"},
		{"strict", "authorized: no: unauthorized"},
		{"gone", "reachable:  no: dial: connection refused"},
	} {
		if !strings.Contains(block(out, c.pool), c.want) {
			t.Errorf("pool %s: output lacks %q:\n%s", c.pool, c.want, out)
		}
	}
	if !strings.Contains(out, "probe: 1 of 4 pools ok") {
		t.Errorf("summary missing:\n%s", out)
	}
}

// TestCheckProbeSilentPool: a pool that accepts the connection and never
// answers is reachable but not authorized, after submit_timeout (the
// handshake's limit) or -timeout, whichever comes first.
func TestCheckProbeSilentPool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
		}
	}()
	dir := t.TempDir()
	for _, c := range []struct {
		name, extra, timeout, want string
	}{
		{"handshake timeout", "[failover]\nsubmit_timeout = \"300ms\"\n", "5s", "authorized: no: handshake_timeout"},
		{"probe timeout", "", "300ms", "authorized: no: no job within 300ms (got as far as handshaking)"},
	} {
		path := writeFile(t, dir, strings.ReplaceAll(c.name, " ", "_")+".toml", c.extra+probeConfig(probePool{"silent", ln.Addr().String(), "acct.farm", ""}))
		out, code := runCheck(t, "-probe", "-timeout", c.timeout, "-config", path)
		if b := block(out, "silent"); code != 1 || !strings.Contains(b, "reachable:  yes") || !strings.Contains(b, c.want) {
			t.Errorf("%s: exit %d, want 1 and %q:\n%s", c.name, code, c.want, out)
		}
	}
}

// TestCheckHost: an interface this host does not have and a bind address
// that is not its own fail `check` (with key, line and what would work),
// and with -probe the dial through them fails too.
func TestCheckHost(t *testing.T) {
	public := startSimPool(t, sim.PoolConfig{Profile: sim.ProfilePublicPool})
	dir := t.TempDir()
	path := writeFile(t, dir, "host.toml", probeConfig(
		probePool{"modem", public.Addr(), "acct.farm", "interface = \"nosuch0\"\n"},
		probePool{"elsewhere", public.Addr(), "acct.farm", "bind = \"198.18.255.254\"\n"},
	))
	out, code := runCheck(t, "-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		path + `:9: pool[0].interface: this host has no network interface "nosuch0"`,
		"leave interface out to use the routing table",
		path + ":14: pool[1].bind: 198.18.255.254 is not an address of this host (its addresses: ",
		path + ": 2 problem(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, ": ok") {
		t.Errorf("check says ok on a host that cannot dial these pools:\n%s", out)
	}

	out, code = runCheck(t, "-probe", "-config", path)
	if code != 1 || !strings.Contains(block(out, "modem"), "reachable:  no: dial: interface nosuch0: no such device") ||
		!strings.Contains(block(out, "elsewhere"), "reachable:  no: dial: ") || !strings.Contains(out, "probe: 0 of 2 pools ok") {
		t.Errorf("exit %d; probe through a missing interface and a foreign bind address:\n%s", code, out)
	}
}

// TestCheckExampleTellsTheTruth: the example config is valid on any host,
// and check says its pools were not dialled.
func TestCheckExampleTellsTheTruth(t *testing.T) {
	out, code := runCheck(t, "-config", "../../config.example.toml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"ok (2 pools: primary, backup)",
		"backup: stratum+ssl://backup-pool.example.net:443, path: TLS, the routing table",
		"route default: listen 0.0.0.0:3333 (server.listen); workers any; worker_mode aggregate\n  1. primary\n  2. backup\n",
		"pools not dialled: switchyard check -probe -config ../../config.example.toml connects to each",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "route:") || strings.Contains(out, "warning") {
		t.Errorf("a pool's network path is labelled path:, and the example has no warning:\n%s", out)
	}
}

// checkRoutesConfig is a hosting farm: alpha on its own port with a 70/30
// split and a backup shared with the farm's route, beta's workers by name
// on the farm's port, and a pool no route names.
const checkRoutesConfig = `[server]
listen = "0.0.0.0:3333"
[metrics]
listen = ""
[[pool]]
name = "alpha-main"
url = "stratum+tcp://a.example.com:3333"
user = "alpha.farm"
weight = 70
[[pool]]
name = "alpha-second"
url = "stratum+tcp://b.example.com:3333"
user = "alpha.farm"
weight = 30
[[pool]]
name = "third"
url = "stratum+tcp://c.example.com:3333"
user = "u"
priority = 2
weight = 1
[[pool]]
name = "ranked-1"
url = "stratum+tcp://d.example.com:3333"
user = "u"
priority = 5
[[pool]]
name = "ranked-2"
url = "stratum+tcp://e.example.com:3333"
user = "u"
priority = 5
[[pool]]
name = "farm-backup"
url = "stratum+ssl://f.example.com:443"
user = "farm.backup"
[[pool]]
name = "old"
url = "stratum+tcp://g.example.com:3333"
user = "u"
[[route]]
name = "alpha"
listen = ["0.0.0.0:3334", "0.0.0.0:3335"]
pools = ["alpha-main", "alpha-second", "third", "ranked-1", "ranked-2"]
backup = "farm-backup"
[[route]]
name = "beta"
workers = ["beta.*", "*.beta"]
pools = ["ranked-2"]
worker_mode = "per-worker"
[[route]]
name = "farm"
pools = ["farm-backup"]
`

// TestCheckRoutes: check prints every route (listeners, worker patterns,
// ranked pools, a split's weights as percentages, backups) and the
// warnings, and warnings alone leave the exit code 0.
func TestCheckRoutes(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "routes.toml", checkRoutesConfig)
	out, code := runCheck(t, "-config", path)
	if code != 0 {
		t.Fatalf("exit %d with warnings only, want 0:\n%s", code, out)
	}
	for _, want := range []string{
		"ok (7 pools: alpha-main, alpha-second, farm-backup, old, third, ranked-1, ranked-2)",
		"  farm-backup: stratum+ssl://f.example.com:443, path: TLS, the routing table\n",
		"route alpha: listen 0.0.0.0:3334, 0.0.0.0:3335; workers any; worker_mode aggregate\n" +
			"  1. alpha-main 70%, alpha-second 30% (split, priority 0)\n" +
			"  2. third\n" + // a weight alone in its priority splits nothing
			"  3. ranked-1\n" +
			"  4. ranked-2\n" +
			"  5. farm-backup (backup)\n" +
			"route beta: listen 0.0.0.0:3333 (server.listen); workers \"beta.*\", \"*.beta\"; worker_mode per-worker\n" +
			"  1. ranked-2\n" +
			"route farm: listen 0.0.0.0:3333 (server.listen); workers any other; worker_mode aggregate\n" +
			"  1. farm-backup\n" +
			"warning: " + path + ":35: pool[6]: \"old\" is in no route: nothing will mine on it\n" +
			path + ": 1 warning(s)\n" +
			"pools not dialled: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks\n%s\n--- output:\n%s", want, out)
		}
	}

	// A third of the work each, and the config's problems: exit 1, no routes.
	thirds := strings.NewReplacer("weight = 70", "weight = 1", "weight = 30", "weight = 1", "priority = 2\n", "").Replace(checkRoutesConfig)
	out, _ = runCheck(t, "-config", writeFile(t, dir, "thirds.toml", thirds))
	if want := "  1. alpha-main 33.3%, alpha-second 33.3%, third 33.3% (split, priority 0)\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	bad := strings.Replace(checkRoutesConfig, `pools = ["ranked-2"]`, `pools = ["ranked-3"]`, 1)
	out, code = runCheck(t, "-config", writeFile(t, dir, "bad.toml", bad))
	if code != 1 || !strings.Contains(out, `route[1].pools[0]: no [[pool]] named "ranked-3"`) || strings.Contains(out, "route alpha") {
		t.Errorf("exit %d, want 1 with the problem and no routes:\n%s", code, out)
	}
}

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		part, whole int
		want        string
	}{{70, 100, "70%"}, {1, 3, "33.3%"}, {2, 3, "66.7%"}, {1, 1, "100%"}, {1, 8, "12.5%"}, {1, 2000, "0.1%"}} {
		if got := percent(c.part, c.whole); got != c.want {
			t.Errorf("percent(%d, %d) = %q, want %q", c.part, c.whole, got, c.want)
		}
	}
}
