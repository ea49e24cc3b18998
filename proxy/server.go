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
	"slices"
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
	// routes are the routes miners are matched to (Options.Routes);
	// unrouted counts the shares of miners not matched yet.
	unroutedOnce sync.Once
	splitNow     chan struct{} // kickSplit
	splitSkips   int           // split ticks in a row without every loop's loads (split loop only)
	table        atomic.Pointer[routeTable]
	pendingMu    sync.Mutex
	pending      map[string]*route // routes added by NewRoute, not yet in force
	unrouted     shareCounters
	bound        []net.Addr // the listeners' addresses, once listening

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
		started:  make(chan struct{}),
		stopped:  make(chan struct{}),
		loops:    map[gnet.EventLoop]*loop{},
		perIP:    map[string]int{},
		splitNow: make(chan struct{}, 1),
	}
	s.ctr.init(s.met)
	s.table.Store(s.newTable(nil, opts.Routes, opts.ListenerRoute, opts.Route))
	if up != nil {
		s.SetRouteUpstream(0, up)
	}
	vd := opts.Vardiff
	s.vd.Store(&vd)
	return s
}

// Serve runs the gnet server until ctx is done or Stop is called. It
// returns once every miner connection is closed.
func (s *Server) Serve(ctx context.Context) error {
	go s.sweepLoop(ctx)
	go s.splitLoop(ctx)
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
	var err error
	ls := s.listeners()
	opts, proto := s.serveOptions(opts, "tcp://"+ls[0])
	if len(ls) > 1 && len(s.inherited()) == 0 {
		protos := make([]string, len(ls))
		for i, l := range ls {
			protos[i] = "tcp://" + l
		}
		err = gnet.Rotate(s, protos, opts...)
	} else {
		err = gnet.Run(s, proto, opts...) // inherited listeners: gnet's own is a unix socket (handover.go)
	}
	close(s.stopped)
	select {
	case <-s.started:
	default:
		for _, l := range s.listeners() {
			if e := listenError(l, err); e != err {
				err = fmt.Errorf("%s: %w", l, e)
				break
			}
		}
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

// listeners returns the addresses miners connect to.
func (s *Server) listeners() []string {
	if len(s.opts.Listeners) > 0 {
		return s.opts.Listeners
	}
	return []string{s.opts.Listen}
}

// OnBoot implements gnet.EventHandler.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	ls := s.listeners()
	s.bound = make([]net.Addr, len(ls))
	inh := s.inherited()
	for i, l := range ls {
		if len(inh) > 0 {
			s.bound[i] = &net.TCPAddr{}
			if i < len(inh) {
				s.bound[i] = inh[i].Addr()
			}
			continue
		}
		var fd int
		var err error
		if len(ls) > 1 {
			fd, err = eng.DupListener("tcp", l)
		} else {
			fd, err = eng.Dup()
		}
		s.bound[i] = &net.TCPAddr{}
		if err != nil {
			continue
		}
		if sa, err := unix.Getsockname(fd); err == nil {
			if in4, ok := sa.(*unix.SockaddrInet4); ok {
				s.bound[i] = &net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port}
			} else if in6, ok := sa.(*unix.SockaddrInet6); ok {
				s.bound[i] = &net.TCPAddr{IP: net.IP(in6.Addr[:]), Port: in6.Port}
			}
		}
		_ = unix.Close(fd)
	}
	s.addr = s.bound[0].String()
	for _, a := range s.bound {
		s.log.Info().Str("listen", a.String()).Msg("accepting miners")
	}
	close(s.started)
	return gnet.None
}

// Addrs returns the listening addresses, in the order of the listeners
// (Options.Listeners); valid once Ready returned.
func (s *Server) Addrs() []string {
	out := make([]string, len(s.bound))
	for i, a := range s.bound {
		out[i] = a.String()
	}
	if len(out) > 0 {
		out[0] = s.addr
	}
	return out
}

// listenerOf finds which listener accepted c: the one whose port is c's
// local port and whose IP is c's or unspecified. 0 when there is one.
// (gnet reports a listener's configured address as a connection's local
// one, so the socket is asked.)
func (s *Server) listenerOf(c gnet.Conn) int {
	if len(s.bound) < 2 {
		return 0
	}
	sa, err := unix.Getsockname(c.Fd())
	if err != nil {
		return 0
	}
	var la net.TCPAddr
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		la = net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrInet6:
		la = net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	default:
		return 0
	}
	wild := -1
	for i, a := range s.bound {
		b, ok := a.(*net.TCPAddr)
		if !ok || b.Port != la.Port {
			continue
		}
		if b.IP.Equal(la.IP) {
			return i
		}
		if b.IP.IsUnspecified() && wild < 0 {
			wild = i
		}
	}
	return max(wild, 0)
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
	m.listener = s.listenerOf(c)
	if ri := s.listenerRoute(m.listener); ri >= 0 {
		m.route = s.routeList()[ri]
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
	if m.routed {
		m.route.leave()
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
	for _, r := range s.routeList() {
		if up := r.upstream(); up != nil {
			up.Lanes(n)
		}
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

// allLanes returns the lanes open now.
func (s *Server) allLanes() []*lane {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	return slices.Clone(s.lanes)
}

// loopCount returns how many event loops have miners (or had).
func (s *Server) loopCount() int32 {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	return int32(len(s.loops))
}

// listenerRoute is the route every miner of listener i goes to, or -1 when
// its worker name decides (Options.ListenerRoute).
func (s *Server) listenerRoute(i int) int { return s.table.Load().listenerRoute(i) }

// matchRoute finds the route of a miner of listener i authorizing as
// worker.
func (s *Server) matchRoute(i int, worker string) (*route, bool) {
	return s.table.Load().match(i, worker)
}

// LaneCount returns how many lanes exist.
func (s *Server) LaneCount() int {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	return len(s.lanes)
}

// sweepLoop enforces the subscribe/authorize deadline and runs vardiff for
// miners that stopped sending shares.
func (s *Server) sweepLoop(ctx context.Context) {
	s.every(ctx, time.Second, nil, func(now time.Time) {
		s.eachLoop(func(lp *loop) {
			for m := range lp.miners {
				m.sweep(now)
			}
		})
	})
}

// every calls fn every d, and at once on each kick (nil: none), until ctx
// is done or the server stopped.
func (s *Server) every(ctx context.Context, d time.Duration, kick <-chan struct{}, fn func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case now := <-t.C:
			fn(now)
		case <-kick:
			fn(time.Now())
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
