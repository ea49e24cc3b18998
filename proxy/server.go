// Package proxy is switchyard's miner-facing side: a gnet v2 server holding
// one session per miner connection, validating every share locally, fanning
// each job out to every miner of a lane with one encoded line, and handing
// shares that meet the pool's difficulty to the upstream session that issued
// the job.
//
// Concurrency: a miner's state belongs to its event loop and is touched only
// there (gnet callbacks and Runnables executed on that loop). The pool side
// calls Publish, TimeSwitch and AllDown from its outbox goroutine, one call
// at a time, and Verdict from session goroutines; Publish hands the fan-out
// to each loop with EventLoop.Execute and never blocks on a miner. The
// server's own mutexes (lanes, loops, per-IP counts, pending switches) are
// leaves: none is held across a call into upstream (laneFor tells the pool
// side about a new lane after releasing its lock), and the pool side's
// Lanes and Authorize return at once.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"switchyard/metrics"
	"switchyard/stratum"
	"switchyard/upstream"
)

// Upstream is what the proxy asks of the pool side.
type Upstream interface {
	// Lanes tells the pool side that n lanes are in use, so each serving
	// pool keeps n sessions.
	Lanes(n int)
	// Authorize makes worker known to every session of lane (per-worker mode).
	Authorize(lane int, worker string)
}

// Server is the miner-facing proxy.
type Server struct {
	gnet.BuiltinEventEngine

	opts Options
	log  zerolog.Logger
	met  *metrics.Metrics
	ctr  counters
	up   Upstream

	eng     gnet.Engine
	addr    string
	started chan struct{}
	stopped chan struct{}
	runErr  error

	jobSeq   atomic.Uint64
	minerSeq atomic.Uint64
	conns    atomic.Int64
	draining atomic.Bool
	inflight atomic.Int64 // forwarded shares awaiting the pool's verdict
	vd       atomic.Pointer[Vardiff]
	allDown  atomic.Bool

	lanesMu sync.Mutex
	lanes   []*lane

	loopsMu sync.Mutex
	loops   map[gnet.EventLoop]*loop

	ipMu  sync.Mutex
	perIP map[string]int

	activeMu sync.Mutex
	switches map[int]*pendingSwitch // lane -> switch awaiting its first fan-out

	ho handover // see handover.go
}

// loop is the per-event-loop state: its miners and a scratch buffer.
// Only the loop's goroutine touches it after creation.
type loop struct {
	el     gnet.EventLoop
	miners map[*miner]struct{}
	out    []byte
	scr    scratch
}

// New returns a Server; Serve starts it.
func New(opts Options, up Upstream) *Server {
	opts.setDefaults()
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(prometheus.NewRegistry())
	}
	s := &Server{
		opts:     opts,
		log:      opts.Log.With().Str("component", "proxy").Logger(),
		met:      opts.Metrics,
		up:       up,
		started:  make(chan struct{}),
		stopped:  make(chan struct{}),
		loops:    map[gnet.EventLoop]*loop{},
		perIP:    map[string]int{},
		switches: map[int]*pendingSwitch{},
	}
	s.ctr.init(s.met)
	vd := opts.Vardiff
	s.vd.Store(&vd)
	return s
}

// Serve runs the gnet server until ctx is done or Stop is called. It
// returns once every miner connection is closed.
func (s *Server) Serve(ctx context.Context) error {
	go s.sweepLoop(ctx)
	go func() {
		<-ctx.Done()
		_ = s.Stop(context.Background())
	}()
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithReusePort(false),
		// A restart must bind again at once: the miners the old process
		// closed leave TIME_WAIT sockets on the listening port for a minute.
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTCPKeepAlive(time.Minute),
		gnet.WithReadBufferCap(64 << 10),
		gnet.WithSocketSendBuffer(minerSendBuffer),
		gnet.WithLogger(gnetLogger{s.log}),
	}
	if s.opts.EventLoops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(s.opts.EventLoops))
	}
	opts, proto := s.serveOptions(opts, "tcp://"+s.opts.Listen)
	err := gnet.Run(s, proto, opts...)
	close(s.stopped)
	select {
	case <-s.started:
	default:
		err = listenError(s.opts.Listen, err)
		s.runErr = err
		close(s.started) // failed before boot: unblock Ready
	}
	return err
}

// listenError explains a failure to start listening. gnet reports a bind
// error as a later step's ("setsockopt: bad file descriptor"), so the bind
// is tried once more with the standard library to name the real cause,
// such as "address already in use".
func listenError(addr string, err error) error {
	if err == nil {
		return nil
	}
	l, lerr := net.Listen("tcp", addr)
	if lerr != nil {
		return lerr // "listen tcp ADDR: bind: address already in use"
	}
	_ = l.Close()
	return err
}

// minerSendBuffer is SO_SNDBUF of miner connections. A miner needs a few
// KiB of jobs at a time; a fixed buffer keeps the kernel from growing it to
// megabytes for a miner that stopped reading, so max_pending_write_bytes
// notices such a miner after a bounded amount of memory.
const minerSendBuffer = 64 << 10

