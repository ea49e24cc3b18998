//go:build linux

package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The status page's Routes card, rendered by a real headless Chromium
// against fixed /api/v1/status answers (the "routes" field as the status
// API serves it). Each case is its own page under /<case>/ on one server,
// so that the browsers run side by side.

// pageChromium returns the headless browser, or skips the test.
func pageChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	t.Skip("chromium not installed (Debian: apt-get install chromium); the status page's routes are not tested in a browser")
	return ""
}

// dumpDOM loads url in headless Chromium, lets the page fetch its data and
// returns the rendered elements (the DOM before the page's script). It
// kills the browser's process group after 40 seconds (a busy machine).
// Extra flags (--screenshot=FILE) are passed on.
func dumpDOM(bin, url, dir string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--no-proxy-server", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--virtual-time-budget=2000", "--window-size=1280,1000",
		"--dump-dom")
	cmd.Args = append(append(cmd.Args, extra...), url)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chromium %s: %w\n%s", url, err, tail(stderr.String(), 2000))
	}
	dom := stdout.String()
	if m := regexp.MustCompile(`<div id="error"[^>]*>([^<]*)</div>`).FindStringSubmatch(dom); m == nil || m[1] != "" {
		return "", fmt.Errorf("%s: page shows an error: %q", url, m)
	}
	body, _, _ := strings.Cut(dom, "<script>")
	return body, nil
}

// pageStatus is an /api/v1/status answer for the page: pools as
// [route, name, state] and the routes as given (nil: no "routes" field, as
// before routes existed).
func pageStatus(routes []map[string]any, pools ...[3]string) map[string]any {
	ps := make([]map[string]any, len(pools))
	active := ""
	rank := map[string]int{}
	for i, p := range pools {
		ps[i] = map[string]any{"name": p[1], "url": "stratum+tcp://" + p[1] + ".example:3333", "rank": rank[p[0]],
			"state": p[2], "active": rank[p[0]] == 0 && p[2] == "live", "forwarded": 1000, "accepted": 990, "rejected": 10, "lost": 0,
			"credited_difficulty": 5e6, "hashrate_hs": 1e15}
		if routes != nil {
			ps[i]["route"] = p[0]
		}
		if rank[p[0]] == 0 && p[2] == "live" && active == "" {
			active = p[1]
		}
		rank[p[0]]++
	}
	st := map[string]any{
		"version": "test", "uptime_seconds": 3600, "active_pool": active, "pools": ps,
		"miners": map[string]any{"connected": 3}, "credited_difficulty": 1e7, "miner_difficulty": 1e7, "credit_efficiency": 1.0,
		"history":  map[string]any{"interval_seconds": 10, "window_seconds": 1800, "series": []any{}},
		"all_down": false,
		"farm": map[string]any{"miners": map[string]any{"connected": 3, "mining": 3}, "windows": []any{
			map[string]any{"window_seconds": 300, "covered_seconds": 300, "hashrate_hs": 3e15},
			map[string]any{"window_seconds": 3600, "covered_seconds": 3600, "hashrate_hs": 3e15},
			map[string]any{"window_seconds": 86400, "covered_seconds": 3600, "hashrate_hs": 3e15},
		}},
		"timeline": []any{},
	}
	if routes != nil {
		st["routes"] = routes
	}
	return st
}

// splitEntry is one serving pool of a route's split.
func splitEntry(pool string, weight, target, measured, credited float64, miners int) map[string]any {
	return map[string]any{"pool": pool, "weight": weight, "target": target, "measured": measured,
		"credited_difficulty": credited, "miners": miners, "hashrate_hs": 1e15 * float64(miners)}
}

// route is one entry of "routes".
func route(name string, listen, workers []string, miners int, active string, allDown bool, moves int, split ...map[string]any) map[string]any {
	pools := []string{}
	for _, s := range split {
		pools = append(pools, s["pool"].(string))
	}
	return map[string]any{"name": name, "listen": listen, "workers": workers, "miners": miners, "active_pool": active,
		"all_down": allDown, "split_since": "2026-12-01T14:00:00Z", "moves": moves, "split": split, "pools": pools}
}

