package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchyard/stratum"
)

// quiet is how long "no answer" is waited for.
const quiet = 300 * time.Millisecond

// refused reports whether a connect to addr is refused.
func refused(addr string) bool {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		nc.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func TestFaultClose(t *testing.T) {
	p := startPool(t, PoolConfig{})
	c := dial(t, p.Addr())
	c.handshake("w")
	if err := p.SetFault(Fault{Mode: FaultClose}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.readErr(time.Second); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("existing connection read %v, want EOF or reset", err)
	}
	if !refused(p.Addr()) {
		t.Fatal("connect not refused while closed")
	}
	if f, down := p.FaultState(); f.Mode != FaultClose || !down {
		t.Fatalf("fault state %v down=%v", f, down)
	}
	if err := p.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	c = dial(t, p.Addr()) // the same address again
	c.handshake("w")
	waitFor(t, time.Second, "one open connection", func() bool { return p.Stats().Open == 1 })
	if s := p.Stats(); s.Connections != 2 {
		t.Fatalf("stats %s", s)
	}
}

func TestFaultBlackhole(t *testing.T) {
	p := startPool(t, PoolConfig{})
	c := dial(t, p.Addr())
	c.handshake("w")
	if err := p.SetFault(Fault{Mode: FaultBlackhole}); err != nil {
		t.Fatal(err)
	}
	c.call(7, stratum.MethodGetVersion)
	if line, ok := c.read(quiet); ok {
		t.Fatalf("blackholed pool answered %s", line)
	}
	// A new connection completes at TCP level but is not served.
	n := dial(t, p.Addr())
	n.call(1, stratum.MethodSubscribe)
	if line, ok := n.read(quiet); ok {
		t.Fatalf("blackholed pool answered a new connection: %s", line)
	}
	// Pushing a job sends nothing either.
	p.PushJob(true)
	if line, ok := c.read(quiet); ok {
		t.Fatalf("blackholed pool sent %s", line)
	}
	if s := p.Stats(); s.Open != 2 {
		t.Fatalf("blackhole closed connections: %s", s)
	}

	if err := p.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	// Both connections resume where they were frozen.
	if m, line := c.answer(7); !strings.Contains(line, "stratumsim") || m.Error != nil {
		t.Fatalf("after blackhole: %s", line)
	}
	if m, line := n.answer(1); m.Error != nil {
		t.Fatalf("after blackhole: %s", line)
	}
}

func TestFaultReject(t *testing.T) {
	p := startPool(t, PoolConfig{})
	c := dial(t, p.Addr())
	c.handshake("w")
	if err := p.SetFault(Fault{Mode: FaultReject}); err != nil {
		t.Fatal(err)
	}
	en2 := make([]byte, c.en2Size)
	c.submit(3, "w", c.job.ID, en2, c.job.NTime, c.share(en2, true))
	if _, line := c.answer(3); !strings.Contains(line, `[20,"Pool rejecting"`) {
		t.Fatalf("answer %s", line)
	}
	if s := p.Stats(); s.Rejected[ReasonPoolRejecting] != 1 || s.Submits != 1 {
		t.Fatalf("stats %s", s)
	}

	// A fleet labels those answers too, and only those.
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 2, MaxSharesPerSecond: 50})
	waitFor(t, 5*time.Second, "rejections", func() bool { return f.Stats().Rejected[ReasonPoolRejecting] >= 5 })
	f.Close()
	if s := f.Stats(); s.Accepted != 0 || len(s.Rejected) != 1 {
		t.Fatalf("fleet %s", s)
	}
}

func TestFaultSlow(t *testing.T) {
	const delay = 200 * time.Millisecond
	p := startPool(t, PoolConfig{})
	c := dial(t, p.Addr())
	c.handshake("w")
	if err := p.SetFault(Fault{Mode: FaultSlow, Delay: delay}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for id := uint64(1); id <= 3; id++ {
		c.call(10+id, stratum.MethodGetVersion)
	}
	for id := uint64(1); id <= 3; id++ { // in order, each late
		c.answer(10 + id)
		if d := time.Since(start); d < delay {
			t.Fatalf("answer %d after %s, want at least %s", id, d, delay)
		}
	}

	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 2, MaxSharesPerSecond: 20})
	waitFor(t, 10*time.Second, "answers", func() bool { return f.Stats().Accepted >= 4 })
	f.Close()
	if s := f.Stats(); s.Latency.P50 < delay || s.RejectedTotal() != 0 {
		t.Fatalf("fleet %s", s)
	}
}

