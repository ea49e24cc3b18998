package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchyard/internal/testkit"
	"switchyard/sim"
)

var binary string

// TestMain builds the real binary once; the tests below drive it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchyard")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodPool = `
[[pool]]
name = "main"
url = "stratum+tcp://127.0.0.1:3334"
user = "acct.farm"
`

// TestCheck: `switchyard check` accepts a good config and rejects broken
// ones with messages naming the key and the line.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		body string
		code int
		want []string
	}{
		{"good", goodPool, 0, []string{"ok (1 pools: main)"}},
		{"example", "", 0, []string{"ok"}},
		{"wrong type", "[server]\nmax_connections = \"lots\"\n" + goodPool, 1, []string{":2:", "server.max_connections"}},
		{"unknown key", "[server]\nlisten = \"0.0.0.0:3333\"\nlisen = \"x\"\n" + goodPool, 1, []string{":3:", "server.lisen"}},
		{"unknown pool key", goodPool + "pasword = \"x\"\n", 1, []string{"pool[0].pasword"}},
		{"no pools", "[server]\nlisten = \"0.0.0.0:3333\"\n", 1, []string{"pool"}},
		{"bad url", strings.Replace(goodPool, "stratum+tcp://127.0.0.1:3334", "http://pool", 1), 1, []string{":4:", "pool[0].url"}},
		{"no port", strings.Replace(goodPool, "127.0.0.1:3334", "pool.example.com", 1), 1, []string{"pool[0].url"}},
		{"duplicate names", goodPool + goodPool, 1, []string{"pool[1].name"}},
		{"min above max", "[difficulty]\nmin = 100.0\nmax = 10.0\n" + goodPool, 1, []string{"difficulty."}},
		{"bad duration", "[failover]\nsubmit_timeout = \"3 seconds\"\n" + goodPool, 1, []string{":2:", "failover.submit_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "../../config.example.toml"
			if tt.body != "" {
				path = writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "_")+".toml", tt.body)
			}
			out, err := exec.Command(binary, "check", "-config", path).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "switchyard ") {
		t.Fatalf("%q %v", out, err)
	}
}

// proc is the running binary with its JSON log.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	done chan struct{}
}

func startBinary(t *testing.T, cfgPath string) *proc {
	t.Helper()
	return startBinaryArgs(t, nil, "-config", cfgPath)
}

// dump logs every line switchyard wrote except per-miner ones.
func (p *proc) dump() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if m := l["message"]; m != "miner authorized" && m != "miner disconnected" {
			p.t.Log(l)
		}
	}
}

// find returns the first log line with message msg, or nil.
func (p *proc) find(msg string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if l["message"] == msg {
			return l
		}
	}
	return nil
}

func (p *proc) waitLog(msg string, within time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l := p.find(msg); l != nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t.Fatalf("no log %q within %s; log: %v", msg, within, p.logs)
	return nil
}

// waitExit waits up to within for the process to exit, and fails the test
// unless it exited 0; what names it in the messages.
func (p *proc) waitExit(within time.Duration, what string) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %s", what, within)
	}
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func status(t *testing.T, httpAddr string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return m
}

func binConfig(minerAddr, httpAddr string, pools ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[server]
listen = %q
extranonce1_size = 1
max_submits_per_second = 0
[difficulty]
initial = 1e-7
min = 1e-7
max = 1e-7
[failover]
submit_timeout = "2s"
failback_after = "1s"
backoff_min = "100ms"
backoff_max = "500ms"
[metrics]
listen = %q
[log]
format = "json"
level = "info"
`, minerAddr, httpAddr)
	for _, p := range pools {
		fmt.Fprintf(&b, "[[pool]]\nname = %q\nurl = \"stratum+tcp://%s\"\nuser = \"acct.%s\"\n", p[0], p[1], p[0])
	}
	return b.String()
}

