package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/testkit"
	"switchyard/sim"
)

// haproxyBinary is Debian's haproxy; the test looks on PATH too.
const haproxyBinary = "/usr/sbin/haproxy"

// haproxyConfig is what TestBehindHAProxy runs, and what the README's
// HAProxy section shows: leastconn over the instances, PROXY protocol v2
// to each, health from /healthz on the metrics port (checked fast here;
// the README uses inter 2s).
const haproxyConfig = `global
    maxconn 1000
    nbthread 1
    log stderr format short local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout check 1s

frontend stratum
    bind %[1]s
    default_backend switchyard

backend switchyard
    balance leastconn
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    server sy1 %[2]s send-proxy-v2 check port %[3]s inter 200ms fall 2 rise 2
    server sy2 %[4]s send-proxy-v2 check port %[5]s inter 200ms fall 2 rise 2

listen stats
    mode http
    bind %[6]s
    stats enable
    stats uri /stats
`

// TestBehindHAProxy runs two switchyard instances, each with its own two
// pools, behind a real HAProxy (balance leastconn, send-proxy-v2, /healthz
// checks). Miners from four source addresses spread over both instances,
// and each instance sees their own addresses (in /api/v1/miners, and in
// max_connections_per_ip = 2, which would hold each instance to two miners
// if it counted HAProxy's address). Instance 1's active pool goes dark: it
// fails over to its backup by itself, its miners stay. Then its backup
// goes dark too: its /healthz turns unhealthy, HAProxy marks it down, and
// new miners all go to instance 2, whose API shows their addresses.
func TestBehindHAProxy(t *testing.T) {
	bin := haproxyPath(t)

	proxied := func(c *config.Config) {
		c.Server.ProxyProtocol = true
		c.Server.MaxConnectionsPerIP = 2
		c.Failover.FailbackAfter = config.Duration(time.Minute) // no failback within the test
	}
	sy := []*rig{newRig(t, 2, nil, proxied), newRig(t, 2, nil, proxied)}

	front, stats := freeAddr(t), freeAddr(t)
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	cfgText := fmt.Sprintf(haproxyConfig, front,
		sy[0].app.MinerAddr(), port(sy[0].app.HTTPAddr()),
		sy[1].app.MinerAddr(), port(sy[1].app.HTTPAddr()), stats)
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	var hlog testkit.Buffer // HAProxy's log
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = &hlog, &hlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy config:\n%s\nhaproxy log:\n%s", cfgText, hlog.String())
		}
	})
	status := func(server string) string { return haproxyStatus(stats, server) }
	waitFor(t, 10*time.Second, "HAProxy to see both instances up", func() bool {
		return status("sy1") == "UP" && status("sy2") == "UP"
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	fleet1, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: front, Miners: 8, SourceAddrs: first, MaxSharesPerSecond: 20, VersionRolling: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet1.Close()
	waitFor(t, 10*time.Second, "8 miners mining through HAProxy", func() bool {
		return fleet1.Stats().Ready == 8 && sy[0].app.Proxy.Miners()+sy[1].app.Proxy.Miners() == 8
	})
	for i, r := range sy {
		if n := r.app.Proxy.Miners(); n <= 2 {
			t.Fatalf("instance %d has %d of 8 miners: leastconn should spread them, and max_connections_per_ip = 2 must count the miners' addresses, not HAProxy's", i+1, n)
		}
		got := minerRemotes(t, r.app.HTTPAddr())
		if len(got) != r.app.Proxy.Miners() {
			t.Fatalf("instance %d: /api/v1/miners lists %d miners, %d connected", i+1, len(got), r.app.Proxy.Miners())
		}
		for _, ip := range got {
			if !slices.Contains(first, ip) {
				t.Errorf("instance %d sees a miner at %s; want one of the fleet's addresses %v (HAProxy connects from 127.0.0.1)", i+1, ip, first)
			}
		}
		accepted := r.pools[0].Stats().Accepted
		waitFor(t, 10*time.Second, fmt.Sprintf("instance %d's miners' shares at its pool p0", i+1), func() bool {
			return r.pools[0].Stats().Accepted > accepted+10
		})
	}

	// Instance 1's active pool blacks out: it fails over to its own
	// backup, its miners keep mining there and HAProxy keeps it.
	held := sy[0].app.Proxy.Miners()
	if err := sy[0].pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	sy[0].waitActive("p1", 10*time.Second)
	accepted := sy[0].pools[1].Stats().Accepted
	waitFor(t, 10*time.Second, "instance 1's miners' shares at its backup p1", func() bool {
		return sy[0].pools[1].Stats().Accepted > accepted+10
	})
	if s := status("sy1"); s != "UP" || sy[0].app.Proxy.Miners() != held {
		t.Fatalf("after failing over to its backup: HAProxy says instance 1 is %s, it holds %d miners (had %d)", s, sy[0].app.Proxy.Miners(), held)
	}

	// Now all of instance 1's pools are dark: /healthz is unhealthy,
	// HAProxy takes it out, and new miners all go to instance 2.
	if err := sy[0].pools[1].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "instance 1's /healthz to turn unhealthy", func() bool { return healthz(sy[0].app.HTTPAddr()) == http.StatusServiceUnavailable })
	waitFor(t, 10*time.Second, "HAProxy to mark instance 1 down", func() bool { return status("sy1") == "DOWN" })
	before := [2]int{sy[0].app.Proxy.Miners(), sy[1].app.Proxy.Miners()}
	second := []string{"127.0.0.6", "127.0.0.7"}
	fleet2, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: front, Miners: 4, SourceAddrs: second, MaxSharesPerSecond: 20, VersionRolling: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet2.Close()
	waitFor(t, 10*time.Second, "4 new miners mining on instance 2", func() bool {
		return fleet2.Stats().Ready == 4 && sy[1].app.Proxy.Miners() == before[1]+4
	})
	waitFor(t, 10*time.Second, "the new miners' shares accepted", func() bool { return fleet2.Stats().Accepted > 0 })
	if n := sy[0].app.Proxy.Miners(); n != before[0] {
		t.Errorf("instance 1, with every pool dark and marked down, went from %d to %d miners", before[0], n)
	}
	got := minerRemotes(t, sy[1].app.HTTPAddr())
	for _, ip := range second {
		if n := countOf(got, ip); n != 2 {
			t.Errorf("instance 2 lists %d miners from %s, want 2: %v", n, ip, got)
		}
	}
	for _, ip := range minerRemotes(t, sy[0].app.HTTPAddr()) {
		if slices.Contains(second, ip) {
			t.Errorf("a new miner from %s reached instance 1, which HAProxy marked down", ip)
		}
	}
	t.Logf("miners: instance 1 %d (its pools dark, held), instance 2 %d; fleet 1 %d accepted, fleet 2 %d accepted",
		sy[0].app.Proxy.Miners(), sy[1].app.Proxy.Miners(), fleet1.Stats().Accepted, fleet2.Stats().Accepted)
}

