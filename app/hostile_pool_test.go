package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
	"switchyard/stratum"
)

// Hostile pools: a hand-written pool that behaves until told to attack, in
// front of a well-behaved simulated pool. Each attack must either be
// ignored (the session answers a probe on the same connection) or drop the
// session, which then reconnects; the miners behind switchyard keep their
// connections and keep mining throughout.

// evilPool is a raw TCP Stratum pool: it answers the handshake, sends one
// valid job and accepts every share, until a test writes an attack to its
// current connection.
type evilPool struct {
	t       *testing.T
	ln      net.Listener
	release chan struct{} // closed: answer handshakes (held until then)
	onLive  func(ec *evilConn)

	mu    sync.Mutex
	conns []*evilConn
	jobs  int
}

type evilConn struct {
	c      net.Conn
	wmu    sync.Mutex
	live   chan struct{} // handshake done, first job sent
	probed chan struct{} // the probe was answered
	done   chan struct{} // closed by switchyard (or failed)
	once   sync.Once
	pOnce  sync.Once
}

func startEvilPool(t *testing.T) *evilPool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &evilPool{t: t, ln: ln, release: make(chan struct{})}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, ec := range p.conns {
			_ = ec.c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ec := &evilConn{c: c, live: make(chan struct{}), probed: make(chan struct{}), done: make(chan struct{})}
			p.mu.Lock()
			p.conns = append(p.conns, ec)
			p.mu.Unlock()
			go p.serve(ec)
		}
	}()
	return p
}

func (p *evilPool) setOnLive(f func(ec *evilConn)) {
	p.mu.Lock()
	p.onLive = f
	p.mu.Unlock()
}

func (p *evilPool) addr() string { return p.ln.Addr().String() }

func (p *evilPool) connCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *evilPool) last() *evilConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[len(p.conns)-1]
}

// write sends raw bytes in one write, so no answer of the pool's own can
// come between the lines of an attack.
func (ec *evilConn) write(b []byte) {
	ec.wmu.Lock()
	defer ec.wmu.Unlock()
	_ = ec.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = ec.c.Write(b)
}

func (p *evilPool) notify() string {
	p.mu.Lock()
	p.jobs++
	id := p.jobs
	p.mu.Unlock()
	n := &stratum.Notify{
		JobID:   fmt.Sprintf("e%x", id),
		Coinb1:  bytes.Repeat([]byte{0x01}, 60),
		Coinb2:  bytes.Repeat([]byte{0x02}, 50),
		Branch:  make([][32]byte, 3),
		Version: 0x20000000,
		NBits:   0x17034219,
		NTime:   uint32(time.Now().Unix()),
		Clean:   true,
	}
	n.PrevHash[0] = byte(id)
	n.Branch[1][5] = byte(id)
	return string(n.AppendJSON(nil))
}

func (p *evilPool) serve(ec *evilConn) {
	defer ec.once.Do(func() { close(ec.done) })
	defer ec.c.Close()
	rd := stratum.NewLineReader(ec.c, 1<<20)
	held := false
	for {
		line, err := rd.ReadLine()
		if err != nil {
			return
		}
		var m stratum.Message
		if m.Decode(line) != nil {
			continue
		}
		if m.IsResponse() {
			if string(m.ID) == `"probe"` {
				ec.pOnce.Do(func() { close(ec.probed) })
			}
			continue
		}
		if !held {
			<-p.release
			held = true
		}
		id := string(m.IDOrNull())
		switch string(m.Method) {
		case stratum.MethodConfigure:
			ec.write([]byte(`{"id":` + id + `,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}` + "\n"))
		case stratum.MethodSubscribe:
			ec.write([]byte(`{"id":` + id + `,"result":[[["mining.notify","e1"]],"0a0b0c0d",4],"error":null}` + "\n"))
		case stratum.MethodAuthorize:
			ec.write([]byte(`{"id":` + id + `,"result":true,"error":null}` + "\n" +
				string(stratum.AppendSetDifficulty(nil, testDiff)) + p.notify()))
			select {
			case <-ec.live:
			default:
				close(ec.live)
				p.mu.Lock()
				f := p.onLive
				p.mu.Unlock()
				if f != nil {
					go f(ec)
				}
			}
		case stratum.MethodSubmit:
			ec.write([]byte(`{"id":` + id + `,"result":true,"error":null}` + "\n"))
		}
	}
}