// TestReloadAndDrain runs the binary under load: SIGHUP with pools added,
// reordered and removed moves the miners without dropping one; an invalid
// config is refused and the old one keeps running; SIGTERM drains: the
// process exits 0 and its final accounting matches what the pools saw.
func TestReloadAndDrain(t *testing.T) {
	var pools [2]*sim.Pool
	for i := range pools {
		p, err := sim.StartPool(sim.PoolConfig{Difficulty: 1e-7, Extranonce2Size: 4, JobInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		pools[i] = p
	}
	dir := t.TempDir()
	minerAddr, httpAddr := freePort(t), freePort(t)
	cfgPath := writeFile(t, dir, "switchyard.toml", binConfig(minerAddr, httpAddr, [2]string{"a", pools[0].Addr()}))
	p := startBinary(t, cfgPath)
	p.waitLog("switchyard running", 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: minerAddr, Miners: 40, MaxSharesPerSecond: 5, VersionRolling: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	waitUntil(t, 10*time.Second, "shares at pool a", func() bool { return pools[0].Stats().Accepted > 100 })

	// Add pool b ahead of a: miners move to it after failback_after.
	writeFile(t, dir, "switchyard.toml", binConfig(minerAddr, httpAddr, [2]string{"b", pools[1].Addr()}, [2]string{"a", pools[0].Addr()}))
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog("configuration reloaded", 5*time.Second)
	waitUntil(t, 10*time.Second, "shares at pool b", func() bool { return pools[1].Stats().Accepted > 100 })
	if s := status(t, httpAddr); s == nil || s["active_pool"] != "b" {
		t.Fatalf("active pool after reload: %v", s)
	}

	// A broken config is refused; b keeps serving.
	writeFile(t, dir, "switchyard.toml", "[server]\nlisten = 5\n")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog("reload refused: keeping the running configuration", 5*time.Second)
	before := pools[1].Stats().Accepted
	waitUntil(t, 5*time.Second, "shares at b after a refused reload", func() bool { return pools[1].Stats().Accepted > before+50 })

	// Remove b: miners go back to a at once.
	writeFile(t, dir, "switchyard.toml", binConfig(minerAddr, httpAddr, [2]string{"a", pools[0].Addr()}))
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	before = pools[0].Stats().Accepted
	waitUntil(t, 5*time.Second, "shares at a after b was removed", func() bool { return pools[0].Stats().Accepted > before+50 })

	if n := sumMap(fleet.Stats().Disconnects); n != 0 {
		t.Fatalf("reloads dropped %d miner connections: %v", n, fleet.Stats().Disconnects)
	}

	// Drain.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(10*time.Second, "switchyard after SIGTERM")
	final := p.find("final share accounting")
	if final == nil {
		t.Fatal("no final accounting logged")
	}
	num := func(k string) uint64 { v, _ := final[k].(float64); return uint64(v) }
	poolAccepted := pools[0].Stats().Accepted + pools[1].Stats().Accepted
	poolRejected := pools[0].Stats().RejectedTotal() + pools[1].Stats().RejectedTotal()
	if num("pool_lost") != 0 || num("forwarded") != num("pool_accepted")+num("pool_rejected") {
		t.Errorf("forwarded shares not all answered before exit: %v", final)
		p.dump()
	}
	if num("pool_accepted") != poolAccepted || num("pool_rejected") != poolRejected {
		t.Errorf("switchyard counted %d/%d accepted/rejected at the pools, the pools counted %d/%d",
			num("pool_accepted"), num("pool_rejected"), poolAccepted, poolRejected)
	}
	if num("accepted") != num("forwarded") {
		t.Errorf("accepted %d shares but forwarded %d (all meet the pool difficulty)", num("accepted"), num("forwarded"))
	}
	if d := p.find("miners closed; forwarded shares drained"); d == nil || d["unanswered"] != float64(0) {
		t.Errorf("drain: %v", d)
	}
	var buf bytes.Buffer
	fmt.Fprint(&buf, final)
	t.Logf("final accounting: %s", buf.String())
}

var waitUntil = testkit.WaitFor

func sumMap(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}