// TestDeployHAProxyConfig: deploy/haproxy/haproxy.cfg is a config HAProxy
// accepts (haproxy -c), and it and the README's HAProxy block send PROXY v2
// to every instance, balance by connection count and check /healthz, as
// TestBehindHAProxy does.
func TestDeployHAProxyConfig(t *testing.T) {
	bin := haproxyPath(t)
	const path = "../deploy/haproxy/haproxy.cfg"
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", path, err, out)
	}
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"balance leastconn",
		"option httpchk",
		"http-check send meth GET uri /healthz",
		"http-check expect status 200",
		"server sy1 10.0.0.11:3333 send-proxy-v2 check port 9333 inter 2s fall 2 rise 3",
	} {
		for name, text := range map[string][]byte{path: cfg, "README.md": readme} {
			if !bytes.Contains(text, []byte(want)) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if !strings.Contains(haproxyConfig, strings.Fields(want)[0]) {
			t.Errorf("the test's HAProxy config lacks %q", strings.Fields(want)[0])
		}
	}
}

// haproxyPath returns HAProxy's binary, or skips the test.
func haproxyPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(haproxyBinary); err == nil {
		return haproxyBinary
	}
	p, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skipf("no HAProxy (%s, or haproxy on PATH): install Debian's haproxy package to run this test", haproxyBinary)
	}
	return p
}

// freeAddr returns a loopback address with a port the kernel chose, free
// now (HAProxy binds it a moment later).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// haproxyStatus reads a backend server's status (UP, DOWN, …) from
// HAProxy's CSV stats; "" when unknown.
func haproxyStatus(stats, server string) string {
	resp, err := http.Get("http://" + stats + "/stats;csv")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(rows) == 0 {
		return ""
	}
	col := slices.Index(rows[0], "status")
	for _, r := range rows[1:] {
		if col >= 0 && len(r) > col && r[0] == "switchyard" && r[1] == server {
			return strings.Fields(r[col] + " ")[0] // "UP", "DOWN", "UP 1/2"
		}
	}
	return ""
}

func healthz(httpAddr string) int {
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// minerRemotes returns the IP of every miner /api/v1/miners lists.
func minerRemotes(t *testing.T, httpAddr string) []string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/miners")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/api/v1/miners: %v: %s", err, body)
	}
	var ips []string
	var walk func(v any)
	walk = func(v any) { // rows wherever the body keeps them
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if r, ok := v["remote"].(string); ok {
				host, _, err := net.SplitHostPort(r)
				if err != nil {
					host = r
				}
				ips = append(ips, host)
				return
			}
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	return ips
}

func countOf(s []string, v string) (n int) {
	for _, e := range s {
		if e == v {
			n++
		}
	}
	return n
}
