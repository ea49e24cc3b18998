package metrics

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HandlerOptions configure Handler. Every field is optional.
type HandlerOptions struct {
	// Healthy answers /healthz: 200 "ok" when it returns true, 503 when
	// false. nil: always healthy (the process is up).
	Healthy func() bool
	// Status returns the body of /api/v1/status, encoded as JSON. nil: 404.
	Status func() any
	// Miners returns the body of /api/v1/miners, encoded as JSON. nil: 404.
	Miners func() any
	// MinersQuery, when set, answers /api/v1/miners requests that carry a
	// query string (?limit=50&sort=-hashrate…) with one page; an error is
	// a 400 with its text. Requests without one get Miners, every miner.
	MinersQuery func(url.Values) (any, error)

	// BearerToken, when set, must be sent as "Authorization: Bearer <token>".
	BearerToken string
	// BasicAuthUser and BasicAuthPassword, when either is set, must be sent
	// as HTTP basic authentication. With BearerToken too, either is accepted.
	BasicAuthUser string
	// BasicAuthPassword goes with BasicAuthUser.
	BasicAuthPassword string
}

// Handler serves, on every path behind the authentication configured in
// opts:
//
//	GET /metrics          Prometheus exposition of g
//	GET /healthz          200 "ok" or 503 "unhealthy", from opts.Healthy
//	GET /api/v1/status    JSON of opts.Status()
//	GET /api/v1/miners    JSON of opts.Miners(); with a query string,
//	                      of opts.MinersQuery(query)
//	GET /                 the status page (status.html): farm totals,
//	                      pools, failover timeline, hashrate chart, miner
//	                      groups and one page of miners, refreshed from the
//	                      two APIs
//
// JSON answers are gzip-compressed for clients that accept it.
func Handler(g prometheus.Gatherer, opts HandlerOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError, // a broken collector must not hide the rest
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if opts.Healthy != nil && !opts.Healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unhealthy\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /api/v1/status", jsonHandler(opts.Status))
	all := jsonHandler(opts.Miners)
	mux.HandleFunc("GET /api/v1/miners", func(w http.ResponseWriter, r *http.Request) {
		if opts.MinersQuery == nil || r.URL.RawQuery == "" {
			all.ServeHTTP(w, r)
			return
		}
		page, err := opts.MinersQuery(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jsonHandler(func() any { return page }).ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /{$}", servePage)
	return newAuth(opts).wrap(mux)
}

// jsonHandler serves f's result as JSON; 404 when f is nil.
func jsonHandler(f func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f == nil {
			http.NotFound(w, r)
			return
		}
		body, err := json.Marshal(f())
		if err != nil {
			http.Error(w, "encoding status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Add("Vary", "Accept-Encoding")
		body = append(body, '\n')
		if len(body) >= gzipMin && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			_, _ = zw.Write(body)
			_ = zw.Close()
			return
		}
		_, _ = w.Write(body)
	})
}

// gzipMin is the smallest JSON answer worth compressing.
const gzipMin = 1024

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// auth checks credentials in constant time. It keeps SHA-256 digests of the
// secrets, so comparisons take the same time whatever the lengths.
type auth struct {
	bearer       bool
	token        [sha256.Size]byte
	basic        bool
	user, passwd [sha256.Size]byte
}

func newAuth(o HandlerOptions) auth {
	return auth{
		bearer: o.BearerToken != "",
		token:  sha256.Sum256([]byte(o.BearerToken)),
		basic:  o.BasicAuthUser != "" || o.BasicAuthPassword != "",
		user:   sha256.Sum256([]byte(o.BasicAuthUser)),
		passwd: sha256.Sum256([]byte(o.BasicAuthPassword)),
	}
}

func (a auth) wrap(next http.Handler) http.Handler {
	if !a.bearer && !a.basic {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.allowed(r) {
			next.ServeHTTP(w, r)
			return
		}
		if a.basic {
			w.Header().Add("WWW-Authenticate", `Basic realm="switchyard", charset="UTF-8"`)
		}
		if a.bearer {
			w.Header().Add("WWW-Authenticate", `Bearer realm="switchyard"`)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})
}

func (a auth) allowed(r *http.Request) bool {
	if a.bearer {
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			t := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			if subtle.ConstantTimeCompare(t[:], a.token[:]) == 1 {
				return true
			}
		}
	}
	if a.basic {
		if user, passwd, ok := r.BasicAuth(); ok {
			u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(passwd))
			// Both compared, always: no early exit on a wrong user.
			if subtle.ConstantTimeCompare(u[:], a.user[:])&subtle.ConstantTimeCompare(p[:], a.passwd[:]) == 1 {
				return true
			}
		}
	}
	return false
}

// Server timeouts used by NewServer.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second // a scrape with per-worker series can be megabytes
	IdleTimeout       = 60 * time.Second
	ShutdownTimeout   = 5 * time.Second
)

// NewServer returns an http.Server for h with timeouts that keep slow or
// idle clients from holding connections.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
}

// Serve serves h on ln (see NewServer) until ctx is done, then shuts down
// gracefully, waiting at most ShutdownTimeout for requests in flight. It
// returns nil after a shutdown caused by ctx, else the server's error.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := NewServer(h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, h)
}

// statusPage is the page served at /: self-contained HTML, CSS and
// JavaScript that polls /api/v1/status and /api/v1/miners.
//
//go:embed status.html
var statusPage []byte

func servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Only this page's own inline code, and requests back to its origin.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_, _ = w.Write(statusPage)
}
