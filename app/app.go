// Package app wires switchyard together from a config: metrics, the pool
// manager, the miner-facing proxy and the HTTP endpoints. cmd/switchyard,
// the demo and the integration tests all start switchyard through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"switchyard/config"
	"switchyard/metrics"
	"switchyard/proxy"
	"switchyard/upstream"
)

// App is a running switchyard.
type App struct {
	Proxy    *proxy.Server
	Pools    *upstream.Manager
	Metrics  *metrics.Metrics
	Registry *prometheus.Registry

	log       zerolog.Logger
	started   time.Time
	version   string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	serveErr  error
	minerAddr string
	httpAddr  string
}

// Start builds and starts switchyard from cfg. It returns once the miner
// listener (and the HTTP listener, if configured) accept connections.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger, version string) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg)
	ctx, cancel := context.WithCancel(ctx)
	a := &App{Metrics: met, Registry: reg, log: log, started: time.Now(), version: version, cancel: cancel}

	pools, err := Pools(cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	for _, p := range pools {
		met.InitPool(p.Name)
	}
	f := cfg.Failover
	popts := ProxyOptions(cfg, log, met, version)
	if cfg.Metrics.PerWorker {
		popts.Workers = metrics.NewWorkers(reg, 0)
	}
	a.Proxy = proxy.New(popts, nil)
	a.Pools = upstream.NewManager(pools, upstream.ManagerOptions{
		Session: upstream.Options{
			DialTimeout:    f.DialTimeout.Duration(),
			SubmitTimeout:  f.SubmitTimeout.Duration(),
			JobTimeout:     f.JobTimeout.Duration(),
			Keepalive:      f.Keepalive.Duration(),
			UserTimeout:    f.UserTimeout.Duration(),
			BackoffMin:     f.BackoffMin.Duration(),
			BackoffMax:     f.BackoffMax.Duration(),
			VersionMask:    0x1fffe000,
			MaxRejectRatio: f.MaxRejectRatio,
			RejectWindow:   f.RejectWindow,
			Log:            log,
		},
		FailbackAfter: f.FailbackAfter.Duration(),
		Standby:       f.Standby,
		Metrics:       met,
		Log:           log,
	}, a.Proxy)
	a.Proxy.SetUpstream(a.Pools)

	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.Pools.Run(ctx) }()
	go func() {
		defer a.wg.Done()
		if err := a.Proxy.Serve(ctx); err != nil {
			a.serveErr = err
			cancel()
		}
	}()
	addr, err := a.Proxy.Ready(ctx)
	if err != nil {
		cancel()
		a.wg.Wait()
		return nil, fmt.Errorf("miner listener %s: %w", cfg.Server.Listen, err)
	}
	a.minerAddr = addr

	if m := cfg.Metrics; m.Listen != "" {
		ln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			cancel()
			a.wg.Wait()
			return nil, fmt.Errorf("metrics.listen %s: %w", m.Listen, err)
		}
		a.httpAddr = ln.Addr().String()
		h := metrics.Handler(reg, metrics.HandlerOptions{
			Healthy:           a.Pools.Live,
			Status:            func() any { return a.Status() },
			Miners:            func() any { return a.Proxy.MinerRows() },
			BearerToken:       m.BearerToken,
			BasicAuthUser:     m.BasicAuthUser,
			BasicAuthPassword: m.BasicAuthPassword,
		})
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := metrics.Serve(ctx, ln, h); err != nil {
				log.Error().Err(err).Msg("metrics server stopped")
			}
		}()
		log.Info().Str("listen", a.httpAddr).Msg("serving /metrics and /api/v1/status")
	}
	return a, nil
}

// MinerAddr is the address miners connect to.
func (a *App) MinerAddr() string { return a.minerAddr }

// HTTPAddr is the address of /metrics and the API, or "".
func (a *App) HTTPAddr() string { return a.httpAddr }

// Stop shuts everything down and waits.
func (a *App) Stop() error {
	a.cancel()
	a.wg.Wait()
	return a.serveErr
}

// Status is the body of /api/v1/status.
type Status struct {
	Version       string                `json:"version"`
	UptimeSeconds float64               `json:"uptime_seconds"`
	ActivePool    string                `json:"active_pool"`
	Pools         []upstream.PoolStatus `json:"pools"`
	Miners        proxy.Summary         `json:"miners"`
}

// Status reports the running state.
func (a *App) Status() Status {
	return Status{
		Version:       a.version,
		UptimeSeconds: time.Since(a.started).Seconds(),
		ActivePool:    a.Pools.Active(),
		Pools:         a.Pools.Status(),
		Miners:        a.Proxy.Summary(),
	}
}

// Pools maps the config's ranked [[pool]] tables to upstream pools.
func Pools(cfg *config.Config) ([]upstream.Pool, error) {
	var out []upstream.Pool
	for _, p := range cfg.Pools {
		out = append(out, upstream.Pool{
			Name:          p.Name,
			URL:           p.URL,
			User:          p.User,
			Password:      p.Password,
			Bind:          p.Bind,
			Interface:     p.Interface,
			SOCKS5:        p.SOCKS5,
			TLSSkipVerify: p.TLSSkipVerify,
			TLSCAFile:     p.TLSCAFile,
			TLSPinSHA256:  p.TLSPinSHA256,
		})
	}
	if len(out) == 0 {
		return nil, errors.New("no [[pool]] configured")
	}
	return out, nil
}

// ProxyOptions maps the config to the proxy's options.
func ProxyOptions(cfg *config.Config, log zerolog.Logger, met *metrics.Metrics, version string) proxy.Options {
	s, d := cfg.Server, cfg.Difficulty
	return proxy.Options{
		Listen:               s.Listen,
		EventLoops:           s.EventLoops,
		MaxConnections:       s.MaxConnections,
		MaxConnectionsPerIP:  s.MaxConnectionsPerIP,
		MaxLineBytes:         s.MaxLineBytes,
		AuthTimeout:          s.AuthTimeout.Duration(),
		MaxSubmitsPerSecond:  s.MaxSubmitsPerSecond,
		MaxPendingWriteBytes: s.MaxPendingWriteBytes,
		PrefixBytes:          s.Extranonce1Size,
		PerWorker:            s.WorkerMode == config.WorkerModePerWorker,
		DisconnectWhenDown:   cfg.Failover.WhenAllDown == config.WhenAllDownDisconnect,
		InitialDifficulty:    d.Initial,
		MinDifficulty:        d.Min,
		MaxDifficulty:        d.Max,
		TargetShareInterval:  d.TargetShareInterval.Duration(),
		RetargetInterval:     d.RetargetInterval.Duration(),
		Log:                  log,
		Metrics:              met,
		Version:              version,
	}
}
