package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
	"switchyard/upstream"
)

// defaultProbeTimeout is how long `check -probe` gives each pool.
const defaultProbeTimeout = 10 * time.Second

// probeResult is what probing one pool found.
type probeResult struct {
	pool config.Pool
	// why is the reason the pool is not usable ("dial: connection
	// refused", "unauthorized", "extranonce2_too_small", …); "" when it is.
	why string

	connected bool          // the dial (TCP, SOCKS5, TLS) succeeded
	authed    bool          // subscribed, authorized, a first job in
	connect   time.Duration // dial until connected
	ready     time.Duration // connected until subscribed, authorized and a first job in

	en1Size, en2Size int
	difficulty       float64
	versionMask      uint32
	rolling          bool // the session asked for version rolling
}

// ok reports whether switchyard can mine on the pool.
func (r *probeResult) ok() bool { return r.why == "" }

// probeAll probes every pool of cfg at once and returns the results in
// rank order.
func probeAll(ctx context.Context, cfg *config.Config, timeout time.Duration) []probeResult {
	out := make([]probeResult, len(cfg.Pools))
	var wg sync.WaitGroup
	for i := range cfg.Pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = probe(ctx, cfg, i, timeout)
		}()
	}
	wg.Wait()
	return out
}

// probe dials cfg.Pools[i] with a real upstream.Session, configured as
// switchyard configures its own (the same network path, timeouts and version
// mask), and stops it once the pool is live or has failed, or after
// timeout. The session accepts any extranonce2 size so that a pool too
// small for server.min_pool_extranonce2_size is reported with its size.
func probe(ctx context.Context, cfg *config.Config, i int, timeout time.Duration) probeResult {
	p := cfg.Pools[i]
	res := probeResult{pool: p}
	pools, err := app.Pools(cfg)
	if err != nil {
		res.why = err.Error()
		return res
	}
	opts := app.ManagerOptions(cfg, zerolog.Nop(), nil).Session
	opts.MinExtranonce2Size = 0 // judged below, with the size the pool offers
	opts.Log = zerolog.Nop()
	res.rolling = opts.VersionMask != 0

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := &probeHandler{done: make(chan struct{})}
	sess := upstream.NewSession(pools[i], 0, opts, h)
	ran := make(chan struct{})
	go func() { defer close(ran); sess.Run(ctx) }()
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	cancel()
	<-ran

	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.connectedAt.IsZero() {
		res.connected, res.connect = true, h.connectedAt.Sub(h.dialAt)
	}
	switch {
	case h.job != nil:
		j := h.job
		res.authed, res.ready = true, h.liveAt.Sub(h.connectedAt)
		res.en1Size, res.en2Size = len(j.Extranonce1), j.Extranonce2Size
		res.difficulty, res.versionMask = j.Difficulty, j.VersionMask
		if need := cfg.Server.MinPoolExtranonce2Size; res.en2Size < need {
			res.why = upstream.CauseExtranonce2TooSmall.String()
		}
	case h.downReason != "":
		res.why = h.downReason
		if en1, size := sess.Extranonce(); en1 != nil {
			res.en1Size, res.en2Size = len(en1), size
		}
	default:
		res.why = fmt.Sprintf("no job within %s (got as far as %s)", timeout, h.last)
	}
	return res
}

// probeHandler records one session's first connection: when it dialled,
// connected and went live, with its first job, or why it went down.
type probeHandler struct {
	mu                  sync.Mutex
	done                chan struct{} // closed at live or down
	finished            bool
	last                upstream.State
	dialAt, connectedAt time.Time
	liveAt              time.Time
	pending, job        *upstream.Job
	downReason          string
}

// SessionState implements upstream.Handler.
func (h *probeHandler) SessionState(_ *upstream.Session, st upstream.State, why upstream.Why) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished {
		return
	}
	if st == upstream.StateDown && why.Cause == upstream.CauseStopped {
		h.finish() // the probe's own timeout: keep where the session got to
		return
	}
	h.last = st
	switch st {
	case upstream.StateConnecting:
		h.dialAt = now
	case upstream.StateHandshaking:
		h.connectedAt = now
	case upstream.StateLive:
		h.liveAt, h.job = now, h.pending
		h.finish()
	case upstream.StateDown:
		h.downReason = why.String()
		h.finish()
	}
}

