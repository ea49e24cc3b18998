package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"switchyard/config"
	"switchyard/proxy"
)

// The handover protocol, over a unix SOCK_SEQPACKET socket (one JSON
// message per packet, descriptors alongside with SCM_RIGHTS):
//
//	new → old  hello    {format, version}
//	old → new  offer    {listeners, lanes, ids, sizes} + the listening
//	           sockets (one per listen address, in the config's order; then HTTP)
//	           (or refuse {reason})
//	new        starts its pool sessions on as many lanes, waits until its
//	           active pool is live and every lane has a job (bounded);
//	           else abort {reason}
//	new → old  ready
//	old → new  miners   {states} + their sockets, in batches; then end {count}
//	new → old  got      {count}: it holds every socket
//	old → new  commit
//	new → old  resumed  {count}: every miner is enrolled and has its job
//	old → new  bye; the old process drains its pool sessions and exits
//
// Until resumed, the old process keeps a duplicate of each socket it sent
// and the miner's state as sent; if the new process goes away or aborts,
// it takes every miner back as it was. A miner handed out and taken back
// saw nothing but a pause: what it sent meanwhile waits in its socket.

// handoverMsg is one packet of the protocol.
type handoverMsg struct {
	Type        string             `json:"type"`
	Format      int                `json:"format,omitempty"`
	Version     string             `json:"version,omitempty"`
	Reason      string             `json:"reason,omitempty"`
	Listen      string             `json:"listen,omitempty"`    // the first listener's bound address
	Listeners   []string           `json:"listeners,omitempty"` // the listen addresses as configured, in order, one socket each
	HTTP        bool               `json:"http,omitempty"`
	HTTPListen  string             `json:"http_listen,omitempty"` // [metrics] listen as configured
	Lanes       int                `json:"lanes,omitempty"`
	JobSeq      uint64             `json:"job_seq,omitempty"`
	MinerSeq    uint64             `json:"miner_seq,omitempty"`
	PrefixBytes int                `json:"prefix_bytes,omitempty"`
	En2Size     int                `json:"en2_size,omitempty"`
	Count       int                `json:"count,omitempty"`
	Miners      []proxy.MinerState `json:"miners,omitempty"`
}

// handoverBatch is how many miners go in one packet (SCM_RIGHTS carries
// at most 253 descriptors).
const handoverBatch = 128

const maxHandoverPacket = 1 << 20

// DefaultHandoverSocket is the handover socket of a config file: next to
// it, named after it.
func DefaultHandoverSocket(configPath string) string { return configPath + ".handover" }

// HandoverOptions tune a takeover.
type HandoverOptions struct {
	// LiveTimeout bounds the wait for the new process's active pool to be
	// live with a job on every lane; past it the old process keeps its
	// miners. Default 30s.
	LiveTimeout time.Duration
	// StallAfterBatches, for fault-injection tests, stops the new process
	// (it logs "takeover stalled") after receiving that many batches.
	StallAfterBatches int
}

func send(c *net.UnixConn, m *handoverMsg, fds ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

func recv(c *net.UnixConn) (*handoverMsg, []int, error) {
	buf := make([]byte, maxHandoverPacket)
	oob := make([]byte, unix.CmsgSpace(4*256))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, errors.New("handover: peer closed")
	}
	var fds []int
	if oobn > 0 {
		cms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, nil, err
		}
		for _, cm := range cms {
			if f, err := unix.ParseUnixRights(&cm); err == nil {
				fds = append(fds, f...)
			}
		}
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	var m handoverMsg
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeFDs(fds)
		return nil, nil, fmt.Errorf("handover: bad message: %w", err)
	}
	return &m, fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// listenHandover listens on path, replacing a stale socket file but never
