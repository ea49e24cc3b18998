package sim

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// perWorker counts accepted ledger entries by worker.
func perWorker(es []LedgerEntry) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		if e.Result == ResultAccepted {
			m[e.Worker]++
		}
	}
	return m
}

// checkFleetLedger checks that a closed fleet's ledger adds up to its
// counters and that every submit ended in one bucket.
func checkFleetLedger(t *testing.T, es []LedgerEntry, s FleetStats) {
	t.Helper()
	var accepted, lost uint64
	rejected := map[string]uint64{}
	for _, e := range es {
		switch e.Result {
		case ResultAccepted:
			accepted++
		case ResultRejected:
			rejected[e.Reason]++
		case ResultLost:
			lost++
		default:
			t.Fatalf("ledger result %q", e.Result)
		}
	}
	if s.Pending != 0 {
		t.Fatalf("pending %d after Close", s.Pending)
	}
	if s.Submits != s.Accepted+s.RejectedTotal()+s.Lost {
		t.Fatalf("submits %d != accepted %d + rejected %d + lost %d", s.Submits, s.Accepted, s.RejectedTotal(), s.Lost)
	}
	if uint64(len(es)) != s.Submits || accepted != s.Accepted || lost != s.Lost || fmt.Sprint(rejected) != fmt.Sprint(s.Rejected) {
		t.Fatalf("ledger: %d lines, %d accepted, %d lost, rejected %v; stats %s", len(es), accepted, lost, rejected, s)
	}
}

// TestFleetDirect runs miners straight at the pool: every share must be
// accepted, and both ledgers must add up. Jobs change often, but none is a
// new block: a share in flight when one arrives is rightly stale, which
// TestFleetCleanJobs allows for.
func TestFleetDirect(t *testing.T) {
	const miners, each = 20, 5
	var pled, fled syncBuffer
	p := startPool(t, PoolConfig{Ledger: &pled, JobInterval: 200 * time.Millisecond, CleanEvery: 1 << 30})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: miners, User: "farm", MaxSharesPerSecond: 20,
		SuggestDifficulty: testDiff, Ledger: &fled, SourceAddrs: []string{"127.0.0.1", "127.0.0.2"}})
	waitFor(t, 20*time.Second, "every miner to have shares accepted", func() bool {
		w := perWorker(pled.entries(t))
		if len(w) < miners {
			return false
		}
		for _, n := range w {
			if n < each {
				return false
			}
		}
		return true
	})
	f.Close()
	p.Close()
	fs, ps := f.Stats(), p.Stats()
	t.Logf("fleet: %s", fs)
	t.Logf("pool:  %s", ps)
	if fs.RejectedTotal() != 0 || ps.RejectedTotal() != 0 || fs.Lost != 0 {
		t.Fatalf("invalid shares: fleet %s; pool %s", fs, ps)
	}
	if fs.Accepted != ps.Accepted || fs.Submits != ps.Submits || fs.Ready != 0 || fs.Up != 0 {
		t.Fatalf("fleet and pool disagree: fleet %s; pool %s", fs, ps)
	}
	if fs.Latency.Count != fs.Submits || fs.Latency.P50 <= 0 || fs.Latency.Max < fs.Latency.P99 {
		t.Fatalf("latency %+v", fs.Latency)
	}
	checkPoolLedger(t, pled.entries(t), ps)
	checkFleetLedger(t, fled.entries(t), fs)
	if w := perWorker(fled.entries(t)); len(w) != miners || w["farm.0"] < each {
		t.Fatalf("fleet ledger by worker %v", w)
	}
}

// TestFleetCleanJobs makes every job a new block: miners must drop old work
// at once, so the only refusals are shares already in flight (stale).
func TestFleetCleanJobs(t *testing.T) {
	p := startPool(t, PoolConfig{JobInterval: 100 * time.Millisecond, CleanEvery: 1})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 5, MaxSharesPerSecond: 20})
	waitFor(t, 10*time.Second, "shares across new blocks", func() bool {
		return p.Stats().Accepted >= 30 && p.Stats().Jobs >= 10
	})
	f.Close()
	s := f.Stats()
	if s.RejectedTotal() != s.Rejected["stale"] || s.Lost != 0 || s.Submits != s.Accepted+s.RejectedTotal() {
		t.Fatalf("fleet %s", s)
	}
}

func TestFleetVersionRolling(t *testing.T) {
	var led syncBuffer
	p := startPool(t, PoolConfig{Ledger: &led, VersionMask: 0x0fffe000})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 3, VersionRolling: true, MaxSharesPerSecond: 50})
	waitFor(t, 10*time.Second, "30 accepted", func() bool { return p.Stats().Accepted >= 30 })
	f.Close()
	p.Close()
	if s := p.Stats(); s.RejectedTotal() != 0 {
		t.Fatalf("pool %s", s)
	}
	versions := map[string]bool{}
	for _, e := range led.entries(t) {
		v, err := strconv.ParseUint(e.Version, 16, 32)
		if err != nil || v&^0x0fffe000 != 0 {
			t.Fatalf("share version bits %q outside the negotiated mask", e.Version)
		}
		versions[e.Version] = true
	}
	if len(versions) < 10 {
		t.Fatalf("only %d distinct version bits in 30 shares", len(versions))
	}
}

