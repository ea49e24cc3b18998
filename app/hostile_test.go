package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/race"
	"switchyard/internal/testkit"
	"switchyard/metrics"
	"switchyard/sim"
	"switchyard/stratum"
)

// Hostile miners: every case talks raw TCP to the running proxy and checks
// from outside (answers, closes, /metrics counters) that the proxy answered
// with a Stratum error or closed that one connection, while a fleet of
// well-behaved miners kept mining, and that no goroutine, connection or
// memory was left behind.

// hostileFleet is the number of well-behaved miners beside every case.
const hostileFleet = 8

// allLimits are the limit labels a case's expectations are checked against.
var allLimits = []string{
	metrics.LimitMaxConnections, metrics.LimitMaxConnectionsPerIP, metrics.LimitAuthTimeout,
	metrics.LimitMaxSubmitsPerSecond, metrics.LimitMaxPendingWriteBytes, metrics.LimitMaxLineBytes,
}

var allProtocolErrors = []string{metrics.ProtocolMalformed, metrics.ProtocolUnknownMethod, metrics.ProtocolBadParams}

// hostileEnv is a rig with a well-behaved fleet mining through it.
type hostileEnv struct {
	t     *testing.T
	r     *rig
	fleet *sim.Fleet
}

func newHostileEnv(t *testing.T, mutate func(*config.Config), sources []string) *hostileEnv {
	t.Helper()
	r := newRig(t, 1, nil, mutate)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{
		Addr:               r.app.MinerAddr(),
		Miners:             hostileFleet,
		SourceAddrs:        sources,
		User:               "good",
		VersionRolling:     true,
		MaxSharesPerSecond: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	h := &hostileEnv{t: t, r: r, fleet: fleet}
	waitFor(t, 20*time.Second, "the fleet to mine", func() bool {
		return fleet.Stats().Accepted >= 2*hostileFleet
	})
	return h
}

// expect is what a hostile case must leave behind: exact increments of
// limit hits and protocol errors (unlisted labels must not move), and of
// connections closed by reason.
type expect struct {
	limits   map[string]float64
	protocol map[string]float64
	closed   map[string]float64
	// staleOK lets the fleet see stale shares: a case that pushes jobs
	// faster than any pool does outdates the fleet's work.
	staleOK bool
}

// closeReasons are the switchyard_miner_connections_closed_total reasons a
// case's expectations may name.
var closeReasons = []string{"line_too_long", "slow_reader", "auth_timeout", "eof", "error"}

type snapshot struct {
	limits, protocol, closedBy map[string]float64
	opened, closed             float64
	goroutines                 int
	heap                       uint64
	accepted                   uint64
}

func (h *hostileEnv) snap() snapshot {
	s := snapshot{limits: map[string]float64{}, protocol: map[string]float64{}, closedBy: map[string]float64{}}
	for _, reason := range closeReasons {
		s.closedBy[reason] = h.r.counter("switchyard_miner_connections_closed_total", "reason", reason)
	}
	for _, l := range allLimits {
		s.limits[l] = h.r.counter("switchyard_limit_hits_total", "limit", l)
	}
	for _, k := range allProtocolErrors {
		s.protocol[k] = h.r.counter("switchyard_protocol_errors_total", "kind", k)
	}
	s.opened = h.r.counter("switchyard_miner_connections_opened_total")
	s.closed = h.r.counter("switchyard_miner_connections_closed_total")
	s.goroutines = runtime.NumGoroutine()
	s.heap = heapInuse()
	s.accepted = h.fleet.Stats().Accepted
	return s
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// maxHeapGrowth bounds heap growth over one case: generous, as the fleet
// and the sim pool allocate as they go; a leak of the hostile input itself
// (1 MiB lines, 10,000 connections) would exceed it.
const maxHeapGrowth = 32 << 20

// run runs one hostile case. attack returns how many connections it
// opened, all of which the proxy must have closed afterwards (-1: not
// known); it may fill in want's maps before it returns. and then checks that the proxy is back where it
// was: hostile connections gone, the fleet still mining without a
// disconnect or a refused share, goroutines and heap back near the
// baseline, and counters moved by exactly what the case expects.
func (h *hostileEnv) run(name string, want expect, attack func(t *testing.T) (closedConns float64)) {
	h.t.Run(name, func(t *testing.T) {
		before := h.snap()
		fb := h.fleet.Stats()
		conns := attack(t)
		r := h.r

		waitFor(t, 15*time.Second, "hostile connections to be closed by the proxy", func() bool {
			return r.app.Proxy.Miners() == hostileFleet
		})
		waitFor(t, 20*time.Second, "the fleet to keep mining", func() bool {
			return h.fleet.Stats().Accepted >= before.accepted+2*hostileFleet
		})
		fs := h.fleet.Stats()
		if d := sumMap(fs.Disconnects) - sumMap(fb.Disconnects); d != 0 || fs.Up != hostileFleet {
			t.Errorf("well-behaved miners disconnected: %v (up %d)", fs.Disconnects, fs.Up)
		}
		stale := fs.Rejected[stratum.ReasonStale.String()] - fb.Rejected[stratum.ReasonStale.String()]
		if !want.staleOK {
			stale = 0
		}
		if fs.RejectedTotal()-stale != fb.RejectedTotal() || fs.Lost != fb.Lost {
			t.Errorf("well-behaved miners saw rejects %v / lost %d", fs.Rejected, fs.Lost)
		}

		slack := 8
		if err := pollErr(10*time.Second, func() bool { return runtime.NumGoroutine() <= before.goroutines+slack }); err != nil {
			var sb strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
			t.Errorf("goroutines: %d before, %d after:\n%s", before.goroutines, runtime.NumGoroutine(), sb.String())
		}
		if after := heapInuse(); after > before.heap+maxHeapGrowth {
			t.Errorf("heap in use grew from %d to %d bytes", before.heap, after)
		}

		for _, l := range allLimits {
			if got := r.counter("switchyard_limit_hits_total", "limit", l) - before.limits[l]; got != want.limits[l] {
				t.Errorf("limit_hits{limit=%q} went up by %v, want %v", l, got, want.limits[l])
			}
		}
		for _, k := range allProtocolErrors {
			if got := r.counter("switchyard_protocol_errors_total", "kind", k) - before.protocol[k]; got != want.protocol[k] {
				t.Errorf("protocol_errors{kind=%q} went up by %v, want %v", k, got, want.protocol[k])
			}
		}
		for reason, n := range want.closed {
			if got := r.counter("switchyard_miner_connections_closed_total", "reason", reason) - before.closedBy[reason]; got != n {
				t.Errorf("connections_closed{reason=%q} went up by %v, want %v", reason, got, n)
			}
		}
		opened := r.counter("switchyard_miner_connections_opened_total") - before.opened
		closed := r.counter("switchyard_miner_connections_closed_total") - before.closed
		if opened != closed {
			t.Errorf("%v connections opened, %v closed", opened, closed)
		}
		if conns >= 0 && closed != conns {
			t.Errorf("%v connections closed, want %v", closed, conns)
		}
	})
}

// errCode returns the Stratum error code of an answer, 0 for a success.
func errCode(m *stratum.Message) int {
	if m.Error == nil {
		return 0
	}
	code, _ := stratum.ErrorParam(m.Error)
	return code
}

// TestHostileMiners throws malformed, oversized, garbage, out-of-order and
// abusive traffic at the proxy over real TCP.
func TestHostileMiners(t *testing.T) {
	h := newHostileEnv(t, func(c *config.Config) {
		c.Server.MaxPendingWriteBytes = config.MinPendingWriteBytes
		c.Server.MaxSubmitsPerSecond = 50
	}, nil)
	addr := h.r.app.MinerAddr()

	h.run("invalid JSON", expect{protocol: map[string]float64{metrics.ProtocolMalformed: 10}}, func(t *testing.T) float64 {
		malformedShares := func() float64 {
			return h.r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonMalformed.String())
		}
		before := malformedShares()
		rc := dialClient(t, addr)
		defer rc.conn.Close()
		lines := []string{
			`{`,
			`not json at all`,
			`{"id":1,"method":"mining.subscribe","params":[}`,
			`{"id":2,"method":}`,
			`[1,2,3]`,
			`{}`,
			`{"id":{"a":1},"method":"mining.subscribe","params":[]}`,
			`{"id":3,"method":"mining.subscribe","params":"x"}`,
			`{"id":4,"method":"mining.subscribe","params":[]}}`,
			// A submit cut short is counted as a malformed share, so that
			// a share cannot vanish uncounted; the lines above are not shares.
			`{"id":5,"method":"mining.submit","params":["rig.1","1","00000000","5f5e1000"`,
		}
		if err := rc.write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
			t.Fatal(err)
		}
		answers := rc.sentinel()
		if len(answers) != len(lines) {
			t.Fatalf("%d answers to %d malformed lines", len(answers), len(lines))
		}
		for i, m := range answers {
			if !m.IsResponse() || errCode(m) != stratum.CodeOther {
				t.Errorf("line %q answered %s / %s, want error %d", lines[i], m.Result, m.Error, stratum.CodeOther)
			}
		}
		if got := malformedShares(); got != before+1 {
			t.Errorf("rejected{malformed} shares went from %v to %v, want one more", before, got)
		}
		return 1
	})

	h.run("1 MiB line without newline", expect{limits: map[string]float64{metrics.LimitMaxLineBytes: 1},
		closed: map[string]float64{"line_too_long": 1}}, func(t *testing.T) float64 {
		rc := dialClient(t, addr)
		big := bytes.Repeat([]byte(`{"id":1,"method":"mining.subscribe","params":["`), (1<<20)/47)
		_ = rc.write(big) // the proxy closes mid-way: a write error is expected
		if !rc.closedByPeer(10 * time.Second) {
			t.Fatal("connection still open after a 1 MiB line")
		}
		return 1
	})

	garbageLines := 64
	h.run("binary garbage", expect{protocol: map[string]float64{metrics.ProtocolMalformed: float64(garbageLines)}}, func(t *testing.T) float64 {
		rc := dialClient(t, addr)
		defer rc.conn.Close()
		rng := rand.New(rand.NewPCG(7, 7))
		var buf []byte
		for i := 0; i < garbageLines; i++ {
			buf = append(buf, 0xff) // never blank, never JSON
			for n := rng.IntN(300); n > 0; n-- {
				b := byte(rng.Uint32())
				if b == '\n' {
					b = 0
				}
				buf = append(buf, b)
			}
			buf = append(buf, '\n')
		}
		if err := rc.write(buf); err != nil {
			t.Fatal(err)
		}
		answers := rc.sentinel()
		if len(answers) != garbageLines {
			t.Fatalf("%d answers to %d garbage lines", len(answers), garbageLines)
		}
		for _, m := range answers {
			if errCode(m) != stratum.CodeOther {
				t.Errorf("garbage answered %s / %s", m.Result, m.Error)
			}
		}
		return 1
	})

	h.run("unknown methods", expect{protocol: map[string]float64{metrics.ProtocolUnknownMethod: 5}}, func(t *testing.T) float64 {
		rc := dialClient(t, addr)
		defer rc.conn.Close()
		lines := []string{
			`{"id":1,"method":"mining.get_transactions","params":["1"]}`,
			`{"id":2,"method":"eth_submitLogin","params":["0xabc"]}`,
			`{"id":3,"method":"mining.multi_version","params":[1]}`,
			`{"id":"x","method":"a.b.c.d.e.f","params":[]}`,
			`{"id":null,"method":"mining.unknown_notification","params":[]}`, // no answer
		}
		if err := rc.write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
			t.Fatal(err)
		}
		answers := rc.sentinel()
		if len(answers) != 4 {
			t.Fatalf("%d answers to 4 unknown requests and a notification", len(answers))
		}
		for i, m := range answers {
			var want stratum.Message
			_ = want.Decode([]byte(lines[i]))
			if string(m.ID) != string(want.ID) || errCode(m) != stratum.CodeOther {
				t.Errorf("%s answered id %s: %s", lines[i], m.ID, m.Error)
			}
		}
		return 1
	})

	h.run("wrong parameter types", expect{protocol: map[string]float64{metrics.ProtocolBadParams: 5}}, func(t *testing.T) float64 {
		rc := dialClient(t, addr)
		defer rc.conn.Close()
		bad := []string{
			`{"id":1,"method":"mining.authorize","params":[{"user":"u"},"x"]}`,
			`{"id":2,"method":"mining.authorize","params":[]}`,
			`{"id":3,"method":"mining.suggest_difficulty","params":["lots"]}`,
			`{"id":4,"method":"mining.suggest_difficulty","params":[-1]}`,
			`{"id":5,"method":"mining.configure","params":[42,{}]}`,
		}
		if err := rc.write([]byte(strings.Join(bad, "\n") + "\n")); err != nil {
			t.Fatal(err)
		}
		answers := rc.sentinel()
		if len(answers) != len(bad) {
			t.Fatalf("%d answers to %d requests", len(answers), len(bad))
		}
		for i, m := range answers {
			if string(m.ID) != fmt.Sprint(i+1) || errCode(m) != stratum.CodeOther {
				t.Errorf("%s answered %s / %s", bad[i], m.Result, m.Error)
			}
		}
		// Still usable: a real handshake and a submit with params of the
		// wrong types, refused as a malformed share.
		c := rc // the same connection, now as an ordinary miner
		c.id = 100
		c.handshake("rig.types")
		before := h.r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonMalformed.String())
		if m := c.call(stratum.MethodSubmit, `[1,2,3,4,5]`); errCode(m) != stratum.CodeOther {
			t.Errorf("submit with numbers answered %s / %s", m.Result, m.Error)
		}
		if got := h.r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonMalformed.String()); got != before+1 {
			t.Errorf("rejected{malformed} went from %v to %v", before, got)
		}
		return 1
	})

	h.run("submit before subscribe and authorize", expect{}, func(t *testing.T) float64 {
		c := dialClient(t, addr)
		defer c.conn.Close()
		r := h.r
		ns := r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonNotSubscribed.String())
		na := r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonNotAuthorized.String())
		sub := `["rig.early","1","00000000","5f5e1000","00000000"]`
		if m := c.call(stratum.MethodSubmit, sub); errCode(m) != stratum.CodeNotSubscribed {
			t.Errorf("submit before subscribe: %s / %s", m.Result, m.Error)
		}
		c.call(stratum.MethodSubscribe, `[]`)
		if m := c.call(stratum.MethodSubmit, sub); errCode(m) != stratum.CodeUnauthorized {
			t.Errorf("submit before authorize: %s / %s", m.Result, m.Error)
		}
		if got := r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonNotSubscribed.String()); got != ns+1 {
			t.Errorf("rejected{not_subscribed} went from %v to %v", ns, got)
		}
		if got := r.counter("switchyard_shares_total", "result", "rejected", "reason", stratum.ReasonNotAuthorized.String()); got != na+1 {
			t.Errorf("rejected{not_authorized} went from %v to %v", na, got)
		}
		return 1
	})

	// The rate limit counts per wall-clock second, so how many of a burst
	// are refused depends on where the second ticks: the test counts the
	// refusals it was answered and expects exactly that many limit hits.
	flood := expect{limits: map[string]float64{}}
	h.run("submit flood", flood, func(t *testing.T) float64 {
		c := dialClient(t, addr)
		defer c.conn.Close()
		c.handshake("rig.flood")
		const burst = 200
		refused := 0.0
		var sb strings.Builder
		for i := 0; i < burst; i++ {
			fmt.Fprintf(&sb, `{"id":%d,"method":"mining.submit","params":["rig.flood","ffffffff","000000","5f5e1000","%08x"]}`+"\n", 1000+i, i)
		}
		if err := c.write([]byte(sb.String())); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < burst; i++ {
			m := c.answer(1000 + i)
			switch code, msg := stratum.ErrorParam(m.Error); {
			case code == stratum.CodeJobNotFound:
			case code == stratum.CodeOther && strings.Contains(strings.ToLower(msg), "too many"):
				refused++
			default:
				t.Fatalf("submit %d answered %s / %s", i, m.Result, m.Error)
			}
		}
		if refused == 0 {
			t.Errorf("%d submits in a burst, none refused with max_submits_per_second = 50", burst)
		}
		flood.limits[metrics.LimitMaxSubmitsPerSecond] = refused
		return 1
	})

	cycles := 10000
	if race.Enabled || testing.Short() {
		cycles = 1000
	}
	h.run(fmt.Sprintf("%d connect-disconnect cycles", cycles), expect{}, func(t *testing.T) float64 {
		const workers = 4
		deadline := time.Now().Add(60 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < cycles; i += workers {
					if time.Now().After(deadline) {
						errs <- errors.New("cycles took over a minute")
						return
					}
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						errs <- err
						return
					}
					switch i % 3 {
					case 0: // straight close
					case 1: // a request, then gone without reading
						_, _ = c.Write([]byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n"))
					case 2: // reset
						_ = c.(*net.TCPConn).SetLinger(0)
					}
					_ = c.Close()
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return -1 // opened == closed is checked by run
	})

	h.run("miner that never reads", expect{limits: map[string]float64{metrics.LimitMaxPendingWriteBytes: 1},
		closed: map[string]float64{"slow_reader": 1}, staleOK: true}, func(t *testing.T) float64 {
		// A small receive window so the kernel stops taking the proxy's
		// writes early.
		d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			if err != nil {
				return err
			}
			return serr
		}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c := &client{t: t, conn: nc, rd: bufio.NewReader(nc)}
		c.handshake("rig.deaf")
		closedBefore := h.r.counter("switchyard_miner_connections_closed_total", "reason", "slow_reader")
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; ; i++ {
			if h.r.counter("switchyard_miner_connections_closed_total", "reason", "slow_reader") > closedBefore {
				t.Logf("closed after %d jobs", i)
				break
			}
			if i >= 20000 || time.Now().After(deadline) {
				t.Fatalf("still connected after %d jobs", i)
			}
			h.r.pools[0].PushJob(false)
			if i%16 == 15 {
				time.Sleep(5 * time.Millisecond) // let the fan-out run
			}
		}
		return 1
	})
}

