package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
)

// netnsPoolEnv carries the listen address to the pool helper process.
const netnsPoolEnv = "SWITCHYARD_NETNS_POOL"

// netnsControlPort is the helper pool's control API port, on its own
// namespace address.
const netnsControlPort = 3390

// TestNetnsPoolProcess is not a test: TestNetnsBlackhole runs the test
// binary again inside a network namespace, with netnsPoolEnv set, to serve a
// simulated pool there until its stdin closes.
func TestNetnsPoolProcess(t *testing.T) {
	addr := os.Getenv(netnsPoolEnv)
	if addr == "" {
		t.Skip("helper process of TestNetnsBlackhole")
	}
	p, err := sim.StartPool(sim.PoolConfig{Addr: addr, Difficulty: testDiff, Extranonce1Size: 4, Extranonce2Size: 4, JobInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(netnsControlPort)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim.ControlHandler(p), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("pool listening on %s\n", p.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or exits
	_ = srv.Close()
	_ = p.Close()
}

// TestNetnsBlackhole puts the primary pool behind a veth pair in its own
// network namespace, lets miners mine on it, then takes the link down
// inside the namespace: packets to the pool vanish without a reset or an
// ICMP error, as when a country's uplink is cut. switchyard must notice
// from the unanswered shares and move every miner to p1 within a few
// seconds, dropping none; when the link is back, miners return after
// failback_after.
//
// It needs root and iproute2 with network namespaces, and skips otherwise.
// Only the /30 between its own veth ends is used.
func TestNetnsBlackhole(t *testing.T) {
	nn := setupNetns(t)
	t.Parallel()
	poolAddr := net.JoinHostPort(nn.peerIP, "3333")
	startNetnsPool(t, nn, poolAddr)

	r := newRig(t, 2, nil, func(c *config.Config) {
		// The loopback p0 the rig starts stays idle: p0 is the pool in
		// the namespace.
		c.Pools[0].URL = "stratum+tcp://" + poolAddr
	})
	fa := r.cfg.Failover.FailbackAfter.Duration()
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	waitFor(t, 20*time.Second, "miners mining on the pool in the namespace", func() bool {
		return fleet.Stats().Ready == int64(n) &&
			r.counter("switchyard_pool_shares_total", "pool", "p0", "result", "accepted") >= float64(2*n)
	})
	w := r.watch()

	tCut := time.Now()
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", nn.nsVeth, "down")
	r.waitActive("p1", 5*time.Second)
	took := time.Since(tCut)
	t.Logf("link cut: miners on p1 %s later", took.Round(time.Millisecond))
	// Proof that the cut was silent: switchyard saw no EOF or reset, only
	// shares left unanswered.
	r.checkFailoverReasons("p0", "p1", []string{"submit_timeout"})
	r.waitMining(fleet, 1, n)
	r.checkConnected(fleet, n)

	tUp := time.Now()
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", nn.nsVeth, "up")
	r.waitActive("p0", fa+10*time.Second)
	back, _ := w.firstTo("p0", tUp)
	t.Logf("link back: failback %s later", back.at.Sub(tUp).Round(time.Millisecond))
	if back.at.Sub(tUp) < fa {
		t.Errorf("failback %s after the link came back, before failback_after %s", back.at.Sub(tUp), fa)
	}
	waitFor(t, 10*time.Second, "miners mining on the pool in the namespace again", func() bool {
		return r.counter("switchyard_pool_shares_total", "pool", "p0", "result", "accepted") >= float64(4*n)
	})
	w.stop()
	r.checkConnected(fleet, n)
	r.closeAndAccount(fleet, accountOpts{books: func(i int) sim.PoolStats {
		if i == 0 {
			return nn.poolStats(t)
		}
		return r.pools[i].Stats()
	}})
}

// netns is a network namespace with one end of a veth pair in it.
type netns struct {
	ns, hostVeth, nsVeth string
	hostIP, peerIP       string
}

// netnsSeq numbers the namespaces of this process.
var netnsSeq atomic.Int32

// setupNetns creates the namespace and the veth pair, or skips the test
// when that is impossible here. Everything is removed at cleanup.
func setupNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns blackhole test: needs root (network namespaces and veth)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns blackhole test: no ip command (iproute2)")
	}
	pid := os.Getpid()
	seq := netnsSeq.Add(1) // several tests of one process each have their own
	nn := &netns{
		ns:       fmt.Sprintf("sy-test-%d-%d", pid, seq),
		hostVeth: fmt.Sprintf("syh%dx%d", pid, seq),
		nsVeth:   fmt.Sprintf("syn%dx%d", pid, seq),
	}
	removeStaleNetns(t)
	if out, err := exec.Command("ip", "netns", "add", nn.ns).CombinedOutput(); err != nil {
		t.Skipf("netns blackhole test: ip netns add: %v: %s", err, trimOut(out))
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", nn.ns).Run() // takes the veth pair with it
		_ = exec.Command("ip", "link", "del", nn.hostVeth).Run()
	})
	if out, err := exec.Command("ip", "link", "add", nn.hostVeth, "type", "veth", "peer", "name", nn.nsVeth, "netns", nn.ns).CombinedOutput(); err != nil {
		t.Skipf("netns blackhole test: no veth: %v: %s", err, trimOut(out))
	}
	nn.hostIP, nn.peerIP = freeSubnet(t, pid)
	nn.ip(t, "addr", "add", nn.hostIP+"/30", "dev", nn.hostVeth)
	nn.ip(t, "link", "set", "dev", nn.hostVeth, "up")
	nn.ip(t, "-n", nn.ns, "addr", "add", nn.peerIP+"/30", "dev", nn.nsVeth)
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", nn.nsVeth, "up")
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", "lo", "up")
	return nn
}

