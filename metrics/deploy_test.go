package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The files under deploy/ and the README name metrics by hand; these tests
// keep them in step with the code, so that a renamed metric or label fails
// here rather than as an empty dashboard panel or an alert that never fires.

// recorder is a Registerer that keeps every collector's descriptors.
type recorder struct{ descs []*prometheus.Desc }

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// family is a metric the code registers: its label names and type.
type family struct {
	labels map[string]bool
	typ    dto.MetricType
}

// registered returns every switchyard metric (including per-worker ones)
// by name, with its labels and type.
func registered(t *testing.T) map[string]*family {
	t.Helper()
	rec := &recorder{}
	New(rec)
	NewWorkers(rec, 0)
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string]*family{}
	for _, d := range rec.descs {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read descriptor %s", d)
		}
		f := &family{labels: map[string]bool{}, typ: dto.MetricType_UNTYPED}
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "c()"); l != "" {
				f.labels[l] = true
			}
		}
		out[m[1]] = f
	}
	// Types come from a gather, with a child in every vector.
	reg := prometheus.NewRegistry()
	m := New(reg)
	r := m.ForRoute(DefaultRoute)
	r.InitPool("p")
	r.SetActivePool("p")
	m.ConnectionsClosed.WithLabelValues("r")
	r.Failovers.WithLabelValues("a", "b", "r")
	r.SplitTarget.WithLabelValues("p")
	r.SplitMeasured.WithLabelValues("p")
	w := NewWorkers(reg, 0)
	_ = w
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if f := out[mf.GetName()]; f != nil {
			f.typ = mf.GetType()
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d metrics registered: %v", len(out), out)
	}
	return out
}

// Labels every scraped series may carry besides its own.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

var (
	metricRE  = regexp.MustCompile(`\b(switchyard_[a-zA-Z0-9_]+)(\s*\{([^}]*)\})?`)
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupRE   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
)

// checkExpr reports every switchyard metric in a PromQL expression that the
// code does not register, every label matcher on a label the metric does
// not have, and every grouping label none of the expression's metrics has.
func checkExpr(fams map[string]*family, expr string) []string {
	var problems []string
	known := map[string]bool{"le": false}
	for k := range scrapeLabels {
		known[k] = true
	}
	found := 0
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		f := fams[name]
		if f == nil {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base, ok := strings.CutSuffix(name, suffix)
				if g := fams[base]; ok && g != nil && g.typ == dto.MetricType_HISTOGRAM {
					f = g
					if suffix == "_bucket" {
						known["le"] = true
					}
				}
			}
		}
		if f == nil {
			problems = append(problems, fmt.Sprintf("unknown metric %s", name))
			continue
		}
		found++
		for l := range f.labels {
			known[l] = true
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(m[3], -1) {
			if l := mm[1]; !f.labels[l] && !scrapeLabels[l] {
				problems = append(problems, fmt.Sprintf("%s has no label %q", name, l))
			}
		}
	}
	if found == 0 && strings.Contains(expr, "switchyard_") {
		problems = append(problems, "no known metric")
	}
	for _, g := range groupRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" && !known[l] {
				problems = append(problems, fmt.Sprintf("%s (%s): no metric in the expression has label %q", g[1], g[2], l))
			}
		}
	}
	return problems
}

func TestCheckExprCatchesMistakes(t *testing.T) {
	fams := registered(t)
	cases := []struct {
		expr string
		bad  bool
	}{
		{`sum by (pool) (rate(switchyard_forwarded_difficulty_sum_total{instance=~"$instance"}[5m])) * 4294967296`, false},
		{`histogram_quantile(0.99, sum by (pool, le) (rate(switchyard_pool_submit_duration_seconds_bucket[5m])))`, false},
		{`rate(switchyard_forwarded_difficulty_total[5m])`, true},                    // renamed metric
		{`switchyard_miners_connected{pool="a"}`, true},                              // label it lacks
		{`sum by (reason) (rate(switchyard_miners_connected[5m]))`, true},            // grouping label nobody has
		{`rate(switchyard_miner_connections_opened_total_bucket[5m])`, true},         // not a histogram
		{`histogram_quantile(0.9, sum by (le) (switchyard_miners_connected))`, true}, // le without a histogram
		{`sum by (route, pool) (switchyard_route_split_target_ratio{route=~"$route"})`, false},
		{`sum by (route) (switchyard_miners_connected)`, true},                      // route is on route and pool metrics only
		{`switchyard_route_split_ratio{route="a"}`, true},                           // no such metric
		{`sum by (pool) (increase(switchyard_route_split_moves_total[15m]))`, true}, // moves count per route, not per pool
	}
	for _, c := range cases {
		if got := checkExpr(fams, c.expr); (len(got) > 0) != c.bad {
			t.Errorf("checkExpr(%s) = %v, want problems: %v", c.expr, got, c.bad)
		}
	}
}