// TestConnectionLimits: the deadline to subscribe and authorize (slowloris,
// silent connections) and the connection caps, in total and per IP, each
// close only the offending connection and are counted once.
func TestConnectionLimits(t *testing.T) {
	// The fleet dials from its own loopback addresses, so that the per-IP
	// cap only meets the test's connections from 127.0.0.1.
	var sources []string
	for i := 0; i < hostileFleet; i++ {
		sources = append(sources, fmt.Sprintf("127.0.0.%d", 10+i))
	}
	const perIP, spare = 2, 5
	h := newHostileEnv(t, func(c *config.Config) {
		c.Server.AuthTimeout = config.Duration(time.Second)
		c.Server.MaxConnectionsPerIP = perIP
		c.Server.MaxConnections = hostileFleet + spare
	}, sources)
	addr := h.r.app.MinerAddr()

	h.run("slowloris and silent connections", expect{limits: map[string]float64{metrics.LimitAuthTimeout: 2},
		closed: map[string]float64{"auth_timeout": 2}}, func(t *testing.T) float64 {
		silent := dialClient(t, addr)
		slow := dialClient(t, addr)
		line := []byte(`{"id":1,"method":"mining.subscribe","params":["slowloris/1.0"]}` + "\n" +
			`{"id":2,"method":"mining.authorize","params":["slow.1","x"]}` + "\n")
		done := make(chan bool, 1)
		go func() { done <- slow.closedByPeer(20 * time.Second) }()
		closed := false
	drip:
		for i := 0; i < len(line); i++ {
			select {
			case closed = <-done:
				break drip
			case <-time.After(75 * time.Millisecond):
			}
			if slow.write(line[i:i+1]) != nil {
				break
			}
		}
		if !closed {
			closed = <-done
		}
		if !closed {
			t.Fatal("slowloris connection still open")
		}
		if !silent.closedByPeer(20 * time.Second) {
			t.Fatal("silent connection still open")
		}
		return 2
	})

	// conns opens n authorized connections from src.
	conns := func(t *testing.T, src string, n int) []*client {
		var cs []*client
		for i := 0; i < n; i++ {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = nc.Close() })
			c := &client{t: t, conn: nc, rd: bufio.NewReader(nc)}
			c.handshake(fmt.Sprintf("cap.%s.%d", src, i))
			cs = append(cs, c)
		}
		return cs
	}
	refused := func(t *testing.T, src string) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		rc := &client{t: t, conn: nc, rd: bufio.NewReader(nc)}
		_ = rc.write([]byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n"))
		if !rc.closedByPeer(10 * time.Second) {
			t.Fatalf("connection from %s over the cap stays open", src)
		}
	}
	closeAll := func(cs []*client) {
		for _, c := range cs {
			_ = c.conn.Close()
		}
	}

	h.run("max_connections_per_ip", expect{limits: map[string]float64{metrics.LimitMaxConnectionsPerIP: 1}}, func(t *testing.T) float64 {
		cs := conns(t, "127.0.0.1", perIP)
		refused(t, "127.0.0.1")
		// The admitted ones still work.
		for _, c := range cs {
			if m := c.call(stratum.MethodExtranonceSubscribe, `[]`); !stratum.IsTrue(m.Result) {
				t.Errorf("admitted connection answered %s / %s", m.Result, m.Error)
			}
		}
		closeAll(cs)
		return perIP // the refused connection was never a miner
	})

	h.run("max_connections", expect{limits: map[string]float64{metrics.LimitMaxConnections: 1}}, func(t *testing.T) float64 {
		var cs []*client
		for i := 0; i < spare; i++ {
			cs = append(cs, conns(t, fmt.Sprintf("127.0.1.%d", 1+i), 1)...)
		}
		refused(t, "127.0.2.1")
		closeAll(cs)
		return spare
	})
}

// pollErr is testkit.Poll as an error, for callers that report it.
func pollErr(within time.Duration, cond func() bool) error {
	if !testkit.Poll(within, cond) {
		return errors.New("timed out")
	}
	return nil
}
