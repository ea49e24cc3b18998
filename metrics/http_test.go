package metrics

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string, setup func(*http.Request)) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if setup != nil {
		setup(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(body)
}

func TestHandlerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.MinersConnected.Set(42)
	healthy := true
	h := Handler(reg, HandlerOptions{
		Healthy: func() bool { return healthy },
		Status:  func() any { return map[string]any{"active_pool": "primary", "miners": 42} },
	})

	resp, body := get(t, h, "/metrics", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "switchyard_miners_connected 42") {
		t.Errorf("/metrics = %d\n%s", resp.StatusCode, body)
	}

	resp, body = get(t, h, "/healthz", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz healthy = %d %q, want 200 ok", resp.StatusCode, body)
	}
	healthy = false
	resp, _ = get(t, h, "/healthz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz unhealthy = %d, want 503", resp.StatusCode)
	}

	resp, body = get(t, h, "/api/v1/status", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/v1/status = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st struct {
		ActivePool string `json:"active_pool"`
		Miners     int    `json:"miners"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.ActivePool != "primary" || st.Miners != 42 {
		t.Errorf("/api/v1/status = %q (%v)", body, err)
	}

	resp, _ = get(t, h, "/api/v1/miners", nil) // no Miners func
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api/v1/miners without a source = %d, want 404", resp.StatusCode)
	}
	resp, _ = get(t, h, "/nope", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", resp.StatusCode)
	}
	resp, _ = get(t, h, "/", nil)
	if resp.StatusCode != 200 {
		t.Errorf("/ = %d, want 200", resp.StatusCode)
	}

	r := httptest.NewRequest(http.MethodPost, "/healthz", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", w.Code)
	}
}

func TestHandlerDefaults(t *testing.T) {
	h := Handler(prometheus.NewRegistry(), HandlerOptions{
		Miners: func() any { return []string{"a", "b"} },
	})
	if resp, _ := get(t, h, "/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz with no Healthy = %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, h, "/api/v1/status", nil); resp.StatusCode != 404 {
		t.Errorf("/api/v1/status with no Status = %d, want 404", resp.StatusCode)
	}
	if resp, body := get(t, h, "/api/v1/miners", nil); resp.StatusCode != 200 || body != "[\"a\",\"b\"]\n" {
		t.Errorf("/api/v1/miners = %d %q", resp.StatusCode, body)
	}
	bad := Handler(prometheus.NewRegistry(), HandlerOptions{Status: func() any { return func() {} }})
	if resp, _ := get(t, bad, "/api/v1/status", nil); resp.StatusCode != 500 {
		t.Errorf("unencodable status = %d, want 500", resp.StatusCode)
	}
}

func TestHandlerAuth(t *testing.T) {
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(u, p string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(u, p) }
	}
	tests := []struct {
		name      string
		opts      HandlerOptions
		setup     func(*http.Request)
		want      int
		challenge string
	}{
		{"no auth configured", HandlerOptions{}, nil, 200, ""},
		{"bearer missing", HandlerOptions{BearerToken: "s3cret"}, nil, 401, "Bearer"},
		{"bearer wrong", HandlerOptions{BearerToken: "s3cret"}, bearer("s3cre"), 401, "Bearer"},
		{"bearer right", HandlerOptions{BearerToken: "s3cret"}, bearer("s3cret"), 200, ""},
		{"bearer scheme any case", HandlerOptions{BearerToken: "s3cret"}, func(r *http.Request) { r.Header.Set("Authorization", "bearer s3cret") }, 200, ""},
		{"bearer sent as basic", HandlerOptions{BearerToken: "s3cret"}, basic("s3cret", "s3cret"), 401, "Bearer"},
		{"basic missing", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"}, nil, 401, "Basic"},
		{"basic wrong password", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"}, basic("ops", "p"), 401, "Basic"},
		{"basic wrong user", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"}, basic("op", "pw"), 401, "Basic"},
		{"basic right", HandlerOptions{BasicAuthUser: "ops", BasicAuthPassword: "pw"}, basic("ops", "pw"), 200, ""},
		{"either of both", HandlerOptions{BearerToken: "t", BasicAuthUser: "ops", BasicAuthPassword: "pw"}, basic("ops", "pw"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Handler(prometheus.NewRegistry(), tt.opts)
			for _, path := range []string{"/metrics", "/healthz", "/api/v1/status", "/nope"} {
				resp, _ := get(t, h, path, tt.setup)
				want := tt.want
				if want == 200 && (path == "/api/v1/status" || path == "/nope") {
					want = 404 // through auth, nothing there
				}
				if resp.StatusCode != want {
					t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
				}
				if ch := resp.Header.Get("WWW-Authenticate"); tt.challenge != "" && !strings.HasPrefix(ch, tt.challenge) {
					t.Errorf("%s WWW-Authenticate = %q, want %s", path, ch, tt.challenge)
				}
			}
		})
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(prometheus.NewRegistry(), HandlerOptions{})) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestListenAndServeError(t *testing.T) {
	if err := ListenAndServe(context.Background(), "256.0.0.1:http", http.NotFoundHandler()); err == nil {
		t.Error("ListenAndServe on a bad address = nil")
	}
	srv := NewServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 {
		t.Errorf("NewServer timeouts: %+v", srv)
	}
}

func TestMinersQuery(t *testing.T) {
	var asked url.Values
	h := Handler(prometheus.NewRegistry(), HandlerOptions{
		Miners: func() any { return []string{"every", "miner"} },
		MinersQuery: func(v url.Values) (any, error) {
			asked = v
			if v.Get("limit") == "x" {
				return nil, errors.New("limit must be a whole number")
			}
			return map[string]any{"rows": []string{"one"}}, nil
		},
	})
	if _, body := get(t, h, "/api/v1/miners", nil); body != "[\"every\",\"miner\"]\n" {
		t.Errorf("no query: %q, want every miner (the unparameterised endpoint is unchanged)", body)
	}
	resp, body := get(t, h, "/api/v1/miners?limit=10&q=rack", nil)
	if resp.StatusCode != 200 || body != "{\"rows\":[\"one\"]}\n" || asked.Get("q") != "rack" {
		t.Errorf("query: %d %q, asked %v", resp.StatusCode, body, asked)
	}
	if resp, body := get(t, h, "/api/v1/miners?limit=x", nil); resp.StatusCode != 400 || !strings.Contains(body, "limit must be") {
		t.Errorf("bad query: %d %q, want 400 with the reason", resp.StatusCode, body)
	}
}

func TestJSONGzip(t *testing.T) {
	big := strings.Repeat("rack7.s19 ", 1000)
	h := Handler(prometheus.NewRegistry(), HandlerOptions{Status: func() any { return big }})
	resp, body := get(t, h, "/api/v1/status", func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip, deflate") })
	if resp.Header.Get("Content-Encoding") != "gzip" || len(body) > len(big)/10 {
		t.Fatalf("Content-Encoding %q, %d bytes for %d", resp.Header.Get("Content-Encoding"), len(body), len(big))
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.NewDecoder(zr).Decode(&got); err != nil || got != big {
		t.Errorf("gunzipped body differs (%v)", err)
	}
	if resp, body := get(t, h, "/api/v1/status", func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip;q=0") }); resp.Header.Get("Content-Encoding") != "" || len(body) < len(big) {
		t.Errorf("gzip;q=0 still compressed")
	}
	if resp, _ := get(t, h, "/api/v1/status", nil); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("compressed without Accept-Encoding")
	}
}