// collectExprs walks decoded JSON and returns every PromQL query in it:
// "expr" values and label_values(...) definitions.
func collectExprs(v any, path string, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			if s, ok := e.(string); ok && (k == "expr" || (k == "definition" && strings.Contains(s, "switchyard_"))) {
				out[p] = s
				continue
			}
			collectExprs(e, p, out)
		}
	case []any:
		for i, e := range x {
			collectExprs(e, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/switchyard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos *struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}

	var generic any
	_ = json.Unmarshal(raw, &generic)
	exprs := map[string]string{}
	collectExprs(generic, "", exprs)
	if len(exprs) < 15 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	fams := registered(t)
	used := map[string]bool{}
	for path, e := range exprs {
		for _, p := range checkExpr(fams, e) {
			t.Errorf("dashboard %s: %s\n\t%s", path, p, e)
		}
		for _, m := range metricRE.FindAllStringSubmatch(e, -1) {
			used[m[1]] = true
		}
	}
	// The panels an operator needs first.
	for _, name := range []string{
		"switchyard_forwarded_difficulty_sum_total", "switchyard_miners_connected", "switchyard_pool_active",
		"switchyard_pool_state", "switchyard_failovers_total", "switchyard_shares_total",
		"switchyard_pool_submit_duration_seconds_bucket", "switchyard_pool_shares_total",
	} {
		if !used[name] {
			t.Errorf("dashboard does not chart %s", name)
		}
	}

	// The Routes row: every panel from its row header to the next one,
	// what each charts, and every query filtered by the $route variable.
	var routes []string
	in := false
	for _, p := range dash.Panels {
		if p.Type == "row" {
			in = p.Title == "Routes"
			continue
		}
		if !in {
			continue
		}
		for _, q := range p.Targets {
			routes = append(routes, q.Expr)
			if !strings.Contains(q.Expr, `route=~"$route"`) {
				t.Errorf("Routes panel %q: query not filtered by $route: %s", p.Title, q.Expr)
			}
		}
	}
	all := strings.Join(routes, "\n")
	for _, want := range []struct{ what, re string }{
		{"miners per route", `sum by \(route\) \(switchyard_route_miners\{`},
		{"credited hashrate per route and pool", `sum by \(route, pool\) \(rate\(switchyard_pool_credited_difficulty_sum_total\{[^}]*\}\[\$__rate_interval\]\)\) \* 4294967296`},
		{"split target", `switchyard_route_split_target_ratio\{`},
		{"measured share over 15m", `sum by \(route, pool\) \(increase\(switchyard_pool_credited_difficulty_sum_total\{[^}]*\}\[15m\]\)\) / on \(route\) group_left sum by \(route\) \(increase\(switchyard_pool_credited_difficulty_sum_total\{[^}]*\}\[15m\]\)\)`},
		{"moves per route", `sum by \(route\) \(increase\(switchyard_route_split_moves_total\{`},
	} {
		if !regexp.MustCompile(want.re).MatchString(all) {
			t.Errorf("Routes row lacks %s (%s)", want.what, want.re)
		}
	}
	if !strings.Contains(string(raw), `"name": "route"`) {
		t.Error("dashboard has no $route variable")
	}
}

// ruleExprs reads the alert names and expressions of a Prometheus rules
// file: "- alert: X" lines, then "expr:" either inline or as a "|" block.
func ruleExprs(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(text, "\n")
	alert := ""
	for i := 0; i < len(lines); i++ {
		s := strings.TrimSpace(lines[i])
		if strings.HasPrefix(s, "#") {
			continue
		}
		if name, ok := strings.CutPrefix(s, "- alert:"); ok {
			alert = strings.TrimSpace(name)
			if _, dup := out[alert]; dup {
				t.Errorf("alert %s defined twice", alert)
			}
			out[alert] = ""
			continue
		}
		v, ok := strings.CutPrefix(s, "expr:")
		if !ok {
			continue
		}
		if alert == "" {
			t.Fatalf("line %d: expr outside an alert", i+1)
		}
		v = strings.TrimSpace(v)
		if v == "|" || v == ">" || v == "|-" || v == ">-" {
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, strings.TrimSpace(next))
				i++
			}
			v = strings.Join(block, " ")
		}
		out[alert] = strings.TrimSpace(v)
	}
	return out
}

func TestAlertRulesUseRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if strings.Contains(text, "\t") {
		t.Error("alerts.yml contains a tab: YAML indents with spaces")
	}
	rules := ruleExprs(t, text)
	for _, want := range []string{
		"SwitchyardPoolDown", "SwitchyardFailover", "SwitchyardRejectRatioHigh", "SwitchyardHashrateDrop",
		"SwitchyardNoLivePool", "SwitchyardMinersDroppedSharply", "SwitchyardSplitOffTarget",
	} {
		if _, ok := rules[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
	if n := strings.Count(text, "severity:"); n != len(rules) {
		t.Errorf("%d alerts but %d severity labels", len(rules), n)
	}
	if n := strings.Count(text, "summary:"); n != len(rules) {
		t.Errorf("%d alerts but %d summaries", len(rules), n)
	}
	fams := registered(t)
	for name, e := range rules {
		if e == "" {
			t.Errorf("alert %s has no expr", name)
			continue
		}
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("alert %s: unbalanced brackets: %s", name, e)
		}
		for _, p := range checkExpr(fams, e) {
			t.Errorf("alert %s: %s\n\t%s", name, p, e)
		}
	}
	// Pool and share series carry the route. What a route's miners get
	// alerts per route; what a pool does alerts per pool, so that a pool
	// several routes share alerts once, not once per route.
	byRoute := regexp.MustCompile(`\bby \([^)]*\broute\b[^)]*\)`)
	for _, c := range []struct {
		alert    string
		perRoute bool
	}{
		{"SwitchyardNoLivePool", true}, {"SwitchyardFailover", true}, {"SwitchyardRejectRatioHigh", true},
		{"SwitchyardSplitOffTarget", true},
		{"SwitchyardPoolDown", false}, {"SwitchyardPoolRejectRatioHigh", false}, {"SwitchyardSharesLost", false},
	} {
		if got := byRoute.MatchString(rules[c.alert]); got != c.perRoute {
			t.Errorf("alert %s groups by route: %v, want %v\n\t%s", c.alert, got, c.perRoute, rules[c.alert])
		}
	}
}

// TestREADMEListsEveryMetric: operators read the metrics list in the
// README; every registered metric must be in it, and nothing else.
func TestREADMEListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	fams := registered(t)
	var missing []string
	for name := range fams {
		if !strings.Contains(readme, "`"+name+"`") {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README does not list (as `name`): %s", strings.Join(missing, ", "))
	}
	for _, m := range regexp.MustCompile("`(switchyard_[a-z0-9_]+)").FindAllStringSubmatch(readme, -1) {
		name := m[1]
		if fams[name] == nil && fams[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] == nil {
			t.Errorf("README names %s, which is not registered", name)
		}
	}
}

// TestDeployPromtool checks the alert rules, and the dashboard's queries as
// recording rules, with Prometheus' own parser, and runs the alerts' unit
// tests (deploy/prometheus/alerts_test.yml), when promtool is installed
// (Debian: apt-get install prometheus; CI installs it).
func TestDeployPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH; the PromQL syntax is not checked")
	}
	raw, err := os.ReadFile("../deploy/grafana/switchyard.json")
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	collectExprs(generic, "", exprs)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	i := 0
	for path, e := range exprs {
		if !strings.HasSuffix(path, ".expr") {
			continue // label_values(...) is Grafana's, not PromQL
		}
		e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".+", "$route", ".+").Replace(e)
		q, _ := json.Marshal(e)
		fmt.Fprintf(&b, "      - record: dashboard:q%d\n        expr: %s\n", i, q)
		i++
	}
	dash := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(dash, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "check", "rules", "../deploy/prometheus/alerts.yml", dash).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// The alerts' unit tests: each alert fires on the series it is meant
	// for, after its "for", and not before.
	test := exec.CommandContext(ctx, promtool, "test", "rules", "alerts_test.yml")
	test.Dir = "../deploy/prometheus"
	if out, err := test.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
