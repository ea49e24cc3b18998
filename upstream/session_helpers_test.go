package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"switchyard/stratum"
)

// waitFor bounds every wait in these tests; it is long so that -race on a
// busy machine does not flake, and never reached when things work.
const waitFor = 5 * time.Second

// slack is subtracted from lower time bounds measured between two Handler
// events: the session starts its clock a moment before the first event is
// recorded.
const slack = 25 * time.Millisecond

// lateOK is how late a timeout may be noticed in tests: a few health ticks,
// plus scheduling on a loaded machine running -race.
const lateOK = 250 * time.Millisecond

// shortTimeout is the SubmitTimeout of tests that wait for it.
const shortTimeout = 300 * time.Millisecond

// ---- a fake pool speaking Stratum lines over real TCP on 127.0.0.1 ----

type fakePool struct {
	t     *testing.T
	ln    net.Listener
	conns chan *poolConn

	mu  sync.Mutex
	all []*poolConn // closed with the pool
}

func newFakePool(t *testing.T) *fakePool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return servePool(t, ln)
}

func newFakeTLSPool(t *testing.T, cert tls.Certificate) *fakePool {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	return servePool(t, ln)
}

func servePool(t *testing.T, ln net.Listener) *fakePool {
	fp := &fakePool{t: t, ln: ln, conns: make(chan *poolConn, 16)}
	t.Cleanup(func() {
		ln.Close()
		fp.mu.Lock()
		defer fp.mu.Unlock()
		for _, pc := range fp.all {
			pc.close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			pc := newPoolConn(t, c)
			fp.mu.Lock()
			fp.all = append(fp.all, pc)
			fp.mu.Unlock()
			fp.conns <- pc
		}
	}()
	return fp
}

func (fp *fakePool) port() int      { return fp.ln.Addr().(*net.TCPAddr).Port }
func (fp *fakePool) url() string    { return "stratum+tcp://" + fp.ln.Addr().String() }
func (fp *fakePool) tlsURL() string { return "stratum+ssl://" + fp.ln.Addr().String() }

// accept returns the next connection from the session.
func (fp *fakePool) accept() *poolConn {
	fp.t.Helper()
	select {
	case pc := <-fp.conns:
		return pc
	case <-time.After(waitFor):
		fp.t.Fatal("fake pool: no connection")
		return nil
	}
}

// noConn checks no connection arrives within d.
func (fp *fakePool) noConn(d time.Duration) {
	fp.t.Helper()
	select {
	case <-fp.conns:
		fp.t.Fatal("fake pool: unexpected connection")
	case <-time.After(d):
	}
}

type req struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	line   string
}

func (r req) param(i int) string {
	if i >= len(r.Params) {
		return ""
	}
	var s string
	if json.Unmarshal(r.Params[i], &s) != nil {
		return string(r.Params[i])
	}
	return s
}

type poolConn struct {
	t      *testing.T
	c      net.Conn
	in     chan req
	closed chan struct{} // the session closed (read side ended)
	once   sync.Once
}

func newPoolConn(t *testing.T, c net.Conn) *poolConn {
	pc := &poolConn{t: t, c: c, in: make(chan req, 4096), closed: make(chan struct{})}
	go func() {
		defer close(pc.closed)
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r req
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r.Method = "<bad json>"
			}
			r.line = sc.Text()
			pc.in <- r
		}
	}()
	return pc
}

func (pc *poolConn) close() { pc.once.Do(func() { pc.c.Close() }) }

// next returns the next request from the session.
func (pc *poolConn) next() req {
	pc.t.Helper()
	select {
	case r := <-pc.in:
		return r
	case <-time.After(waitFor):
		pc.t.Fatal("fake pool: no request")
		return req{}
	}
}

// expect returns the next request and checks its method.
func (pc *poolConn) expect(method string) req {
	pc.t.Helper()
	r := pc.next()
	if r.Method != method {
		pc.t.Fatalf("fake pool: got %s (%s), want %s", r.Method, r.line, method)
	}
	return r
}

