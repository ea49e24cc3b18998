//go:build linux

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
	"switchyard/internal/race"
	"switchyard/sim"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// findChromium returns the headless browser to use, or skips the test.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium not installed (Debian: apt-get install chromium); the status page is not tested in a browser")
	return ""
}

// runChromium runs chromium (see chromium) and returns its stdout.
func runChromium(t *testing.T, bin, url string, mode ...string) string {
	t.Helper()
	var out strings.Builder
	if err := chromium(&out, bin, url, t.TempDir(), mode...); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// chromium runs a headless chromium with its profile in dir on url with
// the mode flags (--dump-dom, --screenshot=FILE), writing its stdout to
// out. It kills the whole process group after 40 seconds (a busy machine).
func chromium(out io.Writer, bin, url, dir string, mode ...string) error {
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--no-proxy-server", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--virtual-time-budget=2000", // virtual time waits for the page's fetches
		"--window-size=1280,1000",
	}, mode...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chromium %v: %w\n%s", mode, err, tail(stderr.String(), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// getJSON fetches an API path into v.
func getJSON(t *testing.T, addr, path string, v any) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// statusMiners is how many miners statusRig connects.
const statusMiners = 3

// statusRig starts two simulated pools ("primary", "backup"), switchyard
// sampling its hashrate history every 250ms, and a fleet of statusMiners
// miners ("rack7.0", …), and waits until the history has a few samples per
// pool with hashrate on the primary.
func statusRig(t *testing.T) *app.App {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Extranonce1Size = 1
	cfg.Server.MaxSubmitsPerSecond = 0
	cfg.Server.EventLoops = 2
	cfg.Difficulty.Initial, cfg.Difficulty.Min, cfg.Difficulty.Max = testDiff, testDiff, testDiff
	cfg.Failover.Standby = 1
	cfg.Metrics.Listen = "127.0.0.1:0"
	for i, name := range []string{"primary", "backup"} {
		p, err := sim.StartPool(sim.PoolConfig{Difficulty: testDiff, Extranonce1Size: 4, Extranonce2Size: 4,
			JobInterval: time.Hour, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		cfg.Pools = append(cfg.Pools, config.Pool{Index: i, Name: name, URL: "stratum+tcp://" + p.Addr(),
			User: "acct.farm", Password: "x"})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg, log, "test", app.WithHistoryInterval(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	waitFor(t, 10*time.Second, "primary active", func() bool { return a.Pools.Active() == "primary" })

	ctx, cancel := context.WithCancel(context.Background())
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: a.MinerAddr(), Miners: statusMiners, User: "rack7",
		VersionRolling: true, MaxSharesPerSecond: 20, Log: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close(); cancel() })

	waitFor(t, 15*time.Second, "history samples and miners", func() bool {
		var st app.Status
		getJSON(t, a.HTTPAddr(), "/api/v1/status", &st)
		if len(st.History.Series) != 2 || st.Miners.Connected != statusMiners {
			return false
		}
		for _, s := range st.History.Series {
			if len(s.Points) < 4 {
				return false
			}
		}
		p := st.History.Series[0].Points
		return st.History.Series[0].Pool == "primary" && p[len(p)-1][1] > 0 && p[len(p)-2][1] > 0
	})
	return a
}

// TestStatusHistoryAPI checks the history and counters /api/v1/status
// serves while miners work for the primary pool.
func TestStatusHistoryAPI(t *testing.T) {
	a := statusRig(t)
	var st app.Status
	getJSON(t, a.HTTPAddr(), "/api/v1/status", &st)

	h := st.History
	if h.IntervalSeconds != 0.25 || h.WindowSeconds != 1800 {
		t.Errorf("interval %v s, window %v s; want 0.25 and 1800", h.IntervalSeconds, h.WindowSeconds)
	}
	if len(h.Series) != 2 || h.Series[0].Pool != "primary" || h.Series[1].Pool != "backup" {
		t.Fatalf("series %+v, want primary then backup", h.Series)
	}
	for _, s := range h.Series {
		for i, p := range s.Points {
			if i > 0 && p[0] <= s.Points[i-1][0] {
				t.Errorf("%s: point %d at %v is not after %v", s.Pool, i, p[0], s.Points[i-1][0])
			}
			if p[1] < 0 {
				t.Errorf("%s: negative hashrate %v", s.Pool, p[1])
			}
			if s.Pool == "backup" && p[1] != 0 {
				t.Errorf("backup (standby, never sent a share) has hashrate %v", p[1])
			}
		}
	}
	if len(st.Pools) != 2 {
		t.Fatalf("pools %+v", st.Pools)
	}
	for i, p := range st.Pools {
		pts := h.Series[i].Points
		if last := pts[len(pts)-1][1]; p.HashrateHs != last {
			t.Errorf("%s: hashrate_hs %v is not the newest history point %v", p.Name, p.HashrateHs, last)
		}
		if p.Accepted+p.Rejected+p.Lost > p.Forwarded {
			t.Errorf("%s: verdicts %v+%v+%v exceed forwarded %v", p.Name, p.Accepted, p.Rejected, p.Lost, p.Forwarded)
		}
	}
	if p := st.Pools[0]; !p.Active || p.Forwarded == 0 || p.HashrateHs <= 0 {
		t.Errorf("primary: %+v", p)
	}
	if p := st.Pools[1]; p.Active || p.Forwarded != 0 {
		t.Errorf("backup: %+v", p)
	}
}

// TestStatusPageInChromium loads the status page in headless Chromium while
// a fleet mines through switchyard, and checks the rendered DOM: both pools
// with the active one marked, a chart line with several points per pool, and
// one row per connected miner. It leaves a screenshot in its temp dir (and
// at $SWITCHYARD_SCREENSHOT when set).
func TestStatusPageInChromium(t *testing.T) {
	if race.Enabled {
		t.Skip("the browser checks rendering, not races; the plain run covers it")
	}
	bin := findChromium(t)
	a := statusRig(t)

	// Two browsers at once, one dumping the DOM, one taking the
	// screenshot: a headless start costs seconds.
	url := "http://" + a.HTTPAddr() + "/"
	shotDir := t.TempDir()
	shot := filepath.Join(shotDir, "status.png")
	start := time.Now()
	shotDone := make(chan error, 1)
	go func() { shotDone <- chromium(io.Discard, bin, url, shotDir, "--screenshot="+shot) }()
	shotWaited := false
	defer func() {
		if !shotWaited {
			<-shotDone // on an early failure, let the browser finish before its dir goes (≤ 40 s)
		}
	}()
	dom := runChromium(t, bin, url, "--dump-dom")
	t.Logf("chromium rendered the page in %s", time.Since(start).Round(time.Millisecond))

	if m := regexp.MustCompile(`<div id="error"[^>]*>([^<]*)</div>`).FindStringSubmatch(dom); m == nil || m[1] != "" {
		t.Fatalf("page shows an error: %q", m)
	}
	body, _, _ := strings.Cut(dom, "<script>")
	dom = body // the rendered elements, not the script's source
	// Pools: both shown, primary active.
	poolRow := regexp.MustCompile(`<tr [^>]*data-pool="([^"]+)" data-active="(true|false)"[^>]*>`)
	active := map[string]string{}
	for _, m := range poolRow.FindAllStringSubmatch(dom, -1) {
		active[m[1]] = m[2]
	}
	if want := map[string]string{"primary": "true", "backup": "false"}; fmt.Sprint(active) != fmt.Sprint(want) {
		t.Errorf("pool rows (name → active) = %v, want %v\n%s", active, want, tail(dom, 3000))
	}
	if !strings.Contains(dom, "mining for primary") {
		t.Error("summary does not name the active pool")
	}
	// Chart: one polyline per pool with at least two points, the active
	// pool's line not flat at zero.
	line := regexp.MustCompile(`<polyline data-pool="([^"]+)" points="([^"]*)"`)
	lines := map[string][]string{}
	for _, m := range line.FindAllStringSubmatch(dom, -1) {
		lines[m[1]] = strings.Fields(m[2])
	}
	for _, pool := range []string{"primary", "backup"} {
		if len(lines[pool]) < 2 {
			t.Errorf("chart line for %s has %d points, want ≥ 2", pool, len(lines[pool]))
		}
	}
	if ys := distinctY(lines["primary"]); len(ys) < 2 && !strings.Contains(dom, "H/s</text>") {
		t.Errorf("primary's line is flat with no axis labels: %v", lines["primary"])
	}
	// Miners: one row per connected miner, by worker name.
	minerRow := regexp.MustCompile(`<tr class="miner" data-worker="([^"]*)">`)
	var workers []string
	for _, m := range minerRow.FindAllStringSubmatch(dom, -1) {
		workers = append(workers, m[1])
	}
	sort.Strings(workers)
	if want := []string{"rack7.0", "rack7.1", "rack7.2"}; fmt.Sprint(workers) != fmt.Sprint(want) {
		t.Errorf("miner rows = %v, want %v", workers, want)
	}

	err := <-shotDone
	shotWaited = true
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
		if dst := os.Getenv("SWITCHYARD_SCREENSHOT"); dst != "" {
			if b, err := os.ReadFile(shot); err == nil {
				_ = os.WriteFile(dst, b, 0o644)
			}
		}
	}
}

// distinctY returns the distinct y coordinates of SVG "x,y" points.
func distinctY(points []string) map[string]bool {
	ys := map[string]bool{}
	for _, p := range points {
		if _, y, ok := strings.Cut(p, ","); ok {
			ys[y] = true
		}
	}
	return ys
}
