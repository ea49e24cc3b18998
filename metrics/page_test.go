package metrics

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStatusPage(t *testing.T) {
	h := Handler(prometheus.NewRegistry(), HandlerOptions{})
	resp, body := get(t, h, "/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/ = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, want := range []string{`id="pools"`, `id="chart"`, `id="miners"`, `id="banner"`, `id="failback"`, `id="farm"`,
		`id="timeline"`, `id="groups"`, `"api/v1/status"`, `"api/v1/miners?"`, `name="viewport"`, "max-width: 640px"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// One page of miners at a time: never the whole list.
	if strings.Contains(body, `"api/v1/miners"`) {
		t.Error("page fetches every miner (api/v1/miners without a query)")
	}
	// Self-contained: nothing loaded from elsewhere (the SVG namespace is
	// an identifier, not a fetch).
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:`)
	if m := ext.FindString(body); m != "" {
		t.Errorf("page loads an external asset: %q", m)
	}
	// Data is written as text, never parsed as HTML.
	if strings.Contains(body, "innerHTML") || strings.Contains(body, "document.write") {
		t.Error("page writes HTML from strings")
	}
}

func TestStatusPageAuth(t *testing.T) {
	cases := []struct {
		name  string
		opts  HandlerOptions
		setup func(*http.Request)
		want  int
	}{
		{"bearer, none sent", HandlerOptions{BearerToken: "s3cret"}, nil, http.StatusUnauthorized},
		{"bearer, right token", HandlerOptions{BearerToken: "s3cret"},
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, http.StatusOK},
		{"basic, wrong password", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"},
			func(r *http.Request) { r.SetBasicAuth("ops", "nope") }, http.StatusUnauthorized},
		{"basic, right password", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"},
			func(r *http.Request) { r.SetBasicAuth("ops", "pw") }, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, Handler(prometheus.NewRegistry(), c.opts), "/", c.setup)
			if resp.StatusCode != c.want {
				t.Fatalf("/ = %d, want %d", resp.StatusCode, c.want)
			}
			if c.want != http.StatusOK && strings.Contains(body, "<html") {
				t.Error("refused request got the page")
			}
		})
	}
}