// quiet checks the session sends nothing within d.
func (pc *poolConn) quiet(d time.Duration) {
	pc.t.Helper()
	select {
	case r := <-pc.in:
		pc.t.Fatalf("fake pool: unexpected request %s", r.line)
	case <-time.After(d):
	}
}

// waitClosed waits until the session closes the connection.
func (pc *poolConn) waitClosed() {
	pc.t.Helper()
	select {
	case <-pc.closed:
	case <-time.After(waitFor):
		pc.t.Fatal("fake pool: session did not close the connection")
	}
}

// send writes lines; a session that hung up is not an error here (tests
// check states instead).
func (pc *poolConn) send(lines ...string) {
	for _, l := range lines {
		if _, err := pc.c.Write([]byte(l + "\n")); err != nil {
			return
		}
	}
}

func (pc *poolConn) reply(r req, result string) {
	pc.send(fmt.Sprintf(`{"id":%s,"result":%s,"error":null}`, r.ID, result))
}

func (pc *poolConn) replyErr(r req, code int, msg string) {
	pc.send(fmt.Sprintf(`{"id":%s,"result":null,"error":[%d,%q,null]}`, r.ID, code, msg))
}

// hs describes how the fake pool answers the handshake.
type hs struct {
	configure  bool   // the session sends mining.configure first
	mask       string // answer configure with this mask; "" answers an error
	en1        string // default "f000000a"
	en2Size    int    // default 8
	difficulty string // sent before the first notify; default "1024"
	jobID      string // default "j1"
}

// handshake plays the pool's side up to the first job.
func (pc *poolConn) handshake(h hs) {
	pc.t.Helper()
	if h.en1 == "" {
		h.en1 = "f000000a"
	}
	if h.en2Size == 0 {
		h.en2Size = 8
	}
	if h.difficulty == "" {
		h.difficulty = "1024"
	}
	if h.jobID == "" {
		h.jobID = "j1"
	}
	if h.configure {
		r := pc.expect(stratum.MethodConfigure)
		if h.mask != "" {
			pc.reply(r, fmt.Sprintf(`{"version-rolling":true,"version-rolling.mask":%q}`, h.mask))
		} else {
			pc.replyErr(r, 20, "Method not found")
		}
	}
	r := pc.expect(stratum.MethodSubscribe)
	pc.reply(r, subscribeResult(h.en1, h.en2Size))
	r = pc.expect(stratum.MethodAuthorize)
	pc.reply(r, "true")
	pc.send(setDifficulty(h.difficulty), notifyLine(h.jobID, true))
}

func subscribeResult(en1 string, en2Size int) string {
	return fmt.Sprintf(`[[["mining.set_difficulty","s1"],["mining.notify","s1"]],%q,%d]`, en1, en2Size)
}

func setDifficulty(d string) string {
	return `{"id":null,"method":"mining.set_difficulty","params":[` + d + `]}`
}

// notifyLine is a valid mining.notify.
func notifyLine(jobID string, clean bool) string {
	prev := strings.Repeat("00000000", 6) + "a1b2c3d4" + "00000000"
	coinb1 := "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20031c2d0c"
	coinb2 := "ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000"
	branch := strings.Repeat("ab", 32)
	return fmt.Sprintf(`{"id":null,"method":"mining.notify","params":[%q,%q,%q,%q,[%q],"20000000","1703a30c","6543ae11",%v]}`,
		jobID, prev, coinb1, coinb2, branch, clean)
}

// ---- a Handler that records everything ----

type stateEv struct {
	st     State
	reason string
	at     time.Time
}

type recorder struct {
	t       *testing.T
	states  chan stateEv
	jobs    chan *Job
	results chan Verdict

	mu      sync.Mutex
	log     []string // every event in order, for messages
	perTick map[uint64]int
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{
		t:       t,
		states:  make(chan stateEv, 10000),
		jobs:    make(chan *Job, 10000),
		results: make(chan Verdict, 100000),
		perTick: make(map[uint64]int),
	}
}

