package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"switchyard/internal/race"
	"switchyard/internal/testkit"
	"switchyard/sim"
)

// startBinaryArgs is startBinary with run's flags and extra environment.
func startBinaryArgs(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.mu.Lock()
				p.logs = append(p.logs, m)
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		_ = p.cmd.Wait()
	})
	return p
}

// minerBooks sums /api/v1/miners: connections, shares accepted and rejected.
func minerBooks(t *testing.T, httpAddr string) (n int, accepted, rejected uint64) {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/miners")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []struct {
		Accepted uint64 `json:"accepted"`
		Rejected uint64 `json:"rejected"`
		Lost     uint64 `json:"lost"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		accepted += r.Accepted
		rejected += r.Rejected
	}
	return len(rows), accepted, rejected
}

// handoverRig is one pool, process A with the handover socket and a fleet
// mining through it.
type handoverRig struct {
	pool      *sim.Pool
	cfg       string
	minerAddr string
	httpAddr  string
	a         *proc
	fleet     *sim.Fleet
	minersNum int
}

func startHandoverRig(t *testing.T, miners int) *handoverRig {
	t.Helper()
	pool, err := sim.StartPool(sim.PoolConfig{Difficulty: 1e-7, Extranonce2Size: 4, JobInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	dir := t.TempDir()
	minerAddr, httpAddr := freePort(t), freePort(t)
	cfg := writeFile(t, dir, "switchyard.toml", binConfig(minerAddr, httpAddr, [2]string{"p", pool.Addr()}))
	a := startBinaryArgs(t, nil, "run", "-config", cfg, "-handover")
	a.waitLog("a new process may take the miners over here", 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: minerAddr, Miners: miners, MaxSharesPerSecond: 1, VersionRolling: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	waitUntil(t, 20*time.Second, "every miner mining", func() bool {
		st := fleet.Stats()
		return st.Ready == int64(miners) && st.Accepted > uint64(miners)
	})
	return &handoverRig{pool: pool, cfg: cfg, minerAddr: minerAddr, httpAddr: httpAddr, a: a, fleet: fleet, minersNum: miners}
}

// checkBooks stops the fleet submitting (every share in flight answered,
// connections left open) and compares
// what the miners were answered with the books of the process serving them.
func (r *handoverRig) checkBooks(t *testing.T) {
	t.Helper()
	if !r.fleet.Drain(5 * time.Second) {
		t.Error("shares still unanswered 5 s after the miners stopped submitting")
	}
	st := r.fleet.Stats()
	if n := sumMap(st.Disconnects); n != 0 {
		t.Errorf("miner connections closed: %v", st.Disconnects)
	}
	if st.Lost != 0 || st.Pending != 0 {
		t.Errorf("shares unanswered at the miners: lost %d, pending %d", st.Lost, st.Pending)
	}
	if got := st.Accepted + sumMap(st.Rejected); got != st.Submits {
		t.Errorf("miners submitted %d shares, %d answered", st.Submits, got)
	}
	n, acc, rej := minerBooks(t, r.httpAddr)
	if n != r.minersNum || acc != st.Accepted || rej != sumMap(st.Rejected) {
		t.Errorf("books: %d miners, %d accepted, %d rejected; the miners saw %d accepted, %d rejected (%v)",
			n, acc, rej, st.Accepted, sumMap(st.Rejected), st.Rejected)
	}
	t.Logf("miners: %d submits, %d accepted, rejected %v", st.Submits, st.Accepted, st.Rejected)
}

// TestHandoverKeepsEveryMiner: 2,000 miners mining through process A; B
// (the same binary) takes them over while shares flow. No miner
// connection closes, every share is answered once, every miner mines on B,
// A exits 0, and B's books carry on from A's.
func TestHandoverKeepsEveryMiner(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 miners")
	}
	// Under -race this process's 2,000 simulated miners, not switchyard
	// (built without it), are what runs slow: a few hundred prove the same.
	miners := 2000
	if race.Enabled {
		miners = 300
	}
	r := startHandoverRig(t, miners)
	trigger := time.Now()
	b := startBinaryArgs(t, nil, "run", "-config", r.cfg, "-takeover")
	done := b.waitLog("takeover done: miners resumed here", 20*time.Second)
	resumed := time.Since(trigger)
	r.a.waitExit(15*time.Second, "A after the handover")
	if l := r.a.find("handover done: miners are the new process's"); l == nil || l["moved"] != float64(miners) {
		t.Fatalf("A's handover log: %v", l)
	}
	if done["resumed"] != float64(miners) || done["failed"] != float64(0) {
		t.Fatalf("B's takeover log: %v", done)
	}
	before := r.fleet.Stats().Accepted
	waitUntil(t, 10*time.Second, "shares on B", func() bool { return r.fleet.Stats().Accepted > before+2*uint64(miners) })
	t.Logf("trigger to last miner resumed on B: %s (B's move: %v s)", resumed, done["elapsed_s"])
	r.checkBooks(t)
}

// TestTakeoverWithoutLivePoolKeepsMiners: B's pool cannot be reached; B
// gives up after -takeover-timeout and A keeps every miner.
func TestTakeoverWithoutLivePoolKeepsMiners(t *testing.T) {
	r := startHandoverRig(t, 50)
	dead := freePort(t)
	cfgB := writeFile(t, t.TempDir(), "b.toml", binConfig(r.minerAddr, freePort(t), [2]string{"p", dead}))
	b := startBinaryArgs(t, nil, "run", "-config", cfgB, "-takeover", "-handover-socket", r.cfg+".handover", "-takeover-timeout", "1s")
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatal("B did not give up")
	}
	if err := b.cmd.Wait(); err == nil {
		t.Fatal("B exited 0 without a live pool")
	}
	l := r.a.waitLog("handover aborted before any miner moved: miners stay here", 5*time.Second)
	if why, _ := l["reason"].(string); !strings.Contains(why, "no live pool") {
		t.Errorf("A's abort log %v, want B's reason: no live pool", l)
	}
	before := r.fleet.Stats().Accepted
	waitUntil(t, 10*time.Second, "shares on A", func() bool { return r.fleet.Stats().Accepted > before+100 })
	r.checkBooks(t)
}

// TestTakeoverKilledHalfwayKeepsMiners: B is killed while it holds part of
// the miners' sockets; A takes every miner back as it was.
func TestTakeoverKilledHalfwayKeepsMiners(t *testing.T) {
	r := startHandoverRig(t, 600)
	b := startBinaryArgs(t, []string{stallEnv + "=2"}, "run", "-config", r.cfg, "-takeover")
	b.waitLog("takeover stalled", 20*time.Second)
	_ = b.cmd.Process.Kill()
	l := r.a.waitLog("handover failed: this process keeps its miners", 10*time.Second)
	if l["taken_back"] == float64(0) || l["lost"] != float64(0) {
		t.Fatalf("take back: %v", l)
	}
	before := r.fleet.Stats().Accepted
	waitUntil(t, 10*time.Second, "shares on A", func() bool { return r.fleet.Stats().Accepted > before+1000 })
	r.checkBooks(t)
}

// TestHandoverSeveralListeners: routes on two listen addresses, each with
// its own pool. B takes over every miner of both listeners with no
// connection closed; each miner stays on its route (each pool keeps
// seeing only its own route's miners); after the handover B accepts new
// miners on both addresses, and hands them all on to C.
func TestHandoverSeveralListeners(t *testing.T) {
	pools := make([]*sim.Pool, 2)
	ledgers := make([]*testkit.Buffer, 2)
	for i := range pools {
		ledgers[i] = &testkit.Buffer{}
		p, err := sim.StartPool(sim.PoolConfig{Difficulty: 1e-7, Extranonce2Size: 4, JobInterval: 2 * time.Second, Ledger: ledgers[i]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		pools[i] = p
	}
	addrs := []string{freePort(t), freePort(t)}
	httpAddr := freePort(t)
	cfgText := binConfig(addrs[0], httpAddr, [2]string{"pa", pools[0].Addr()}, [2]string{"pb", pools[1].Addr()}) +
		fmt.Sprintf("[[route]]\nname = \"a\"\nlisten = %q\npools = [\"pa\"]\nworker_mode = \"per-worker\"\n"+
			"[[route]]\nname = \"b\"\nlisten = %q\npools = [\"pb\"]\nworker_mode = \"per-worker\"\n", addrs[0], addrs[1])
	cfg := writeFile(t, t.TempDir(), "switchyard.toml", cfgText)
	a := startBinaryArgs(t, nil, "run", "-config", cfg, "-handover")
	a.waitLog("a new process may take the miners over here", 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const per = 100
	fleets := make([]*sim.Fleet, 2)
	for i := range fleets {
		f, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: addrs[i], Miners: per, User: fmt.Sprintf("w.r%d", i), MaxSharesPerSecond: 1, VersionRolling: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		fleets[i] = f
	}
	waitUntil(t, 20*time.Second, "every miner mining", func() bool {
		for _, f := range fleets {
			if st := f.Stats(); st.Ready != per || st.Accepted < per {
				return false
			}
		}
		return true
	})

	t.Cleanup(func() { // what A said, when B or C fails
		if t.Failed() {
			a.mu.Lock()
			defer a.mu.Unlock()
			t.Logf("A's log: %v", a.logs)
		}
	})
	b := startBinaryArgs(t, nil, "run", "-config", cfg, "-takeover")
	done := b.waitLog("takeover done: miners resumed here", 20*time.Second)
	if done["resumed"] != float64(2*per) || done["failed"] != float64(0) {
		t.Fatalf("B's takeover log: %v", done)
	}
	a.waitExit(15*time.Second, "A after the handover")
	// New miners on both addresses reach B, each on its route's pool.
	late := make([]*sim.Fleet, 2)
	for i := range late {
		f, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: addrs[i], Miners: 5, User: fmt.Sprintf("w.late%d", i), MaxSharesPerSecond: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		late[i] = f
	}
	before := []uint64{fleets[0].Stats().Accepted, fleets[1].Stats().Accepted}
	waitUntil(t, 15*time.Second, "shares on B from every fleet", func() bool {
		for i := range fleets {
			if fleets[i].Stats().Accepted < before[i]+2*per || late[i].Stats().Accepted < 5 {
				return false
			}
		}
		return true
	})
	// And on to C: B hands over the listeners it inherited. C's config
	// moves the HTTP server to a new address: C serves that one, not the
	// old socket.
	b.waitLog("a new process may take the miners over here", 10*time.Second) // B serves the socket A left
	httpC := freePort(t)
	cfgC := writeFile(t, t.TempDir(), "c.toml", strings.Replace(cfgText, fmt.Sprintf("listen = %q\n[log]", httpAddr), fmt.Sprintf("listen = %q\n[log]", httpC), 1))
	c := startBinaryArgs(t, nil, "run", "-config", cfgC, "-takeover", "-handover-socket", cfg+".handover")
	if done := c.waitLog("takeover done: miners resumed here", 20*time.Second); done["resumed"] != float64(2*per+10) || done["failed"] != float64(0) {
		t.Fatalf("C's takeover log: %v", done)
	}
	b.waitExit(15*time.Second, "B after the handover")
	all := append(slices.Clone(fleets), late...)
	marks := make([]uint64, len(all))
	for i, f := range all {
		marks[i] = f.Stats().Accepted
	}
	waitUntil(t, 15*time.Second, "shares on C from every fleet", func() bool {
		for i, f := range all {
			if f.Stats().Accepted < marks[i]+5 {
				return false
			}
		}
		return true
	})
	for i, f := range all {
		if !f.Drain(5 * time.Second) {
			t.Errorf("fleet %d: shares unanswered 5 s after the miners stopped submitting", i)
		}
		// B's pool sessions are its own: work from A's jobs in flight at
		// the resume is answered stale, nothing else.
		st := f.Stats()
		if n := sumMap(st.Disconnects); n != 0 || st.Lost != 0 || sumMap(st.Rejected) != st.Rejected["stale"] || st.Rejected["stale"] > per {
			t.Errorf("fleet %d: disconnects %v, lost %d, rejected %v", i, st.Disconnects, st.Lost, st.Rejected)
		}
		if got := st.Accepted + sumMap(st.Rejected); got != st.Submits {
			t.Errorf("fleet %d: %d shares submitted, %d answered", i, st.Submits, got)
		}
	}
	// Each pool saw only its own route's miners, before and after the
	// handover: pa only r0.* and late0.*, pb only r1.* and late1.*
	// (per-worker mode: the pool sees <account>.<worker>).
	n, _, _ := minerBooks(t, httpC)
	if n != 2*per+10 {
		t.Errorf("C serves %d miners, want %d", n, 2*per+10)
	}
	if conn, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("the old HTTP address %s still answers after C moved it to %s", httpAddr, httpC)
	}
	for i, l := range ledgers {
		es, err := sim.ReadLedger(bytes.NewReader(l.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if w := e.Worker; !strings.HasPrefix(w, fmt.Sprintf("acct.p%c.r%d.", "ab"[i], i)) && !strings.HasPrefix(w, fmt.Sprintf("acct.p%c.late%d.", "ab"[i], i)) {
				t.Fatalf("pool %d got a share from %q, a miner of another route", i, w)
			}
		}
		if len(es) == 0 {
			t.Errorf("pool %d got no share", i)
		}
	}
}