// Ready blocks until the listener is up (or Serve failed) and returns the
// listening address.
func (s *Server) Ready(ctx context.Context) (string, error) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if s.runErr != nil {
		return "", s.runErr
	}
	return s.addr, nil
}

// Stop closes the listener and every miner connection.
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.runErr != nil {
		return nil
	}
	s.draining.Store(true)
	s.closeInherited()
	err := s.eng.Stop(ctx)
	if err != nil && !errors.Is(err, gerrors.ErrEngineInShutdown) {
		return err
	}
	return nil
}

// vardiff returns the difficulty policy in force.
func (s *Server) vardiff() *Vardiff { return s.vd.Load() }

// SetVardiff changes the difficulty policy. Connected miners move into the
// new bounds at their next retarget.
func (s *Server) SetVardiff(v Vardiff) {
	v.setDefaults()
	s.vd.Store(&v)
}

// InFlight returns how many forwarded shares await the pool's verdict.
func (s *Server) InFlight() int64 { return s.inflight.Load() }

// Miners returns the number of connected miners.
func (s *Server) Miners() int { return int(s.conns.Load()) }

// OnBoot implements gnet.EventHandler.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.addr = s.opts.Listen
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			if in4, ok := sa.(*unix.SockaddrInet4); ok {
				s.addr = (&net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port}).String()
			} else if in6, ok := sa.(*unix.SockaddrInet6); ok {
				s.addr = (&net.TCPAddr{IP: net.IP(in6.Addr[:]), Port: in6.Port}).String()
			}
		}
		_ = unix.Close(fd)
	}
	if a := s.inheritedAddr(); a != "" {
		s.addr = a
	}
	s.log.Info().Str("listen", s.addr).Msg("accepting miners")
	close(s.started)
	return gnet.None
}

// OnOpen implements gnet.EventHandler: limits, then a new miner session.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if ad, ok := c.Context().(*adoption); ok {
		return s.openAdopted(c, ad)
	}
	ip := remoteIP(c.RemoteAddr())
	if s.draining.Load() || (s.opts.DisconnectWhenDown && s.allDown.Load()) {
		return nil, gnet.Close
	}
	if max := s.opts.MaxConnections; max > 0 && s.conns.Load() >= int64(max) {
		s.ctr.limit(limitMaxConnections)
		return nil, gnet.Close
	}
	// With PROXY protocol the miner's address is counted once its header
	// names it (readProxyHeader).
	if !s.opts.ProxyProtocol && !s.admitIP(ip) {
		s.ctr.limit(limitPerIP)
		return nil, gnet.Close
	}
	lp := s.loopOf(c.EventLoop())
	m := &miner{
		srv:       s,
		c:         c,
		loop:      lp,
		id:        s.minerSeq.Add(1),
		ip:        ip,
		remote:    c.RemoteAddr().String(),
		connected: time.Now(),
		scratch:   &lp.scr,
	}
	if s.opts.ProxyProtocol {
		m.ip, m.awaitProxy = "", true
	}
	vd := s.vardiff()
	m.vdiff = clamp(vd.Initial, vd.Min, vd.Max)
	c.SetContext(m)
	lp.miners[m] = struct{}{}
	s.conns.Add(1)
	s.met.MinersConnected.Inc()
	s.met.ConnectionsOpened.Inc()
	return nil, gnet.None
}

// OnClose implements gnet.EventHandler.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	m, ok := c.Context().(*miner)
	if !ok || m == nil {
		return gnet.None
	}
	c.SetContext(nil)
	if m.handedOff {
		s.closeHandedOff(m)
		return gnet.None
	}
	delete(m.loop.miners, m)
	if m.ip != "" { // "": not counted yet (PROXY header unread) or refused
		s.releaseIP(m.ip)
	}
	if m.lane != nil {
		m.lane.releasePrefix(m.prefix, m.accepted > 0)
	}
	for _, w := range m.workers {
		s.opts.Workers.Forget(w.series)
	}
	s.conns.Add(-1)
	s.met.MinersConnected.Dec()
	reason := m.closeReason
	if reason == closeNone {
		reason = peerCloseReason(err)
		if s.draining.Load() {
			reason = CloseShutdown
		}
	}
	s.ctr.closed[reason].Inc()
	ev := s.log.Info()
	if err != nil && reason != CloseEOF {
		ev = ev.Err(err)
	}
	ev.Str("remote", m.remote).Str("worker", m.workerName()).Str("reason", reason.String()).
		Uint64("accepted", m.accepted).Uint64("rejected", m.rejected).Msg("miner disconnected")
	return gnet.None
}