func (r *recorder) note(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) SessionState(s *Session, st State, why Why) {
	reason := why.String()
	if s.State() != st {
		r.t.Errorf("SessionState(%v) while State() = %v", st, s.State())
	}
	r.note("state %v %q", st, reason)
	select {
	case r.states <- stateEv{st, reason, time.Now()}:
	default:
		r.t.Error("recorder: states full")
	}
}

func (r *recorder) SessionJob(s *Session, j *Job) {
	r.note("job %s", j.Notify.JobID)
	select {
	case r.jobs <- j:
	default:
		r.t.Error("recorder: jobs full")
	}
}

func (r *recorder) SessionVerdict(s *Session, res *Verdict) {
	r.mu.Lock()
	r.perTick[res.Ticket]++
	r.mu.Unlock()
	r.note("result %d %v", res.Ticket, res.Reason)
	select {
	case r.results <- *res:
	default:
		r.t.Error("recorder: results full")
	}
}

func (r *recorder) history() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, "\n")
}

// waitState consumes state events until st arrives, and returns it.
func (r *recorder) waitState(st State) stateEv {
	r.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-r.states:
			if ev.st == st {
				return ev
			}
		case <-deadline:
			r.t.Fatalf("no state %v; history:\n%s", st, r.history())
			return stateEv{}
		}
	}
}

// nextState returns the next state event.
func (r *recorder) nextState() stateEv {
	r.t.Helper()
	select {
	case ev := <-r.states:
		return ev
	case <-time.After(waitFor):
		r.t.Fatalf("no state event; history:\n%s", r.history())
		return stateEv{}
	}
}

func (r *recorder) job() *Job {
	r.t.Helper()
	select {
	case j := <-r.jobs:
		return j
	case <-time.After(waitFor):
		r.t.Fatalf("no job; history:\n%s", r.history())
		return nil
	}
}

func (r *recorder) result() Verdict {
	r.t.Helper()
	select {
	case res := <-r.results:
		return res
	case <-time.After(waitFor):
		r.t.Fatalf("no result; history:\n%s", r.history())
		return Verdict{}
	}
}

// noResult checks no result arrives within d.
func (r *recorder) noResult(d time.Duration) {
	r.t.Helper()
	select {
	case res := <-r.results:
		r.t.Fatalf("unexpected result %+v", res)
	case <-time.After(d):
	}
}

// ---- sessions under test ----

// testOptions has timeouts that a loaded machine never hits; tests of a
// timeout set it short themselves (shortTimeout).
func testOptions(t *testing.T) Options {
	return Options{
		DialTimeout:   5 * time.Second,
		SubmitTimeout: 2 * time.Second,
		JobTimeout:    10 * time.Second,
		BackoffMin:    20 * time.Millisecond,
		BackoffMax:    100 * time.Millisecond,
		UserAgent:     "switchyard/test",
		Log:           zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
	}
}

func testPool(url string) Pool {
	return Pool{Name: "test", URL: url, User: "acct.farm1", Password: "x"}
}

// startSession runs a session until the test ends; stop ends it early and
// waits for Run to return.
func startSession(t *testing.T, p Pool, o Options) (s *Session, rec *recorder, stop func()) {
	t.Helper()
	rec = newRecorder(t)
	s = NewSession(p, 0, o, rec)
	return s, rec, runSession(t, s)
}

// runSession runs s until the test ends or stop is called.
func runSession(t *testing.T, s *Session) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// goLive runs the usual handshake and waits for the live state.
func goLive(t *testing.T, fp *fakePool, rec *recorder, h hs) *poolConn {
	t.Helper()
	pc := fp.accept()
	pc.handshake(h)
	rec.waitState(StateLive)
	return pc
}

func testSubmit(ticket uint64) *Submit {
	sub := &Submit{Ticket: ticket, JobID: "j1", NTime: 0x6543ae11, Nonce: uint32(ticket), Extranonce2Len: 8, Difficulty: 1024}
	sub.Extranonce2[7] = byte(ticket)
	return sub
}

func mustSubmit(t *testing.T, s *Session, sub *Submit) {
	t.Helper()
	if err := s.Submit(sub); err != nil {
		t.Fatalf("Submit(%d): %v", sub.Ticket, err)
	}
}