func (h *probeHandler) finish() {
	h.finished = true
	close(h.done)
}

// SessionJob implements upstream.Handler: the first job comes just before
// the state goes live.
func (h *probeHandler) SessionJob(_ *upstream.Session, j *upstream.Job) {
	h.mu.Lock()
	if !h.finished {
		h.pending = j
	}
	h.mu.Unlock()
}

// SessionVerdict implements upstream.Handler; a probe submits nothing.
func (h *probeHandler) SessionVerdict(*upstream.Session, *upstream.Verdict) {}

// netPath says how switchyard reaches p: TLS, SOCKS5, the source address
// and interface. (Not a [[route]], which is about miners.)
func netPath(p config.Pool) string {
	var parts []string
	if ep, err := p.Endpoint(); err == nil && ep.TLS {
		parts = append(parts, "TLS")
	}
	if p.SOCKS5 != "" {
		parts = append(parts, "SOCKS5 "+p.SOCKS5)
	}
	if p.Bind != "" {
		parts = append(parts, "from "+p.Bind)
	}
	if p.Interface != "" {
		parts = append(parts, "interface "+p.Interface)
	}
	if p.Bind == "" && p.Interface == "" {
		parts = append(parts, "the routing table")
	}
	return strings.Join(parts, ", ")
}

// printProbes writes one block per pool and a summary line; it reports
// whether every pool passed.
func printProbes(w io.Writer, rs []probeResult, srv config.Server) bool {
	good := 0
	for _, r := range rs {
		fmt.Fprintf(w, "pool %s: %s, path: %s\n", r.pool.Name, r.pool.URL, netPath(r.pool))
		if r.ok() {
			good++
		}
		if !r.connected {
			fmt.Fprintf(w, "  reachable:  no: %s\n", r.why)
			continue
		}
		fmt.Fprintf(w, "  reachable:  yes, connected in %s\n", ms(r.connect))
		if !r.authed {
			fmt.Fprintf(w, "  authorized: no: %s\n", r.why)
			if r.en2Size > 0 {
				fmt.Fprintf(w, "  extranonce: extranonce1 %d bytes, extranonce2 %d bytes\n", r.en1Size, r.en2Size)
			}
			continue
		}
		fmt.Fprintf(w, "  authorized: yes, as %s; first job %s after connecting\n", r.pool.User, ms(r.ready))
		fmt.Fprintf(w, "  extranonce: extranonce1 %d bytes, extranonce2 %d bytes\n", r.en1Size, r.en2Size)
		fmt.Fprintf(w, "  difficulty: %s\n", strconv.FormatFloat(r.difficulty, 'g', -1, 64))
		switch {
		case r.versionMask != 0:
			fmt.Fprintf(w, "  versions:   rolling, mask %08x\n", r.versionMask)
		case r.rolling:
			fmt.Fprintf(w, "  versions:   no rolling (the pool refused mining.configure or offered no bits)\n")
		}
		need := srv.MinPoolExtranonce2Size
		if r.en2Size >= need {
			fmt.Fprintf(w, "  fits:       yes: %d-byte extranonce2 holds the %d-byte miner prefix (server.extranonce1_size) and every miner's %d bytes\n",
				r.en2Size, srv.Extranonce1Size, srv.MinerExtranonce2Size())
		} else {
			fmt.Fprintf(w, "  fits:       no: %s: the pool's extranonce2 is %d bytes, server.min_pool_extranonce2_size is %d (%d-byte prefix + %d per miner); switchyard refuses this pool\n",
				upstream.CauseExtranonce2TooSmall, r.en2Size, need, srv.Extranonce1Size, srv.MinerExtranonce2Size())
		}
	}
	fmt.Fprintf(w, "probe: %d of %d pools ok\n", good, len(rs))
	return good == len(rs)
}

// ms renders d in milliseconds with a tenth.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}
