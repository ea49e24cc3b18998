package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"switchyard/stratum"
)

// A handover moves miner connections from one switchyard process to the
// next without closing them. The old process (HandOff) takes each miner
// out of its event loop once the miner has no partial line in and nothing
// unwritten out: what it had read is answered, a duplicate of its socket
// and its state (MinerState) go out, and its loop forgets it without a
// close the miner could see. The new process (Adopt) enrolls the socket
// into its own event loops with that state and a clean job from its own
// pool session: the miner's extranonce1 is switchyard's prefix, which the
// new process reserves, so the miner sees nothing but a new job. A miner
// the old process handed out but the new one never resumed is taken back
// (TakeBack) as it was, with no job sent.
//
// The listening sockets are shared rather than re-bound: the new process
// serves the old one's (Inherit), one per listen address, accepting on
// each in a goroutine that enrolls each connection into gnet (gnet v2
// cannot run on a listener it did not open, so its own listener is an
// abstract unix socket nobody connects to). Both processes accept from the
// same queues until the old one stops: no connection is refused at any
// moment. A miner's listener, which picks its route, is found from its
// socket's local address (listenerOf), for an adopted miner as for one
// accepted here.

// HandoverFormat is the version of MinerState. A process refuses a
// handover from one whose format it does not know.
const HandoverFormat = 1

// MinerState is a miner connection's state as it moves between processes.
type MinerState struct {
	ID         uint64    `json:"id"`
	Remote     string    `json:"remote"`
	IP         string    `json:"ip"`
	Connected  time.Time `json:"connected"`
	Subscribed bool      `json:"subscribed"`
	Authorized bool      `json:"authorized"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Lane       int       `json:"lane"`
	Prefix     uint32    `json:"prefix"`
	En2Size    int       `json:"en2_size"`
	En2Sub     bool      `json:"en2_sub,omitempty"`
	RollingOK  bool      `json:"rolling_ok,omitempty"`
	MinerMask  uint32    `json:"miner_mask,omitempty"`
	Mask       uint32    `json:"mask,omitempty"`
	// Workers are the authorized names, each with its per-worker suffix.
	Workers []WorkerState `json:"workers,omitempty"`
	VDiff   float64       `json:"vdiff"`
	Diff    float64       `json:"diff"`
	MinReq  float64       `json:"min_req,omitempty"`
	// The miner's books: shares answered true (lost ones included) and
	// false, by reason.
	Accepted   uint64            `json:"accepted"`
	Rejected   uint64            `json:"rejected"`
	RejectedBy map[string]uint64 `json:"rejected_by,omitempty"`
	LostBy     map[string]uint64 `json:"lost_by,omitempty"`
	Lost       uint64            `json:"lost,omitempty"`
	DiffSum    float64           `json:"diff_sum"`
	LastShare  time.Time         `json:"last_share"`
}

// WorkerState is one authorized worker of a MinerState.
type WorkerState struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream,omitempty"`
}

// HandedOff is a miner taken out of the server: its state and a duplicate
// of its socket (close-on-exec), which the receiver owns.
type HandedOff struct {
	State MinerState
	FD    int
}

// handover is the Server's handover state.
type handover struct {
	enabled atomic.Bool // LeastConnections balancing, so Register is safe
	active  atomic.Bool // HandOff in progress: miners leave as they can
	out     chan HandedOff

	mu     sync.Mutex
	lns    []*net.TCPListener // inherited listening sockets, in the order of the listeners (Inherit); none: gnet's own
	accept bool
}

// EnableHandover prepares the server, before Serve, to hand its miners to
// another process and to take them back: connections are balanced over
// the event loops by count, so that enrolling one from outside is safe.
func (s *Server) EnableHandover() { s.ho.enabled.Store(true) }

// Inherit makes the server, before Serve, serve lns (the listening
// sockets received from the process handing over, one for each listen
// address, in the order of Options.Listeners) instead of binding them.
// Nothing is accepted from them until StartAccepting.
func (s *Server) Inherit(lns ...*net.TCPListener) {
	s.ho.enabled.Store(true)
	s.ho.mu.Lock()
	s.ho.lns = slices.Clone(lns)
	s.ho.mu.Unlock()
}

// inherited returns the inherited listeners (none: gnet's own).
func (s *Server) inherited() []*net.TCPListener {
	s.ho.mu.Lock()
	defer s.ho.mu.Unlock()
	return s.ho.lns
}

