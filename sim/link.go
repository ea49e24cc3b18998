package sim

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A Link is a user-space TCP relay that behaves like a long or poor
// network path between a client (switchyard) and a server (a simulated
// pool): every byte is delayed by a latency with jitter, a bandwidth cap
// paces each direction, the path can stall (nothing delivered for a while,
// then everything queued, as TCP's retransmissions deliver after a loss),
// and it can go silent (a blackhole: nothing passes, connections stay
// open, optionally closed after a while). Both sides keep talking to
// their own kernel, which acknowledges at once: what the link models is
// the path, not TCP's timers (a real cut in a network namespace tests
// those, see app/netns_test.go). It also counts the bytes that cross it
// each way, for what a metered uplink would bill.
//
// Toxiproxy offers the same toxics (latency with jitter, bandwidth,
// timeout, slicer); this relay is a few hundred lines without
// dependencies, it stalls and silences on a call from the test, and it
// keeps the order of bytes under jitter the way one TCP stream does.
type Link struct {
	cfg LinkConfig
	ln  net.Listener

	mu       sync.Mutex
	latency  time.Duration
	jitter   time.Duration
	bps      int       // bytes per second each way; 0: no cap
	stallTo  time.Time // nothing is delivered before this
	silent   bool
	silentAt time.Time
	closeAt  time.Duration // silent: close connections after this; 0: never
	rng      *rand.Rand
	conns    map[*linkConn]struct{}
	wake     chan struct{} // closed and replaced when the settings change

	up, down atomic.Uint64 // bytes delivered client → server, server → client
	accepted atomic.Uint64
	stalls   atomic.Uint64

	done chan struct{}
	wg   sync.WaitGroup
}

// LinkConfig sets up a Link.
type LinkConfig struct {
	// Target is the server's host:port.
	Target string
	// Listen is where clients connect; "" is 127.0.0.1 on a free port.
	Listen string
	// Latency is the one-way delay of every byte, each direction; Jitter
	// adds a uniform random delay in [-Jitter, +Jitter] (never below 0),
	// with the order of bytes kept.
	Latency, Jitter time.Duration
	// BytesPerSecond caps each direction of each connection; 0: no cap.
	BytesPerSecond int
	// StallEvery and StallFor, when both are set, stall the link for
	// StallFor every StallEvery (the first after StallEvery).
	StallEvery, StallFor time.Duration
	// Seed makes the jitter repeatable; 0 picks 1.
	Seed uint64
}

// LinkStats counts what crossed a Link.
type LinkStats struct {
	BytesUp   uint64 // client → server
	BytesDown uint64 // server → client
	Conns     uint64 // connections accepted
	Stalls    uint64 // stalls begun (Stall and StallEvery)
}

// StartLink listens and relays every connection to cfg.Target.
func StartLink(cfg LinkConfig) (*Link, error) {
	if cfg.Target == "" {
		return nil, errors.New("sim: link: no target")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	l := &Link{
		cfg: cfg, ln: ln,
		latency: cfg.Latency, jitter: cfg.Jitter, bps: cfg.BytesPerSecond,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		conns: map[*linkConn]struct{}{},
		wake:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	l.wg.Add(1)
	go l.accept()
	if cfg.StallEvery > 0 && cfg.StallFor > 0 {
		l.wg.Add(1)
		go l.stallLoop(cfg.StallEvery, cfg.StallFor)
	}
	return l, nil
}

// Addr is the address clients dial.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{BytesUp: l.up.Load(), BytesDown: l.down.Load(), Conns: l.accepted.Load(), Stalls: l.stalls.Load()}
}

// SetLatency changes the one-way latency and jitter for bytes read from
// now on.
func (l *Link) SetLatency(latency, jitter time.Duration) {
	l.mu.Lock()
	l.latency, l.jitter = latency, jitter
	l.mu.Unlock()
}

// SetBandwidth changes the cap of each direction; 0 removes it.
func (l *Link) SetBandwidth(bytesPerSecond int) {
	l.mu.Lock()
	l.bps = bytesPerSecond
	l.mu.Unlock()
}

// Stall delivers nothing, either way, for d from now; what is sent
// meanwhile is delivered after it, in order, as after a loss that TCP
// repaired.
func (l *Link) Stall(d time.Duration) {
	l.mu.Lock()
	if to := time.Now().Add(d); to.After(l.stallTo) {
		l.stallTo = to
	}
	l.notifyLocked()
	l.mu.Unlock()
	l.stalls.Add(1)
}

// Silence makes the link a blackhole: nothing is delivered either way and
// new connections are accepted but never reach the server. With
// closeAfter > 0 every connection is closed once the link has been silent
// that long (as a middlebox that times flows out); 0 keeps them open.
func (l *Link) Silence(closeAfter time.Duration) {
	l.mu.Lock()
	l.silent, l.silentAt, l.closeAt = true, time.Now(), closeAfter
	l.notifyLocked()
	l.mu.Unlock()
	if closeAfter > 0 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			t := time.NewTimer(closeAfter)
			defer t.Stop()
			select {
			case <-l.done:
			case <-t.C:
				l.mu.Lock()
				still := l.silent && time.Since(l.silentAt) >= closeAfter
				var cs []*linkConn
				if still {
					for c := range l.conns {
						cs = append(cs, c)
					}
				}
				l.mu.Unlock()
				for _, c := range cs {
					c.close()
				}
			}
		}()
	}
}