// one a live process answers on.
func listenHandover(path string) (*net.UnixListener, error) {
	// A process that just handed its miners over closes its listener
	// before it says so; a moment's grace covers one slow to do it.
	for i := 0; ; i++ {
		c, err := net.Dial("unixpacket", path)
		if err != nil {
			break
		}
		_ = c.Close()
		if i == 20 {
			return nil, fmt.Errorf("handover socket %s: another switchyard is listening on it", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("handover socket: %w", err)
	}
	_ = os.Chmod(path, 0o600)
	ln.SetUnlinkOnClose(false) // the next process takes the path over
	return ln, nil
}

// ServeHandover listens on path for a new switchyard process to take the
// miners over. The returned channel is closed once a handover succeeded:
// the caller then stops this App (Stop drains what was forwarded). A
// failed handover is logged and the App serves on with every miner.
func (a *App) ServeHandover(ctx context.Context, path string) (<-chan struct{}, error) {
	ln, err := listenHandover(path)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	log := a.log.With().Str("component", "handover").Logger()
	log.Info().Str("socket", path).Msg("a new process may take the miners over here")
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			// The listener closes before the new process hears "bye", so
			// that it can serve the socket itself for the next upgrade.
			ok := a.handOver(c, log, func() { _ = ln.Close() })
			_ = c.Close()
			if ok {
				_ = ln.Close()
				close(done)
				return
			}
		}
	}()
	return done, nil
}

// handOver runs the old process's side of one handover on c; true when
// the miners are the new process's. closeSocket closes the handover
// socket's listener once the miners are the new process's, before it is
// told so.
func (a *App) handOver(c *net.UnixConn, log zerolog.Logger, closeSocket func()) bool {
	start := time.Now()
	hello, fds, err := recv(c)
	closeFDs(fds)
	if err != nil {
		log.Warn().Err(err).Msg("handover: no hello from the new process")
		return false
	}
	if hello.Type != "hello" || hello.Format != proxy.HandoverFormat {
		reason := fmt.Sprintf("state format %d not known to this version (%s, format %d)", hello.Format, a.version, proxy.HandoverFormat)
		_ = send(c, &handoverMsg{Type: "refuse", Reason: reason})
		log.Warn().Str("reason", reason).Str("new_version", hello.Version).Msg("handover refused: miners stay here")
		return false
	}
	lfs, err := a.Proxy.ListenerFiles()
	if err != nil {
		log.Warn().Err(err).Msg("handover refused: cannot share the miners' listeners")
		return false
	}
	var pass []int
	for _, lf := range lfs {
		defer lf.Close()
		pass = append(pass, int(lf.Fd()))
	}
	var hf *os.File
	if a.httpLn != nil {
		if tl, ok := a.httpLn.(*net.TCPListener); ok {
			if hf, err = tl.File(); err == nil {
				defer hf.Close()
				pass = append(pass, int(hf.Fd()))
			}
		}
	}
	jobSeq, minerSeq := a.Proxy.Seqs()
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	offer := &handoverMsg{Type: "offer", Format: proxy.HandoverFormat, Version: a.version, Listen: a.minerAddr,
		Listeners: cfg.Listeners(), HTTP: hf != nil, HTTPListen: cfg.Metrics.Listen, Lanes: a.Proxy.LaneCount(), JobSeq: jobSeq, MinerSeq: minerSeq,
		PrefixBytes: cfg.Server.Extranonce1Size, En2Size: cfg.Server.MinerExtranonce2Size()}
	if err := send(c, offer, pass...); err != nil {
		log.Warn().Err(err).Msg("handover: offer not sent")
		return false
	}
	log.Info().Str("new_version", hello.Version).Int("miners", a.Proxy.Miners()).Int("lanes", offer.Lanes).
		Msg("handover: listener shared; waiting for the new process's pools")
	m, fds, err := recv(c)
	closeFDs(fds)
	if err != nil || m.Type != "ready" {
		why := "the new process went away"
		if m != nil && m.Reason != "" {
			why = m.Reason
		}
		log.Warn().Err(err).Str("reason", why).Int("miners", a.Proxy.Miners()).Msg("handover aborted before any miner moved: miners stay here")
		return false
	}

	// Move the miners. The reader below watches for the new process going
	// away meanwhile.
	peer := make(chan *handoverMsg, 4)
	go func() {
		defer close(peer)
		for {
			m, fds, err := recv(c)
			closeFDs(fds)
			if err != nil {
				return
			}
			peer <- m
		}
	}()
	moveStart := time.Now()
	out := a.Proxy.HandOff()
	var sent []proxy.HandedOff
	takeBack := func(why string) {
		a.Proxy.CancelHandOff()
		for {
			select {
			case h := <-out:
				sent = append(sent, h)
				continue
			default:
			}
			break
		}
		back, failed := 0, 0
		for _, h := range sent {
			if err := a.Proxy.TakeBack(h); err != nil {
				failed++
				log.Warn().Err(err).Str("remote", h.State.Remote).Msg("handover: miner not taken back")
				continue
			}
			back++
		}
		log.Warn().Str("reason", why).Int("taken_back", back).Int("lost", failed).Int("miners", a.Proxy.Miners()).
			Msg("handover failed: this process keeps its miners")
	}
	batch := make([]proxy.HandedOff, 0, handoverBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		msg := &handoverMsg{Type: "miners"}
		fds := make([]int, len(batch))
		for i, h := range batch {
			msg.Miners = append(msg.Miners, h.State)
			fds[i] = h.FD
		}
		sent = append(sent, batch...)
		batch = batch[:0]
		return send(c, msg, fds...)
	}
	nudge := time.NewTicker(20 * time.Millisecond)
	defer nudge.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for a.Proxy.Miners() > 0 || len(out) > 0 {
		if time.Now().After(deadline) {
			log.Warn().Int("left", a.Proxy.Miners()).Msg("handover: miners that could not leave in time stay until this process stops")
			break
		}
		select {
		case h := <-out:
			if batch = append(batch, h); len(batch) == handoverBatch {
				if err := flush(); err != nil {
					takeBack("send: " + err.Error())
					return false
				}
			}
			continue
		case m, ok := <-peer:
			why := "the new process went away"
			if ok && m.Reason != "" {
				why = m.Reason
			}
			takeBack(why)
			return false
		case <-nudge.C:
			if err := flush(); err != nil {
				takeBack("send: " + err.Error())
				return false
			}
			a.Proxy.Nudge()
		}
	}
	if err := flush(); err != nil {
		takeBack("send: " + err.Error())
		return false
	}
	if err := send(c, &handoverMsg{Type: "end", Count: len(sent)}); err != nil {
		takeBack("send: " + err.Error())
		return false
	}
	expect := "got"
	for expect != "" {
		m, ok := <-peer
		if !ok || m.Type != expect {
			why := "the new process went away"
			if ok {
				why = m.Type + ": " + m.Reason
			}
			takeBack(why)
			return false
		}
		switch expect {
		case "got":
			if m.Count != len(sent) {
				takeBack(fmt.Sprintf("the new process got %d of %d miners", m.Count, len(sent)))
				return false
			}
			if err := send(c, &handoverMsg{Type: "commit"}); err != nil {
				takeBack("send: " + err.Error())
				return false
			}
			expect = "resumed"
		case "resumed":
			expect = ""
		}
	}
	for _, h := range sent {
		_ = unix.Close(h.FD)
	}
	closeSocket()
	_ = send(c, &handoverMsg{Type: "bye"})
	log.Info().Int("moved", len(sent)).Int("left", a.Proxy.Miners()).Float64("moving_s", time.Since(moveStart).Seconds()).
		Float64("elapsed_s", time.Since(start).Seconds()).Msg("handover done: miners are the new process's")
	return true
}