// serveOptions adjusts gnet's options and address for handover.
func (s *Server) serveOptions(opts []gnet.Option, proto string) ([]gnet.Option, string) {
	if !s.ho.enabled.Load() {
		return opts, proto
	}
	opts = append(opts, gnet.WithLoadBalancing(gnet.LeastConnections))
	if len(s.inherited()) > 0 {
		proto = "unix://@switchyard-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return opts, proto
}

// StartAccepting starts accepting miners on the inherited listeners; it
// returns at once. Without any it does nothing.
func (s *Server) StartAccepting() {
	s.ho.mu.Lock()
	lns := s.ho.lns
	start := !s.ho.accept
	s.ho.accept = true
	s.ho.mu.Unlock()
	if start {
		for _, ln := range lns {
			go s.acceptLoop(ln)
		}
	}
}

// acceptLoop accepts on the inherited listener until it is closed and
// enrolls each connection into the event loops (OnOpen applies the
// limits as to any connection).
func (s *Server) acceptLoop(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !s.draining.Load() {
				s.log.Error().Err(err).Msg("inherited listener: accept failed; no longer accepting")
			}
			return
		}
		_ = c.SetWriteBuffer(minerSendBuffer)
		_ = c.SetNoDelay(true)
		if err := s.enroll(c, nil); err != nil {
			s.log.Warn().Err(err).Str("remote", c.RemoteAddr().String()).Msg("accepted miner not enrolled")
		}
		_ = c.Close()
	}
}

// closeInherited closes the inherited listeners (this process's
// descriptors of them only: another process holding them keeps
// accepting).
func (s *Server) closeInherited() {
	for _, ln := range s.inherited() {
		_ = ln.Close()
	}
}

// ListenerFiles returns a duplicate of each of the miners' listening
// sockets, in the order of the listeners, for the process taking over.
func (s *Server) ListenerFiles() ([]*os.File, error) {
	var out []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range out {
			_ = f.Close()
		}
		return nil, err
	}
	if lns := s.inherited(); len(lns) > 0 {
		for _, ln := range lns {
			f, err := ln.File()
			if err != nil {
				return fail(err)
			}
			out = append(out, f)
		}
		return out, nil
	}
	select {
	case <-s.started:
	default:
		return nil, errors.New("proxy: not serving")
	}
	ls := s.listeners()
	for _, l := range ls {
		var fd int
		var err error
		if len(ls) == 1 {
			fd, err = s.eng.Dup()
		} else {
			fd, err = s.eng.DupListener("tcp", l)
		}
		if err != nil {
			return fail(fmt.Errorf("listener %s: %w", l, err))
		}
		unix.CloseOnExec(fd)
		out = append(out, os.NewFile(uintptr(fd), "miners-listener "+l))
	}
	return out, nil
}

// Prepare readies the server, before Adopt, for miners of the given
// number of lanes: lanes are opened (and so the pool sessions serving
// them), and job and miner ids continue above the old process's so that
// a share on an old job id is never read as one of this process's jobs.
func (s *Server) Prepare(lanes int, jobSeq, minerSeq uint64) {
	for s.jobSeq.Load() < jobSeq {
		s.jobSeq.Store(jobSeq)
	}
	for s.minerSeq.Load() < minerSeq {
		s.minerSeq.Store(minerSeq)
	}
	if lanes <= 0 {
		return
	}
	s.lane(lanes - 1)
	for _, r := range s.routeList() {
		if up := r.upstream(); up != nil {
			up.Lanes(lanes)
		}
	}
}

// Seqs returns the last job id and miner id issued, for Prepare.
func (s *Server) Seqs() (jobSeq, minerSeq uint64) { return s.jobSeq.Load(), s.minerSeq.Load() }

// LanesReady reports whether each of the first n lanes has a current job:
// miners adopted onto them resume at once.
func (s *Server) LanesReady(n int) bool {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if len(s.lanes) < n {
		return false
	}
	for _, l := range s.lanes[:n] {
		for _, r := range s.routeList() {
			if r.set.Load() != nil && !r.hasWork(l) {
				return false
			}
		}
		if l.anyJob() == nil {
			return false
		}
	}
	return true
}

// HandOff starts moving every miner out of the server; each one that
// leaves is sent on the returned channel. Call Nudge until Miners is 0:
// a miner leaves only between lines with its output written, and miners
// that connect meanwhile leave too. CancelHandOff stops it.
func (s *Server) HandOff() <-chan HandedOff {
	s.ho.mu.Lock()
	if s.ho.out == nil {
		s.ho.out = make(chan HandedOff, 4096)
	}
	out := s.ho.out
	s.ho.mu.Unlock()
	s.ho.active.Store(true)
	s.Nudge()
	return out
}