// Restore ends a silence; what was sent meanwhile is delivered.
func (l *Link) Restore() {
	l.mu.Lock()
	l.silent = false
	l.notifyLocked()
	l.mu.Unlock()
}

// Close stops the link and closes every connection through it.
func (l *Link) Close() error {
	select {
	case <-l.done:
		return nil
	default:
	}
	close(l.done)
	err := l.ln.Close()
	l.mu.Lock()
	var cs []*linkConn
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
	l.wg.Wait()
	return err
}

// notifyLocked wakes writers waiting on the settings. l.mu is held.
func (l *Link) notifyLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *Link) stallLoop(every, d time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.Stall(d)
		}
	}
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.accepted.Add(1)
		lc := &linkConn{l: l, client: c, closed: make(chan struct{})}
		l.mu.Lock()
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go lc.run()
	}
}

// linkConn is one relayed connection.
type linkConn struct {
	l      *Link
	client net.Conn
	server net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *linkConn) close() {
	c.once.Do(func() {
		close(c.closed)
		_ = c.client.Close()
		if c.server != nil {
			_ = c.server.Close()
		}
	})
}

func (c *linkConn) run() {
	defer c.l.wg.Done()
	defer func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	}()
	// While silent, the server is not even dialled: a blackhole answers
	// no SYN. The client's connect already succeeded (the relay accepted
	// it), as it does through a NAT whose far side is dark.
	if !c.waitPath(time.Time{}) {
		c.close()
		return
	}
	s, err := net.DialTimeout("tcp", c.l.cfg.Target, 5*time.Second)
	if err != nil {
		c.close()
		return
	}
	c.server = s
	select {
	case <-c.closed: // closed while dialling
		_ = s.Close()
		return
	default:
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(c.client, s, &c.l.up) }()
	go func() { defer wg.Done(); c.pipe(s, c.client, &c.l.down) }()
	wg.Wait()
	c.close()
}

// chunk is bytes read at one time, due at at.
type chunk struct {
	b  []byte
	at time.Time
}

// pipe relays src to dst: a reader stamps each read with its delivery
// time (never before the previous one's: one stream keeps its order), a
// writer delivers it then, after any stall or silence, at the capped rate.
// The queue holds 256 reads; beyond that the reader waits, and the sender
// with it, as a full TCP window makes it.
func (c *linkConn) pipe(src, dst net.Conn, count *atomic.Uint64) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, 16<<10)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now().Add(c.l.delay())
				if at.Before(last) {
					at = last
				}
				last = at
				select {
				case q <- chunk{b: buf[:n], at: at}:
				case <-c.closed:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if !c.waitPath(ch.at) {
			return
		}
		b := ch.b
		for len(b) > 0 {
			n := len(b)
			if bps := c.l.rate(); bps > 0 {
				n = min(n, max(bps/100, 1)) // 10 ms slices
				if !c.sleep(time.Duration(float64(n) / float64(bps) * float64(time.Second))) {
					return
				}
				if !c.waitPath(time.Time{}) { // a stall may begin mid-chunk
					return
				}
			}
			w, err := dst.Write(b[:n])
			count.Add(uint64(w))
			if err != nil {
				return
			}
			b = b[n:]
		}
	}
	// The source ended: pass the end on once everything before it is out.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

// delay is one read's one-way delay.
func (l *Link) delay() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.latency
	if l.jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(2*l.jitter)+1)) - l.jitter
	}
	return max(d, 0)
}

func (l *Link) rate() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bps
}

// waitPath waits until due (zero: now) has passed and the path is open
// (no stall, not silent); false when the connection closed first.
func (c *linkConn) waitPath(due time.Time) bool {
	for {
		c.l.mu.Lock()
		wake := c.l.wake
		until := due
		if c.l.stallTo.After(until) {
			until = c.l.stallTo
		}
		silent := c.l.silent
		c.l.mu.Unlock()
		d := time.Until(until)
		if !silent && d <= 0 {
			return true
		}
		var t *time.Timer
		var tc <-chan time.Time
		if !silent {
			t = time.NewTimer(d)
			tc = t.C
		}
		ok := true
		select {
		case <-c.closed:
			ok = false
		case <-c.l.done:
			ok = false
		case <-wake:
		case <-tc:
		}
		if t != nil {
			t.Stop()
		}
		if !ok {
			return false
		}
	}
}

func (c *linkConn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.closed:
		return false
	case <-t.C:
		return true
	}
}