// ErrNoHandover is Takeover's error when no process answers on the
// handover socket: nothing to take over, the caller may start as usual.
// Any other error means a process is there and keeps its miners.
var ErrNoHandover = errors.New("no switchyard answers")

// Takeover starts switchyard from cfg by taking the miners over from the
// process serving the handover socket at path: its listening sockets
// (no connection is refused meanwhile), then, once this process's active
// pool is live, every miner connection with its state. On any failure
// before the miners move it returns an error and the old process keeps
// them; the returned App serves them otherwise.
func Takeover(ctx context.Context, path string, cfg *config.Config, log zerolog.Logger, version string, ho HandoverOptions, opts ...Option) (*App, error) {
	if ho.LiveTimeout <= 0 {
		ho.LiveTimeout = 30 * time.Second
	}
	hlog := log.With().Str("component", "handover").Logger()
	start := time.Now()
	nc, err := net.Dial("unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("takeover: %w on %s: %w", ErrNoHandover, path, err)
	}
	c := nc.(*net.UnixConn)
	defer c.Close()
	if err := send(c, &handoverMsg{Type: "hello", Format: proxy.HandoverFormat, Version: version}); err != nil {
		return nil, fmt.Errorf("takeover: %w", err)
	}
	offer, fds, err := recv(c)
	if err != nil {
		return nil, fmt.Errorf("takeover: no offer: %w", err)
	}
	refuse := func(reason string) error {
		closeFDs(fds)
		_ = send(c, &handoverMsg{Type: "abort", Reason: reason})
		return errors.New("takeover refused: " + reason)
	}
	switch {
	case offer.Type == "refuse":
		closeFDs(fds)
		return nil, errors.New("takeover refused by the old process: " + offer.Reason)
	case offer.Type != "offer" || offer.Format != proxy.HandoverFormat:
		return nil, refuse(fmt.Sprintf("the old process (%s) sends state format %d; this version reads %d", offer.Version, offer.Format, proxy.HandoverFormat))
	case offer.PrefixBytes != cfg.Server.Extranonce1Size || offer.En2Size != cfg.Server.MinerExtranonce2Size():
		return nil, refuse(fmt.Sprintf("server.extranonce1_size or the miners' extranonce2 size differ (old %d/%d, new %d/%d): miners cannot keep their extranonce",
			offer.PrefixBytes, offer.En2Size, cfg.Server.Extranonce1Size, cfg.Server.MinerExtranonce2Size()))
	}
	// An old process that predates several listeners offers one socket
	// and no list: it serves this config's one listener, or none of its.
	want := cfg.Listeners()
	offered := offer.Listeners
	if len(offered) == 0 && len(want) == 1 {
		offered = want
	}
	if !slices.Equal(offered, want) {
		return nil, refuse(fmt.Sprintf("the listen addresses differ (old %v, new %v): a change of listen addresses needs a restart", offered, want))
	}
	nHTTP := 0
	if offer.HTTP {
		nHTTP = 1
	}
	if len(fds) != len(offered)+nHTTP {
		return nil, refuse(fmt.Sprintf("listening sockets missing: got %d, want %d", len(fds), len(offered)+nHTTP))
	}
	var minerLns []*net.TCPListener
	var httpLn net.Listener
	closeLns := func() {
		for _, ln := range minerLns {
			_ = ln.Close()
		}
		if httpLn != nil {
			_ = httpLn.Close()
		}
	}
	for i, fd := range fds {
		ln, err := fileListener(fd)
		if err != nil {
			closeFDs(fds[i+1:])
			closeLns()
			fds = nil
			if i >= len(offered) {
				return nil, refuse("HTTP listener: " + err.Error())
			}
			return nil, refuse("miners' listener " + offered[i] + ": " + err.Error())
		}
		if i < len(offered) {
			minerLns = append(minerLns, ln.(*net.TCPListener))
		} else {
			httpLn = ln
		}
	}
	fds = nil
	if httpLn != nil && offer.HTTPListen != "" && offer.HTTPListen != cfg.Metrics.Listen {
		// [metrics] listen changed: serve the new address, not the old
		// socket (the old process serves it until it exits).
		hlog.Info().Str("old", offer.HTTPListen).Str("new", cfg.Metrics.Listen).Msg("takeover: metrics listen changed; not taking the old HTTP socket")
		_ = httpLn.Close()
		httpLn = nil
	}
	hlog.Info().Str("old_version", offer.Version).Strs("listen", offered).Int("lanes", offer.Lanes).
		Msg("takeover: listeners received; connecting pools")
	a, err := Start(ctx, cfg, log, version, append(opts, withInherited(minerLns, httpLn, offer))...)
	if err != nil {
		closeLns()
		_ = send(c, &handoverMsg{Type: "abort", Reason: "start failed: " + err.Error()})
		return nil, fmt.Errorf("takeover: %w", err)
	}
	fail := func(reason string) (*App, error) {
		_ = send(c, &handoverMsg{Type: "abort", Reason: reason})
		_ = a.Stop()
		return nil, errors.New("takeover aborted: " + reason)
	}
	live := time.Now().Add(ho.LiveTimeout)
	for !(a.allLive() && a.Proxy.LanesReady(max(offer.Lanes, 1))) {
		if time.Now().After(live) {
			return fail(fmt.Sprintf("no live pool with a job on every lane for every route within %s", ho.LiveTimeout))
		}
		time.Sleep(10 * time.Millisecond)
	}
	hlog.Info().Str("pool", a.Pools.Active()).Float64("elapsed_s", time.Since(start).Seconds()).Msg("takeover: pools live; asking for the miners")
	if err := send(c, &handoverMsg{Type: "ready"}); err != nil {
		return fail("send: " + err.Error())
	}
	var held []proxy.HandedOff
	release := func() {
		for _, h := range held {
			_ = unix.Close(h.FD)
		}
	}
	batches := 0
	for {
		m, fds, err := recv(c)
		if err != nil {
			release()
			return fail("the old process went away before the end: " + err.Error())
		}
		if m.Type == "end" {
			closeFDs(fds)
			if m.Count != len(held) {
				release()
				return fail(fmt.Sprintf("got %d of %d miners", len(held), m.Count))
			}
			break
		}
		if m.Type != "miners" || len(fds) != len(m.Miners) {
			closeFDs(fds)
			release()
			return fail(fmt.Sprintf("unexpected %q with %d sockets for %d miners", m.Type, len(fds), len(m.Miners)))
		}
		for i, st := range m.Miners {
			held = append(held, proxy.HandedOff{State: st, FD: fds[i]})
		}
		if batches++; ho.StallAfterBatches > 0 && batches >= ho.StallAfterBatches {
			hlog.Warn().Int("held", len(held)).Msg("takeover stalled")
			select {} // fault injection: the test kills this process here
		}
	}
	if err := send(c, &handoverMsg{Type: "got", Count: len(held)}); err != nil {
		release()
		return fail("send: " + err.Error())
	}
	if m, fds, err := recv(c); err != nil || m.Type != "commit" {
		closeFDs(fds)
		release()
		return fail("no commit from the old process")
	}
	resumeStart := time.Now()
	failed := 0
	for _, h := range held {
		if err := a.Proxy.Adopt(h.State, h.FD); err != nil {
			failed++
			hlog.Warn().Err(err).Str("remote", h.State.Remote).Msg("takeover: miner not resumed")
		}
	}
	a.Proxy.StartAccepting()
	_ = send(c, &handoverMsg{Type: "resumed", Count: len(held) - failed})
	_, fds, _ = recv(c) // bye, or the old process's exit
	closeFDs(fds)
	hlog.Info().Int("resumed", len(held)-failed).Int("failed", failed).Float64("resuming_s", time.Since(resumeStart).Seconds()).
		Float64("elapsed_s", time.Since(start).Seconds()).Msg("takeover done: miners resumed here")
	return a, nil
}