// TestHostilePool: malformed and oversized pool messages, impossible
// extranonces, reconnect storms, answers to nothing and endless lines from
// the pool miners are working for.
func TestHostilePool(t *testing.T) {
	t.Parallel() // its own pools and switchyard; waits on events, not on timings
	evil := startEvilPool(t)
	r := newRig(t, 1, nil, func(c *config.Config) {
		c.Failover.FailbackAfter = config.Duration(300 * time.Millisecond)
		c.Failover.Standby = 1
		good := c.Pools[0]
		good.Index = 1
		c.Pools = []config.Pool{{Index: 0, Name: "hostile", URL: "stratum+tcp://" + evil.addr(), User: "evil.farm", Password: "x"}, good}
	})
	// Held until now, the hostile pool takes over once healthy.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const miners = 8
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: miners, User: "good",
		VersionRolling: true, MaxSharesPerSecond: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	waitFor(t, 20*time.Second, "the fleet to mine on the good pool", func() bool { return fleet.Stats().Accepted >= 2*miners })
	close(evil.release)

	// onHostile waits until miners work for the hostile pool on a live
	// connection and returns that connection.
	onHostile := func(t *testing.T) *evilConn {
		t.Helper()
		waitFor(t, 20*time.Second, "miners on the hostile pool", func() bool { return r.app.Pools.Active() == "hostile" })
		ec := evil.last()
		select {
		case <-ec.live:
		case <-time.After(10 * time.Second):
			t.Fatal("hostile pool connection never live")
		}
		return ec
	}
	probe := []byte(`{"id":"probe","method":"client.get_version","params":[]}` + "\n")

	hexOf := func(n int) string { return strings.Repeat("ab", n) }
	branch := func(n int) string {
		hs := make([]string, n)
		for i := range hs {
			hs[i] = `"` + hexOf(32) + `"`
		}
		return "[" + strings.Join(hs, ",") + "]"
	}
	notifyWith := func(coinb1, coinb2, br string) string {
		return `{"id":null,"method":"mining.notify","params":["bad","` + hexOf(32) + `","` + coinb1 + `","` + coinb2 + `",` + br +
			`,"20000000","17034219","` + fmt.Sprintf("%08x", time.Now().Unix()) + `",true]}` + "\n"
	}
	repeat := func(line string, n int) string { return strings.Repeat(line, n) }
	badNotifies := []string{
		`{"id":null,"method":"mining.notify","params":[1,2,3,4,5,6,7,8,9]}` + "\n",
		`{"id":null,"method":"mining.notify","params":["j1"]}` + "\n",
		`{"id":null,"method":"mining.notify","params":["j1","zz","01","02",[],"20000000","17034219","5f5e1000",true]}` + "\n",
		notifyWith("01", "", "[]"),
		`{"id":null,"method":"mining.notify","params":["j1","` + hexOf(32) + `","01","02",[],"20000000","17034219","5f5e1000","yes"]}` + "\n",
		`{"id":null,"method":"mining.notify","params":["j1","` + hexOf(32) + `","01","02",{"a":1},"20000000","17034219","5f5e1000",true]}` + "\n",
	}

	tests := []struct {
		name   string
		attack string
		drop   bool
	}{
		{"a few malformed notifies", strings.Join(badNotifies[:4], ""), false},
		{"malformed notifies in a row", strings.Join(badNotifies, ""), true},
		{"coinbase over MaxCoinbaseLen", notifyWith(hexOf(stratum.MaxCoinbaseLen/2+1), hexOf(stratum.MaxCoinbaseLen/2), "[]"), false},
		{"gigantic coinbase", notifyWith(hexOf(1<<20), "02", "[]"), true},
		{"merkle branch one too deep", notifyWith("01", "02", branch(stratum.MaxBranchLen+1)), false},
		{"merkle branch of absurd depth", notifyWith("01", "02", branch(100000)), true},
		{"set_extranonce with impossible values", `{"id":null,"method":"mining.set_extranonce","params":["zz",4]}` + "\n" +
			`{"id":null,"method":"mining.set_extranonce","params":["00",0]}` + "\n" +
			`{"id":null,"method":"mining.set_extranonce","params":["00",-1]}` + "\n" +
			`{"id":null,"method":"mining.set_extranonce","params":["` + hexOf(100) + `",4]}` + "\n", false},
		{"set_extranonce leaving no room", `{"id":null,"method":"mining.set_extranonce","params":["0a0b0c0d",1]}` + "\n", true},
		{"set_extranonce of 10^12 bytes", `{"id":null,"method":"mining.set_extranonce","params":["00",1000000000000]}` + "\n", false},
		{"answers to unknown ids", `{"id":999999,"result":true,"error":null}` + "\n" + `{"id":"abc","result":true,"error":null}` + "\n" +
			`{"id":0,"result":false,"error":[20,"x",null]}` + "\n" + `{"id":-5,"result":true}` + "\n" + `{"id":1.5,"result":true}` + "\n" +
			`{"id":null,"result":true,"error":null}` + "\n" + `{"id":18446744073709551615,"result":true}` + "\n" +
			`{"id":99999999999999999999999,"result":true}` + "\n", false},
		{"a little garbage", "\x00\x01\x02\n{{{{\n", false},
		{"garbage lines", repeat("\xff\xfe garbage \x00\n", 10), true},
		{"client.reconnect storm", repeat(`{"id":null,"method":"client.reconnect","params":["",0,0]}`+"\n", 50), true},
		{"client.reconnect elsewhere with a long wait", `{"id":null,"method":"client.reconnect","params":["evil.example.com",1,1]}` + "\n", true},
		{"never-ending line", strings.Repeat("x", 1<<20), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ec := onHostile(t)
			conns := evil.connCount()
			before := fleet.Stats()
			ec.write([]byte(tt.attack))
			ec.write(probe)
			if tt.drop {
				select {
				case <-ec.done:
				case <-time.After(10 * time.Second):
					t.Fatal("session not dropped")
				}
				waitFor(t, 10*time.Second, "the session to reconnect", func() bool { return evil.connCount() > conns })
			} else {
				select {
				case <-ec.probed:
				case <-ec.done:
					t.Fatal("session dropped; the message should have been ignored")
				case <-time.After(10 * time.Second):
					t.Fatal("probe not answered")
				}
			}
			waitFor(t, 20*time.Second, "miners to keep mining", func() bool {
				return fleet.Stats().Accepted >= before.Accepted+2*miners
			})
			if fs := fleet.Stats(); sumMap(fs.Disconnects) != 0 || fs.Up != miners {
				t.Fatalf("miners disconnected: %v, up %d", fs.Disconnects, fs.Up)
			}
		})
	}
	// A storm that goes on over reconnects: each new connection is told
	// to reconnect at once; miners stay on the good pool meanwhile.
	t.Run("client.reconnect on every connection", func(t *testing.T) {
		onHostile(t)
		start := evil.connCount()
		storms := 3
		var mu sync.Mutex
		evil.setOnLive(func(ec *evilConn) {
			mu.Lock()
			defer mu.Unlock()
			if storms > 0 {
				storms--
				ec.write([]byte(`{"id":null,"method":"client.reconnect","params":[]}` + "\n"))
			}
		})
		defer evil.setOnLive(nil)
		ec := evil.last()
		ec.write([]byte(`{"id":null,"method":"client.reconnect","params":[]}` + "\n"))
		waitFor(t, 30*time.Second, "the storm to pass", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return storms == 0 && evil.connCount() > start+3
		})
		before := fleet.Stats()
		waitFor(t, 20*time.Second, "miners to keep mining", func() bool {
			return fleet.Stats().Accepted >= before.Accepted+2*miners
		})
		if fs := fleet.Stats(); sumMap(fs.Disconnects) != 0 || fs.Up != miners {
			t.Fatalf("miners disconnected: %v, up %d", fs.Disconnects, fs.Up)
		}
		onHostile(t)
	})
}