// Nudge asks every miner still here to leave (see HandOff).
func (s *Server) Nudge() {
	if !s.ho.active.Load() {
		return
	}
	s.eachLoop(func(lp *loop) {
		for m := range lp.miners {
			if m.closeReason == closeNone && !m.handedOff {
				m.handoff = true
				_ = m.c.Wake(nil)
			}
		}
	})
}

// CancelHandOff stops a handover: miners not yet out stay.
func (s *Server) CancelHandOff() {
	s.ho.active.Store(false)
	s.eachLoop(func(lp *loop) {
		for m := range lp.miners {
			m.handoff = false
		}
	})
}

// handOffConn takes m out of its loop if it can leave now: no partial
// line read (rest), nothing waiting to be written, no PROXY header
// pending. Called at the end of OnTraffic.
func (s *Server) handOffConn(c gnet.Conn, m *miner, rest int) gnet.Action {
	if !s.ho.active.Load() {
		m.handoff = false
		return gnet.None
	}
	if rest != 0 || c.OutboundBuffered() > 0 || m.awaitProxy || m.closeReason != closeNone {
		return gnet.None // later: Nudge wakes it again
	}
	fd, err := unix.FcntlInt(uintptr(c.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Warn().Err(err).Str("remote", m.remote).Msg("handover: cannot duplicate a miner socket; it stays")
		return gnet.None
	}
	select {
	case s.ho.out <- HandedOff{State: m.state(), FD: fd}:
	default:
		_ = unix.Close(fd) // the receiver is behind: later
		return gnet.None
	}
	m.handedOff = true
	return gnet.Close // closes this process's descriptor only: the socket lives on in fd
}

// closeHandedOff is OnClose for a miner handed out: the connection is not
// closed for the miner, so nothing is counted as a disconnect, and its
// prefix stays reserved (it may come back, see TakeBack).
func (s *Server) closeHandedOff(m *miner) {
	delete(m.loop.miners, m)
	if m.ip != "" {
		s.releaseIP(m.ip)
	}
	for _, w := range m.workers {
		s.opts.Workers.Forget(w.series)
	}
	s.conns.Add(-1)
	s.met.MinersConnected.Dec()
}

// state snapshots m.
func (m *miner) state() MinerState {
	st := MinerState{
		ID: m.id, Remote: m.remote, IP: m.ip, Connected: m.connected,
		Subscribed: m.subscribed, Authorized: m.authorized, UserAgent: m.userAgent,
		Prefix: m.prefix, En2Size: m.en2Size, En2Sub: m.en2Sub,
		RollingOK: m.rollingOK, MinerMask: m.minerMask, Mask: m.mask,
		VDiff: m.vdiff, Diff: m.diff, MinReq: m.minReq,
		Accepted: m.accepted, Rejected: m.rejected, Lost: m.books.lost,
		RejectedBy: byReason(m.books.rejectedBy), LostBy: byReason(m.books.lostBy),
		DiffSum: m.diffSum, LastShare: m.lastShare,
	}
	if m.lane != nil {
		st.Lane = m.lane.idx
	}
	for _, w := range m.workers {
		st.Workers = append(st.Workers, WorkerState{Name: w.name, Upstream: w.upstream})
	}
	return st
}

// adoption is the gnet context of a connection being enrolled with state.
type adoption struct {
	st       MinerState
	takeBack bool // this process handed it out: prefix still reserved, no job sent
}

// Adopt enrolls a miner socket received from the process handing over
// (fd is owned by Adopt from here on) and resumes the miner with a clean
// job of its lane, at the difficulty and mask it had. Call Prepare first.
func (s *Server) Adopt(st MinerState, fd int) error {
	return s.adoptFD(&adoption{st: st}, fd)
}

// TakeBack re-enrolls a miner this process handed out and the other
// process never resumed. Nothing is sent to it: it still works on the job
// it had from this process.
func (s *Server) TakeBack(h HandedOff) error {
	return s.adoptFD(&adoption{st: h.State, takeBack: true}, h.FD)
}

func (s *Server) adoptFD(ad *adoption, fd int) error {
	f := os.NewFile(uintptr(fd), "miner")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("proxy: adopt miner %s: %w", ad.st.Remote, err)
	}
	defer nc.Close()
	return s.enroll(nc, ad)
}