// fileListener makes a listener of a received descriptor (which it owns).
func fileListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		_ = ln.Close()
		return nil, errors.New("not a TCP listener")
	}
	return ln, nil
}

// inherited is what Start takes over from the old process.
type inherited struct {
	miners []*net.TCPListener
	http   net.Listener
	offer  *handoverMsg
}

// withInherited has Start serve received listeners and prepare the lanes
// and ids of the old process.
func withInherited(miners []*net.TCPListener, http net.Listener, offer *handoverMsg) Option {
	return func(o *options) { o.inherit = &inherited{miners: miners, http: http, offer: offer} }
}

// WithHandover makes the App ready to hand its miners to a new process
// (see ServeHandover).
func WithHandover() Option { return func(o *options) { o.handover = true } }

// applyHandover prepares the proxy before Serve (a hook of Start).
func (o *options) applyHandover(a *App) {
	if o.inherit != nil {
		a.Proxy.Inherit(o.inherit.miners...)
		off := o.inherit.offer
		a.Proxy.Prepare(off.Lanes, off.JobSeq, off.MinerSeq)
	} else if o.handover {
		a.Proxy.EnableHandover()
	}
}

// httpListener is the inherited HTTP listener, or a new one on addr.
func (o *options) httpListener(addr string) (net.Listener, error) {
	if o.inherit != nil && o.inherit.http != nil {
		return o.inherit.http, nil
	}
	return net.Listen("tcp", addr)
}