func trimOut(b []byte) string { return strings.TrimSpace(string(b)) }

// ip runs the ip command and fails the test if it fails.
func (nn *netns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, trimOut(out))
	}
}

// freeSubnet picks a /30 in 10.213.0.0/16 from the process id, skipping
// any with an address already on this host (another run of this test), and
// returns its two host addresses.
func freeSubnet(t *testing.T, pid int) (host, peer string) {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr show: %v: %s", err, trimOut(out))
	}
	for k := range 64 {
		idx := (pid + k) % 16384
		base := fmt.Sprintf("10.213.%d.%d", idx/64, idx%64*4)
		host = fmt.Sprintf("10.213.%d.%d", idx/64, idx%64*4+1)
		peer = fmt.Sprintf("10.213.%d.%d", idx/64, idx%64*4+2)
		if !strings.Contains(string(out), " "+base+"/") && !strings.Contains(string(out), " "+host+"/") &&
			!strings.Contains(string(out), " "+peer+"/") && !strings.Contains(string(out), fmt.Sprintf(" 10.213.%d.%d/", idx/64, idx%64*4+3)) {
			return host, peer
		}
	}
	t.Skip("netns blackhole test: no free /30 in 10.213.0.0/16")
	return "", ""
}

// removeStaleNetns deletes namespaces this test left behind in runs that
// were killed before their cleanup (sy-test-<pid> of a process that is
// gone).
func removeStaleNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "sy-test-")
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // still running
		}
		t.Logf("removing stale namespace %s", name)
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

// startNetnsPool runs TestNetnsPoolProcess inside the namespace and waits
// until it listens on addr.
func startNetnsPool(t *testing.T, nn *netns, addr string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", nn.ns, os.Args[0], "-test.run=^TestNetnsPoolProcess$")
	cmd.Env = append(os.Environ(), netnsPoolEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the helper closes its pool and exits
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "pool listening on "); ok {
				ready <- a
			}
		}
	}()
	select {
	case a := <-ready:
		if a != addr {
			t.Fatalf("helper pool listens on %s, want %s", a, addr)
		}
	case <-exited:
		t.Fatalf("helper pool exited: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("helper pool not listening after 10s: %s", stderr.String())
	}
}

// poolStats fetches the helper pool's counters through its control API.
func (nn *netns) poolStats(t *testing.T) sim.PoolStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(nn.peerIP, strconv.Itoa(netnsControlPort)) + "/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("helper pool stats: %v", err)
	}
	defer resp.Body.Close()
	var ps sim.PoolStats
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		t.Fatalf("helper pool stats: %v", err)
	}
	return ps
}

// TestNetnsIdleBlackhole cuts the namespace's link while no share flows
// (the miners are connected and authorized but do not hash), so no submit
// can go unanswered: only TCP keepalive probes, bounded by TCP_USER_TIMEOUT,
// can find the dead pool. With keepalive 5 s and user_timeout 10 s the
// kernel gives up on the connection user_timeout after the last answered
// probe, 5–15 s after the cut, long before job_timeout; miners are moved
// to p1 without being dropped.
func TestNetnsIdleBlackhole(t *testing.T) {
	nn := setupNetns(t)
	t.Parallel()
	poolAddr := net.JoinHostPort(nn.peerIP, "3333")
	startNetnsPool(t, nn, poolAddr)

	const keepalive, userTimeout = 5 * time.Second, 10 * time.Second
	r := newRig(t, 2, nil, func(c *config.Config) {
		c.Pools[0].URL = "stratum+tcp://" + poolAddr
		c.Failover.Keepalive = config.Duration(keepalive)
		c.Failover.UserTimeout = config.Duration(userTimeout)
		c.Failover.JobTimeout = config.Duration(120 * time.Second)
	})
	const n = 20
	fleet := r.startFleet(n, func(c *sim.FleetConfig) { c.Idle = true })
	waitFor(t, 20*time.Second, "idle miners on the pool in the namespace", func() bool {
		return fleet.Stats().Ready == n && r.app.Pools.Active() == "p0"
	})

	tCut := time.Now()
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", nn.nsVeth, "down")
	r.waitActive("p1", userTimeout+keepalive+10*time.Second)
	took := time.Since(tCut)
	t.Logf("link cut with no share in flight: miners on p1 %s later", took.Round(time.Millisecond))
	// The kernel counts user_timeout from the last ACK it had, a keepalive
	// probe's at most one keepalive interval before the cut.
	if low := userTimeout - keepalive - time.Second; took < low {
		t.Errorf("switched %s after the cut: sooner than user_timeout %s after the last probe could have been answered", took, userTimeout)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p0", "to", "p1", "reason", "submit_timeout") +
		r.counter("switchyard_failovers_total", "from", "p0", "to", "p1", "reason", "job_timeout"); got != 0 {
		t.Errorf("%v failovers by submit or job timeout: no share was in flight and no job was due", got)
	}
	if s := fleet.Stats(); s.Submits != 0 {
		t.Errorf("idle miners submitted %d shares", s.Submits)
	}
	r.checkConnected(fleet, n)
}