// enroll adds nc to an event loop (its descriptor is duplicated: the
// caller closes nc) with ad as its context, and waits until OnOpen ran.
func (s *Server) enroll(nc net.Conn, ad *adoption) error {
	select {
	case <-s.started:
	default:
		return errors.New("proxy: not serving")
	}
	ctx := gnet.NewNetConnContext(context.Background(), nc)
	if ad != nil {
		ctx = gnet.NewNetConnContext(gnet.NewContext(context.Background(), ad), nc)
	}
	ch, err := s.eng.Register(ctx)
	if err != nil {
		return err
	}
	if r := <-ch; r.Err != nil {
		return r.Err
	}
	return nil
}

// openAdopted is OnOpen for a miner arriving with state.
func (s *Server) openAdopted(c gnet.Conn, ad *adoption) ([]byte, gnet.Action) {
	st := &ad.st
	lp := s.loopOf(c.EventLoop())
	m := &miner{
		srv: s, c: c, loop: lp, id: st.ID, ip: st.IP, remote: st.Remote, connected: st.Connected,
		scratch:    &lp.scr,
		subscribed: st.Subscribed, authorized: st.Authorized, userAgent: st.UserAgent,
		prefix: st.Prefix, en2Size: st.En2Size, en2Sub: st.En2Sub,
		rollingOK: st.RollingOK, minerMask: st.MinerMask, mask: st.Mask,
		vdiff: st.VDiff, diff: st.Diff, minReq: st.MinReq,
		accepted: st.Accepted, rejected: st.Rejected, diffSum: st.DiffSum, lastShare: st.LastShare,
	}
	m.books.lost = st.Lost
	m.books.rejectedBy = reasonsOf(st.RejectedBy)
	m.books.lostBy = reasonsOf(st.LostBy)
	if st.Subscribed {
		m.lane = s.lane(st.Lane)
		m.en1 = prefixBytes(nil, st.Prefix, s.opts.PrefixBytes)
		if !ad.takeBack {
			m.lane.reserve(st.Prefix)
		}
	}
	for _, w := range st.Workers {
		m.workers = append(m.workers, worker{name: w.Name, upstream: w.Upstream, series: s.opts.Workers.Get(w.Name)})
	}
	if m.ip != "" {
		s.ipMu.Lock()
		s.perIP[m.ip]++
		s.ipMu.Unlock()
	}
	c.SetContext(m)
	lp.miners[m] = struct{}{}
	s.conns.Add(1)
	s.met.MinersConnected.Inc()
	m.vdStart = time.Now()
	m.listener = s.listenerOf(c)
	if m.authorized && len(m.workers) > 0 {
		// The route is matched again: this process's routes may differ.
		r, ok := s.matchRoute(m.listener, m.workers[0].name)
		if !ok {
			r = s.routeList()[0]
		}
		m.route, m.routed = r, true
		r.join()
	}
	if m.route == nil || ad.takeBack || !m.mining() {
		if m.route == nil && m.mining() {
			m.route = s.routeList()[0]
		}
		if ad.takeBack && m.lane != nil {
			m.feed = m.route.pick(m.lane) // its jobs came from this process: the next fan-out reaches it
		}
		return nil, gnet.None
	}
	if up := m.route.upstream(); m.route.perWorker.Load() && up != nil {
		for _, w := range m.workers {
			up.Authorize(m.lane.idx, w.upstream)
		}
	}
	f := m.route.pick(m.lane)
	if f == nil {
		return nil, gnet.None // the lane's first job reaches it by the fan-out
	}
	m.feed = f
	// The first job from this process drops the work of the old one's.
	return m.appendJob(nil, f.cur.Load(), true), gnet.None
}

// reserve marks prefix p in use: a miner arrived with it.
func (l *lane) reserve(p uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse++
	if uint64(p) >= l.next {
		for q := l.next; q < uint64(p); q++ {
			l.free = append(l.free, uint32(q))
		}
		l.next = uint64(p) + 1
		return
	}
	for i, q := range l.free {
		if q == p {
			l.free = append(l.free[:i], l.free[i+1:]...)
			return
		}
	}
	for i, c := range l.cooling {
		if c.prefix == p {
			l.cooling = append(l.cooling[:i], l.cooling[i+1:]...)
			return
		}
	}
}

// reasonsOf reads books keyed by reason name; unknown names are dropped.
func reasonsOf(by map[string]uint64) map[stratum.Reason]uint64 {
	if len(by) == 0 {
		return nil
	}
	out := make(map[stratum.Reason]uint64, len(by))
	for _, r := range stratum.Reasons() {
		if n, ok := by[r.String()]; ok {
			out[r] = n
		}
	}
	return out
}