func TestFaultFlap(t *testing.T) {
	const period = 150 * time.Millisecond
	p := startPool(t, PoolConfig{})
	if err := p.SetFault(Fault{Mode: FaultFlap, Period: period}); err != nil {
		t.Fatal(err)
	}
	// Sample connects: the pool must be seen down, up, down, up.
	var seen []bool
	deadline := time.Now().Add(8 * period)
	for time.Now().Before(deadline) {
		up := !refused(p.Addr())
		if len(seen) == 0 || seen[len(seen)-1] != up {
			seen = append(seen, up)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(seen) < 4 || seen[0] {
		t.Fatalf("flap observed as %v, want alternating, starting down", seen)
	}
	if err := p.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	c.handshake("w")

	// Miners ride the flaps: they reconnect and keep getting shares in.
	if err := p.SetFault(Fault{Mode: FaultFlap, Period: period}); err != nil {
		t.Fatal(err)
	}
	var led syncBuffer
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 3, MaxSharesPerSecond: 50, RetryDelay: 20 * time.Millisecond, Ledger: &led})
	waitFor(t, 10*time.Second, "shares across flaps", func() bool {
		s := f.Stats()
		return s.Accepted >= 10 && s.Disconnects[CauseEOF]+s.Disconnects[CauseReset] >= 3
	})
	f.Close()
	s := f.Stats()
	if s.DialErrors == 0 || s.RejectedTotal() != 0 {
		t.Fatalf("fleet %s", s)
	}
	checkFleetLedger(t, led.entries(t), s)
}

func TestFaultValidate(t *testing.T) {
	p := startPool(t, PoolConfig{})
	for _, f := range []Fault{{Mode: FaultSlow}, {Mode: FaultFlap}, {Mode: 99}} {
		if err := p.SetFault(f); err == nil {
			t.Errorf("SetFault(%v) succeeded", f)
		}
	}
	p.Close()
	if err := p.SetFault(Fault{}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("SetFault after Close: %v", err)
	}
}

func TestControlHandler(t *testing.T) {
	p := startPool(t, PoolConfig{})
	srv := httptest.NewServer(ControlHandler(p))
	defer srv.Close()

	do := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := do("GET", "/fault"); code != 200 || body["mode"] != "normal" {
		t.Fatalf("GET /fault: %d %v", code, body)
	}
	if code, body := do("POST", "/fault?mode=slow&delay=50ms"); code != 200 || body["mode"] != "slow" || body["delay"] != "50ms" {
		t.Fatalf("POST /fault: %d %v", code, body)
	}
	if f, _ := p.FaultState(); f.Mode != FaultSlow || f.Delay != 50*time.Millisecond {
		t.Fatalf("fault %v", f)
	}
	if code, body := do("POST", "/fault?mode=close"); code != 200 || body["down"] != true {
		t.Fatalf("POST /fault close: %d %v", code, body)
	}
	for _, bad := range []string{"/fault?mode=sideways", "/fault?mode=flap", "/fault?mode=slow&delay=soon", "/reconnect?port=x"} {
		if code, _ := do("POST", bad); code != 400 {
			t.Errorf("POST %s: %d, want 400", bad, code)
		}
	}
	do("POST", "/fault?mode=normal")
	if code, body := do("POST", "/job?clean=true"); code != 200 || body["jobs"] != 2.0 {
		t.Fatalf("POST /job: %d %v", code, body)
	}
	if code, body := do("GET", "/stats"); code != 200 || body["fault"] != "normal" {
		t.Fatalf("GET /stats: %d %v", code, body)
	}
	if code, body := do("POST", "/reconnect"); code != 200 || body["sent"] != 0.0 {
		t.Fatalf("POST /reconnect: %d %v", code, body)
	}
}