// routesServer serves one status page per case under /<case>/.
func routesServer(t *testing.T, statuses map[string]map[string]any) string {
	t.Helper()
	mux := http.NewServeMux()
	for name, st := range statuses {
		raw, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		h := Handler(prometheus.NewRegistry(), HandlerOptions{
			Status: func() any { return json.RawMessage(raw) },
			MinersQuery: func(url.Values) (any, error) {
				return map[string]any{"rows": []any{}, "groups": []any{}, "offset": 0, "matched": 0, "connected": 3}, nil
			},
		})
		mux.Handle("/"+name+"/", http.StripPrefix("/"+name, h))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, mux) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

var (
	routeDivRE = regexp.MustCompile(`<div class="route( down)?" data-route="([^"]*)" data-all-down="(true|false)">`)
	splitRowRE = regexp.MustCompile(`<tr class="split-pool( off)?" data-pool="([^"]*)" data-target="([^"]*)" data-measured="([^"]*)" data-off="(true|false)"`)
	poolRowRE  = regexp.MustCompile(`<tr class="pool[^"]*" data-pool="([^"]+)" data-active="(?:true|false)" data-state="[^"]*"( data-route="([^"]*)")?>`)
)

// routeBlock returns the rendered block of route name.
func routeBlock(dom, name string) string {
	_, after, ok := strings.Cut(dom, `data-route="`+name+`" data-all-down=`)
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(after, `</section>`)
	if loc := routeDivRE.FindStringIndex(block); loc != nil {
		block = block[:loc[0]]
	}
	return block
}

// TestStatusPageRoutesInChromium renders the page for several shapes of
// "routes" and checks the Routes card: shown with two routes or a split,
// one block per route with its listeners, worker patterns, miners, active
// pool or its all-down state, moves and split start; per serving pool its
// target and measured share, a pool more than 5 points off its target
// marked and the others not; the pool table naming each row's route only
// when there are several; and a route with every pool down raising the
// banner. With one route and no split the page is the same, element for
// element, as for a status without "routes".
func TestStatusPageRoutesInChromium(t *testing.T) {
	bin := pageChromium(t)
	twoRoutes := pageStatus([]map[string]any{
		route("alpha", []string{"0.0.0.0:3334"}, []string{"alpha.*"}, 1200, "alpha-main", false, 17,
			splitEntry("alpha-main", 70, 0.7, 0.62, 6.2e6, 840), splitEntry("alpha-second", 30, 0.3, 0.38, 3.8e6, 360)),
		route("beta", []string{"0.0.0.0:3333", "10.0.0.1:3335"}, nil, 40, "", true, 0,
			splitEntry("beta-main", 0, 1, 1, 2e6, 40)),
	}, [3]string{"alpha", "alpha-main", "live"}, [3]string{"alpha", "alpha-second", "live"}, [3]string{"alpha", "farm-backup", "live"},
		[3]string{"beta", "beta-main", "down"}, [3]string{"beta", "farm-backup", "down"})
	oneSplit := pageStatus([]map[string]any{
		route("default", []string{"0.0.0.0:3333"}, nil, 3, "p0", false, 2,
			splitEntry("p0", 70, 0.7, 0.695, 6.95e6, 2), splitEntry("p1", 30, 0.3, 0.305, 3.05e6, 1)),
	}, [3]string{"default", "p0", "live"}, [3]string{"default", "p1", "live"})
	noCredit := pageStatus([]map[string]any{
		route("default", []string{"0.0.0.0:3333"}, nil, 3, "p0", false, 0,
			splitEntry("p0", 50, 0.5, 0, 0, 2), splitEntry("p1", 50, 0.5, 0, 0, 1)),
	}, [3]string{"default", "p0", "live"}, [3]string{"default", "p1", "live"})
	plain := pageStatus([]map[string]any{
		route("default", []string{"0.0.0.0:3333"}, nil, 3, "p0", false, 0, splitEntry("p0", 0, 1, 1, 1e7, 3)),
	}, [3]string{"default", "p0", "live"}, [3]string{"default", "p1", "live"})
	before := pageStatus(nil, [3]string{"default", "p0", "live"}, [3]string{"default", "p1", "live"})

	base := routesServer(t, map[string]map[string]any{
		"two": twoRoutes, "split": oneSplit, "nocredit": noCredit, "plain": plain, "before": before})
	// The browsers run side by side: a headless start costs seconds.
	// With SWITCHYARD_SCREENSHOT_DIR set, the two-route page is also
	// saved there as routes.png.
	names := []string{"two", "split", "nocredit", "plain", "before"}
	doms, errs := make([]string, len(names)), make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		dir := t.TempDir()
		var extra []string
		if shots := os.Getenv("SWITCHYARD_SCREENSHOT_DIR"); shots != "" && name == "two" {
			extra = append(extra, "--screenshot="+filepath.Join(shots, "routes.png"))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			doms[i], errs[i] = dumpDOM(bin, base+"/"+name+"/", dir, extra...)
		}()
	}
	wg.Wait()
	rendered := map[string]string{}
	for i, name := range names {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		rendered[name] = doms[i]
	}

	cardShown := func(dom string) bool {
		return strings.Contains(dom, `<section class="card" id="routes-card" data-show="true" aria-label="routes" style="display: block;">`)
	}
	cardHidden := func(dom string) bool {
		return strings.Contains(dom, `<section class="card" id="routes-card" data-show="false" aria-label="routes" style="display: none;">`)
	}
	type splitRow struct{ off, target, measured string }
	splitRows := func(block string) map[string]splitRow {
		out := map[string]splitRow{}
		for _, m := range splitRowRE.FindAllStringSubmatch(block, -1) {
			if (m[1] == " off") != (m[5] == "true") {
				t.Errorf("split row %s: class and data-off disagree: %q", m[2], m[0])
			}
			out[m[2]] = splitRow{m[5], m[3], m[4]}
		}
		return out
	}

	t.Run("two routes", func(t *testing.T) {
		dom := rendered["two"]
		if !cardShown(dom) {
			t.Fatalf("routes card not shown for two routes:\n%s", tail(dom, 3000))
		}
		var got []string
		for _, m := range routeDivRE.FindAllStringSubmatch(dom, -1) {
			got = append(got, m[2]+"/"+m[3])
			if (m[1] == " down") != (m[3] == "true") {
				t.Errorf("route %s: class and data-all-down disagree", m[2])
			}
		}
		if fmt.Sprint(got) != "[alpha/false beta/true]" {
			t.Errorf("route blocks (name/all-down) = %v, want [alpha/false beta/true]", got)
		}
		alpha, beta := routeBlock(dom, "alpha"), routeBlock(dom, "beta")
		for _, want := range []string{
			`<span class="name">alpha</span>`, `<span class="state live">mining for alpha-main</span>`,
			`<span class="listen"><span class="k">listen</span>0.0.0.0:3334</span>`,
			`<span class="workers"><span class="k">workers</span>alpha.*</span>`,
			`<span class="miners"><span class="k">miners</span>1,200</span>`,
			`<span class="moves"><span class="k">moves</span>17</span>`,
			`<span class="since"><span class="k">split since</span>` + clockOf(t, "2026-12-01T14:00:00Z"),
			`<td class="num measured">62.0 % (−8.0 pts)</td>`, `<td class="num measured">38.0 % (+8.0 pts)</td>`,
			`<td class="num target">70.0 %</td>`, `<span style="width:62.0%;background:`,
		} {
			if !strings.Contains(alpha, want) {
				t.Errorf("route alpha lacks %s\n%s", want, alpha)
			}
		}
		if rows := splitRows(alpha); fmt.Sprint(rows) != "map[alpha-main:{true 0.7 0.62} alpha-second:{true 0.3 0.38}]" {
			t.Errorf("alpha's split (off target measured) = %v: 8 points off is marked", rows)
		}
		for _, want := range []string{
			`<span class="state dark" title="beta-main: down · farm-backup: down">no pool live</span>`,
			`<span class="listen"><span class="k">listen</span>0.0.0.0:3333, 10.0.0.1:3335</span>`,
			`<span class="workers"><span class="k">workers</span>every worker</span>`,
		} {
			if !strings.Contains(beta, want) {
				t.Errorf("route beta lacks %s\n%s", want, beta)
			}
		}
		if rows := splitRows(beta); fmt.Sprint(rows) != "map[beta-main:{false 1 1}]" {
			t.Errorf("beta's split = %v, want its one pool at target 1", rows)
		}
		// The pool table names each row's route; the shared backup has a row in each.
		var pools []string
		for _, m := range poolRowRE.FindAllStringSubmatch(dom, -1) {
			pools = append(pools, m[3]+"/"+m[1])
		}
		if want := "[alpha/alpha-main alpha/alpha-second alpha/farm-backup beta/beta-main beta/farm-backup]"; fmt.Sprint(pools) != want {
			t.Errorf("pool rows (route/pool) = %v, want %s", pools, want)
		}
		if !strings.Contains(dom, `<th class="route-col">Route</th>`) || !strings.Contains(dom, `<td class="route-col">beta</td>`) {
			t.Error("pool table has no visible route column")
		}
		if !strings.Contains(dom, `2 routes: alpha → alpha-main, beta → no pool`) {
			t.Errorf("summary does not name each route's pool: %s", regexp.MustCompile(`<span id="summary"[^>]*>[^<]*`).FindString(dom))
		}
		if !strings.Contains(dom, `<div id="banner" role="alert" data-show="true" style="display: block;"><strong>No pool is live</strong><span id="banner-text">Route beta: miners have no work. beta-main: down · farm-backup: down</span>`) {
			t.Errorf("no banner for route beta having no live pool:\n%s", regexp.MustCompile(`<div id="banner".*?</div>`).FindString(dom))
		}
	})

	t.Run("one route split", func(t *testing.T) {
		dom := rendered["split"]
		if !cardShown(dom) {
			t.Fatalf("routes card not shown for a split of two pools")
		}
		if rows := splitRows(dom); fmt.Sprint(rows) != "map[p0:{false 0.7 0.695} p1:{false 0.3 0.305}]" {
			t.Errorf("split = %v: half a point off is not marked", rows)
		}
		if !strings.Contains(dom, `<td class="num measured">69.5 %</td>`) || !strings.Contains(dom, `<span class="badge">active</span></td><td class="num wide">70</td>`) {
			t.Errorf("split rows lack the measured share or the weight:\n%s", routeBlock(dom, "default"))
		}
		if strings.Contains(dom, `data-route="default">`) || !strings.Contains(dom, `<th class="route-col" hidden="">Route</th>`) {
			t.Error("one route: the pool table names the route")
		}
		if !strings.Contains(dom, "mining for p0") {
			t.Error("one route: the summary is not today's")
		}
	})

	t.Run("split without credited work", func(t *testing.T) {
		dom := rendered["nocredit"]
		if rows := splitRows(dom); fmt.Sprint(rows) != "map[p0:{false 0.5 0} p1:{false 0.5 0}]" {
			t.Errorf("split = %v: nothing credited yet is not off target", rows)
		}
		if n := strings.Count(dom, `<td class="num measured">—</td>`); n != 2 {
			t.Errorf("%d measured cells show —, want 2 before any credited work", n)
		}
	})

	t.Run("one route no split", func(t *testing.T) {
		dom := rendered["plain"]
		if !cardHidden(dom) || routeDivRE.MatchString(dom) || splitRowRE.MatchString(dom) {
			t.Errorf("one route without a split shows a routes card:\n%s", tail(dom, 3000))
		}
		norm := func(s string) string {
			s = regexp.MustCompile(`<span id="updated"[^>]*>[^<]*</span>`).ReplaceAllString(s, "")
			return regexp.MustCompile(` data-render-ms="[^"]*"`).ReplaceAllString(s, "")
		}
		if a, b := norm(dom), norm(rendered["before"]); a != b {
			i := 0
			for i < len(a) && i < len(b) && a[i] == b[i] {
				i++
			}
			t.Errorf("one route without a split renders differently from a status without routes, from byte %d:\n%q\n%q",
				i, a[max(0, i-200):min(len(a), i+200)], b[max(0, i-200):min(len(b), i+200)])
		}
	})
}

// clockOf is the page's local-time rendering of an RFC 3339 time (Chromium
// runs with the test's time zone).
func clockOf(t *testing.T, iso string) string {
	t.Helper()
	at, err := time.Parse(time.RFC3339, iso)
	if err != nil {
		t.Fatal(err)
	}
	return at.Local().Format("2006-01-02 15:04:05")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