// OnTraffic implements gnet.EventHandler: frame lines, handle each, write
// every answer in one go.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	m, ok := c.Context().(*miner)
	if !ok || m == nil {
		return gnet.Close
	}
	buf, _ := c.Peek(c.InboundBuffered())
	lp := m.loop
	used := 0
	if m.awaitProxy {
		n, closing := s.readProxyHeader(c, m, buf)
		if closing {
			return gnet.Close
		} else if n == 0 {
			return gnet.None // the header is not all in yet
		}
		used = n
	}
	out := lp.out[:0]
	action := gnet.None
	for {
		line, n, err := stratum.NextLine(buf[used:], s.opts.MaxLineBytes)
		if err != nil {
			s.ctr.limit(limitLine)
			out = stratum.AppendError(out, nil, stratum.CodeOther, "Line too long")
			m.closeReason = CloseLineTooLong
			action = gnet.Close
			break
		}
		if n == 0 {
			break
		}
		used += n
		out = m.handle(out, line)
		if m.closeReason != closeNone {
			action = gnet.Close
			break
		}
	}
	if used > 0 { // NOTE: gnet's Discard(0) discards everything, a partial line too
		_, _ = c.Discard(used)
	}
	if len(out) > 0 {
		_, _ = c.Write(out)
	}
	lp.out = out[:0]
	if action == gnet.None && !m.checkBacklog() {
		action = gnet.Close
	}
	if action == gnet.None && m.handoff {
		action = s.handOffConn(c, m, len(buf)-used)
	}
	return action
}

// loopOf returns the state of event loop el, creating it on first use.
func (s *Server) loopOf(el gnet.EventLoop) *loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	lp := s.loops[el]
	if lp == nil {
		lp = &loop{el: el, miners: map[*miner]struct{}{}, out: make([]byte, 0, 4096)}
		s.loops[el] = lp
	}
	return lp
}

// eachLoop runs fn on every event loop, on that loop's goroutine.
func (s *Server) eachLoop(fn func(lp *loop)) {
	s.loopsMu.Lock()
	loops := make([]*loop, 0, len(s.loops))
	for _, lp := range s.loops {
		loops = append(loops, lp)
	}
	s.loopsMu.Unlock()
	for _, lp := range loops {
		lp := lp
		err := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			fn(lp)
			return nil
		}))
		if err != nil && !s.draining.Load() {
			s.log.Warn().Err(err).Msg("event loop refused work")
		}
	}
}

// laneFor returns a lane with a free prefix, opening a new lane (and so new
// upstream sessions) when every lane is full. The pool side is told after
// lanesMu is released: no lock of ours is held across a call into it.
func (s *Server) laneFor() (*lane, uint32) {
	s.lanesMu.Lock()
	for _, l := range s.lanes {
		if p, ok := l.allocPrefix(); ok {
			s.lanesMu.Unlock()
			return l, p
		}
	}
	l := s.newLaneLocked()
	n := len(s.lanes)
	p, _ := l.allocPrefix()
	s.lanesMu.Unlock()
	if s.up != nil {
		s.up.Lanes(n)
	}
	s.log.Info().Int("lane", l.idx).Msg("opened lane")
	return l, p
}

// lane returns lane idx, creating it (and any before it) when a pool
// session reports a job for it first.
func (s *Server) lane(idx int) *lane {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	for len(s.lanes) <= idx {
		s.newLaneLocked()
	}
	return s.lanes[idx]
}

func (s *Server) newLaneLocked() *lane {
	l := newLane(len(s.lanes), s.opts.PrefixBytes, s.opts.MinerExtranonce2Size, &s.jobSeq)
	s.lanes = append(s.lanes, l)
	return l
}

// LaneCount returns how many lanes exist.
func (s *Server) LaneCount() int {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	return len(s.lanes)
}

// Verdict counts a pool's verdict on a forwarded share. Called from
// upstream goroutines.
func (s *Server) Verdict(sess *upstream.Session, r *upstream.Verdict) {
	s.inflight.Add(-1)
	pool := sess.Pool().Name
	pc := s.ctr.pool(pool)
	switch {
	case r.Accepted:
		pc.accepted.Inc()
		pc.credited.Add(r.Difficulty)
		s.met.SubmitLatency.WithLabelValues(pool).Observe(r.RTT.Seconds())
	case r.Reason == stratum.ReasonPoolRejected:
		pc.rejected.Inc()
		s.met.SubmitLatency.WithLabelValues(pool).Observe(r.RTT.Seconds())
		s.log.Debug().Str("pool", pool).Int("code", r.Code).Str("message", r.Message).Msg("pool rejected a share switchyard accepted")
	default:
		pc.lost[r.Reason].Inc()
		if e := s.log.Debug(); e.Enabled() {
			e.Str("pool", pool).Str("reason", r.Reason.String()).Str("pool_job_id", r.JobID).
				Uint32("nonce", r.Nonce).Int("lane", sess.Lane()).Msg("forwarded share lost")
		}
	}
}

// sweepLoop enforces the subscribe/authorize deadline and runs vardiff for
// miners that stopped sending shares.
func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case now := <-t.C:
			s.eachLoop(func(lp *loop) {
				for m := range lp.miners {
					m.sweep(now)
				}
			})
		}
	}
}

func (s *Server) admitIP(ip string) bool {
	max := s.opts.MaxConnectionsPerIP
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	if max > 0 && s.perIP[ip] >= max {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) releaseIP(ip string) {
	s.ipMu.Lock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.ipMu.Unlock()
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// gnetLogger routes gnet's own logs into zerolog.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug().Msg(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug().Msg(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn().Msg(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error().Msg(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error().Msg(fmt.Sprintf(f, a...)) }