func TestFleetSetExtranonce(t *testing.T) {
	var led syncBuffer
	p := startPool(t, PoolConfig{Ledger: &led, Extranonce2Size: 4, JobInterval: time.Hour})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 3, ExtranonceSubscribe: true, MaxSharesPerSecond: 50})
	waitFor(t, 10*time.Second, "a share from every miner", func() bool { return len(perWorker(led.entries(t))) == 3 })
	n, err := p.SetExtranonce(6)
	if err != nil || n != 3 {
		t.Fatalf("SetExtranonce: %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "shares with the new extranonce2 size", func() bool {
		n := 0
		for _, e := range led.entries(t) {
			if len(e.Extranonce2) == 12 && e.Result == ResultAccepted {
				n++
			}
		}
		return n >= 9
	})
	f.Close()
	p.Close()
	if s := p.Stats(); s.RejectedTotal() != 0 {
		t.Fatalf("pool %s", s)
	}
	// Each connection's extranonce1 changed along with the size.
	en1 := map[uint64]map[string]bool{}
	for _, e := range led.entries(t) {
		if en1[e.Conn] == nil {
			en1[e.Conn] = map[string]bool{}
		}
		en1[e.Conn][e.Extranonce1] = true
	}
	for conn, set := range en1 {
		if len(set) != 2 {
			t.Fatalf("connection %d used extranonce1s %v", conn, set)
		}
	}
}

func TestFleetReconnect(t *testing.T) {
	a := startPool(t, PoolConfig{})
	b := startPool(t, PoolConfig{})
	f := startFleet(t, FleetConfig{Addr: a.Addr(), Miners: 3, MaxSharesPerSecond: 20})
	waitFor(t, 10*time.Second, "ready on a", func() bool { return f.Stats().Ready == 3 })

	_, port, _ := net.SplitHostPort(b.Addr())
	pn, _ := strconv.Atoi(port)
	if n := a.Reconnect("127.0.0.1", pn, 0); n != 3 {
		t.Fatalf("reconnect sent to %d", n)
	}
	waitFor(t, 10*time.Second, "miners on b", func() bool {
		return b.Stats().Open == 3 && b.Stats().Accepted >= 3 && a.Stats().Open == 0
	})
	if s := f.Stats(); s.Reconnects != 3 || s.Disconnects[CauseReconnect] != 3 {
		t.Fatalf("fleet %s", s)
	}
	// An empty host means the same address, now.
	if n := b.Reconnect("", 0, 0); n != 3 {
		t.Fatalf("reconnect sent to %d", n)
	}
	waitFor(t, 10*time.Second, "miners back on b", func() bool {
		return b.Stats().Connections == 6 && f.Stats().Ready == 3
	})
	f.Close()
	if s := f.Stats(); s.Reconnects != 6 || s.RejectedTotal() != 0 {
		t.Fatalf("fleet %s", s)
	}
}

// TestFleetHostileServer feeds a miner junk and checks it counts it and
// carries on without panicking.
func TestFleetHostileServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	junk := []string{
		`garbage`,
		`{"id":null,"method":"mining.notify","params":[1]}`,
		`{"id":null,"method":"mining.set_difficulty","params":["x"]}`,
		`{"id":null,"method":"mining.set_extranonce","params":["zz",4]}`,
		`{"id":null,"method":"client.reconnect","params":["h","notaport"]}`,
		`{"id":4242,"result":true,"error":null}`,
		`{"id":7,"method":"client.get_version","params":[]}`,
		`{"id":8,"method":"mining.frob","params":[]}`,
		`{"id":2,"result":[[],"zz",4],"error":null}`, // bad subscribe answer: protocol error
	}
	replies := make(chan string, 2)
	go func() {
		// First session: junk, then a bad subscribe answer.
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		r := bufio.NewReader(nc)
		r.ReadString('\n') // subscribe
		nc.Write([]byte(strings.Join(junk, "\n") + "\n"))
		for range 2 {
			line, _ := r.ReadString('\n')
			replies <- line
		}
		r.ReadString('\n') // EOF: the miner hung up
		nc.Close()
		// Second session: a line longer than any pool may send.
		if nc, err = ln.Accept(); err != nil {
			return
		}
		nc.Write([]byte(strings.Repeat("x", minerMaxLineLen+10)))
		bufio.NewReader(nc).ReadString('\n')
		nc.Close()
	}()
	f := startFleet(t, FleetConfig{Addr: ln.Addr().String(), RetryDelay: 10 * time.Millisecond})
	waitFor(t, 5*time.Second, "two sessions", func() bool { return f.Stats().Disconnects[CauseProtocol] >= 2 })
	f.Close()
	s := f.Stats()
	if s.Malformed != 6 {
		t.Fatalf("malformed %d, want 6: %s", s.Malformed, s)
	}
	if got := <-replies; !strings.Contains(got, `"stratumsim/1.0"`) {
		t.Fatalf("get_version answered %q", got)
	}
	if got := <-replies; !strings.Contains(got, `"Unknown method"`) {
		t.Fatalf("unknown method answered %q", got)
	}
}

func TestFleetIdle(t *testing.T) {
	p := startPool(t, PoolConfig{JobInterval: 50 * time.Millisecond})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 5, Idle: true})
	waitFor(t, 5*time.Second, "idle miners to see jobs", func() bool { return f.Stats().Jobs >= 15 })
	f.Close()
	if s := f.Stats(); s.Submits != 0 || p.Stats().Submits != 0 {
		t.Fatalf("idle fleet submitted: %s", s)
	}
}

func TestFleetConfigErrors(t *testing.T) {
	for _, cfg := range []FleetConfig{
		{Addr: "nohost"},
		{Addr: "127.0.0.1:1", SourceAddrs: []string{"not-an-ip"}},
		{Addr: "127.0.0.1:1", Miners: -1},
	} {
		if _, err := StartFleet(t.Context(), cfg); err == nil {
			t.Errorf("StartFleet(%+v) succeeded", cfg)
		}
	}
}
