package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
	"switchyard/internal/testkit"
	"switchyard/sim"
	"switchyard/stratum"
)

// testDiff makes a share cost about 430 hashes: cheap under -race, yet a
// random nonce still fails it 99.8% of the time.
const testDiff = 1e-7

// syncBuf is a goroutine-safe buffer for ledgers.
type syncBuf struct{ testkit.Buffer }

func (s *syncBuf) entries(t *testing.T) []sim.LedgerEntry {
	es, err := sim.ReadLedger(bytes.NewReader(s.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// rig is switchyard running between simulated pools on loopback.
type rig struct {
	t       *testing.T
	pools   []*sim.Pool
	ledgers []*syncBuf
	cfg     *config.Config
	app     *app.App
}

// newRig starts n simulated pools ("p0" best) and switchyard in front of
// them. poolCfg and mutate may adjust the pools' and switchyard's config.
func newRig(t *testing.T, n int, poolCfg func(i int, c *sim.PoolConfig), mutate func(c *config.Config)) *rig {
	t.Helper()
	return newRigOpts(t, n, poolCfg, mutate)
}

// newRigOpts is newRig with options for app.Start.
func newRigOpts(t *testing.T, n int, poolCfg func(i int, c *sim.PoolConfig), mutate func(c *config.Config), opts ...app.Option) *rig {
	t.Helper()
	r := &rig{t: t}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	for i := 0; i < n; i++ {
		lb := &syncBuf{}
		pc := sim.PoolConfig{
			Difficulty:      testDiff,
			Extranonce1Size: 4,
			Extranonce2Size: 4,
			JobInterval:     time.Hour, // tests push jobs themselves
			Ledger:          lb,
			Log:             log,
		}
		if poolCfg != nil {
			poolCfg(i, &pc)
		}
		p, err := sim.StartPool(pc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		r.pools = append(r.pools, p)
		r.ledgers = append(r.ledgers, lb)
	}
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Extranonce1Size = 1
	cfg.Server.MaxSubmitsPerSecond = 0
	cfg.Server.EventLoops = 2
	cfg.Difficulty.Initial, cfg.Difficulty.Min, cfg.Difficulty.Max = testDiff, testDiff, testDiff
	cfg.Failover.DialTimeout = config.Duration(time.Second)
	cfg.Failover.SubmitTimeout = config.Duration(time.Second)
	cfg.Failover.FailbackAfter = config.Duration(2 * time.Second)
	cfg.Failover.BackoffMin = config.Duration(100 * time.Millisecond)
	cfg.Failover.BackoffMax = config.Duration(500 * time.Millisecond)
	cfg.Failover.Standby = n - 1
	cfg.Metrics.Listen = "127.0.0.1:0"
	for i, p := range r.pools {
		cfg.Pools = append(cfg.Pools, config.Pool{Index: i, Name: fmt.Sprintf("p%d", i),
			URL: "stratum+tcp://" + p.Addr(), User: fmt.Sprintf("acct%d.farm", i), Password: "x"})
	}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r.cfg = cfg
	r.app = startApp(t, cfg, opts...)
	for _, p := range cfg.Pools { // the best ranked of the rig's own pools
		if strings.HasPrefix(p.Name, "p") && len(p.Name) <= 3 {
			r.waitActive(p.Name, 10*time.Second)
			break
		}
	}
	return r
}

// startApp starts switchyard from cfg, stopped when the test ends.
func startApp(t *testing.T, cfg *config.Config, opts ...app.Option) *app.App {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	a, err := app.Start(context.Background(), cfg, log, "test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return a
}

// waitActive waits until miners are served by pool name.
func (r *rig) waitActive(name string, within time.Duration) {
	r.t.Helper()
	waitFor(r.t, within, "active pool "+name, func() bool { return r.app.Pools.Active() == name })
}

// waitDeadline waits until every session of pool name holds shares to a
// learned deadline of at most d. A test that makes a pool late by less
// than submit_timeout waits for this first: a busy machine's slow answers
// can hold the deadline above the spell, and then nothing is late.
func (r *rig) waitDeadline(name string, d time.Duration) {
	r.t.Helper()
	want := float64(d) / float64(time.Millisecond)
	waitFor(r.t, 20*time.Second, fmt.Sprintf("%s's submit deadline at most %v", name, d), func() bool {
		for _, p := range r.app.Pools.Status() {
			if p.Name == name {
				return p.Sessions > 0 && p.SubmitDeadlineMS > 0 && p.SubmitDeadlineMS <= want
			}
		}
		return false
	})
}

// counter reads a switchyard counter by metric name and labels.
func (r *rig) counter(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.app.Registry.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

var _ = testutil.ToFloat64 // keep the dependency for helpers in other files

// waitFor polls cond until it holds, failing after within.
var waitFor = testkit.WaitFor

// client is a hand-driven miner, and a hostile one: raw Stratum lines over
// TCP.
type client struct {
	t    *testing.T
	conn net.Conn
	rd   *bufio.Reader
	id   int

	en1     []byte
	en2Size int
	mask    uint32
	diff    float64
	jobs    []*stratum.Notify // in arrival order
	masks   []uint32          // mining.set_version_mask, in arrival order
	pending []string          // notifications seen while waiting for an answer
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, conn: c, rd: bufio.NewReaderSize(c, 64<<10)}
}

// send writes a raw line.
func (c *client) send(line string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.conn.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

// readLine reads one line within d.
func (c *client) readLine(d time.Duration) (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	s, err := c.rd.ReadString('\n')
	return strings.TrimSpace(s), err
}

// call sends a request with the next id and returns the answer, recording
// notifications (difficulty, jobs) that arrive meanwhile.
func (c *client) call(method, params string) *stratum.Message {
	c.t.Helper()
	c.id++
	c.send(fmt.Sprintf(`{"id":%d,"method":%q,"params":%s}`, c.id, method, params))
	return c.answer(c.id)
}

// answer reads until the answer to id arrives.
func (c *client) answer(id int) *stratum.Message {
	c.t.Helper()
	for {
		line, err := c.readLine(5 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for answer %d: %v", id, err)
		}
		m := &stratum.Message{}
		if err := m.Decode([]byte(line)); err != nil {
			c.t.Fatalf("bad line %q: %v", line, err)
		}
		if m.IsResponse() && string(m.ID) == fmt.Sprint(id) {
			return m
		}
		c.note(m)
	}
}

// note records a notification.
func (c *client) note(m *stratum.Message) {
	switch string(m.Method) {
	case stratum.MethodSetDifficulty:
		d, err := stratum.ParseDifficulty(m.Params)
		if err != nil {
			c.t.Fatalf("bad set_difficulty: %v", err)
		}
		c.diff = d
	case stratum.MethodNotify:
		n := &stratum.Notify{}
		if err := n.Decode(m.Params); err != nil {
			c.t.Fatalf("bad notify: %v", err)
		}
		c.jobs = append(c.jobs, n)
	case stratum.MethodSetVersionMask:
		mask, err := stratum.ParseVersionMask(m.Params)
		if err != nil {
			c.t.Fatalf("bad set_version_mask: %v", err)
		}
		c.masks = append(c.masks, mask)
	case stratum.MethodSetExtranonce:
		en1, size, err := stratum.ParseSetExtranonce(m.Params)
		if err != nil {
			c.t.Fatal(err)
		}
		c.en1, c.en2Size = en1, size
	}
	c.pending = append(c.pending, string(m.Method))
}

// waitJobs reads notifications until n jobs have arrived.
func (c *client) waitJobs(n int) *stratum.Notify {
	c.t.Helper()
	for len(c.jobs) < n {
		line, err := c.readLine(5 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for job %d: %v", n, err)
		}
		m := &stratum.Message{}
		if err := m.Decode([]byte(line)); err != nil {
			c.t.Fatalf("bad line %q: %v", line, err)
		}
		c.note(m)
	}
	return c.jobs[len(c.jobs)-1]
}

// handshake subscribes, negotiates version rolling and authorizes.
func (c *client) handshake(worker string) {
	c.t.Helper()
	m := c.call(stratum.MethodSubscribe, `["test/1.0"]`)
	var err error
	if c.en1, c.en2Size, err = stratum.ParseSubscribeResult(m.Result); err != nil {
		c.t.Fatalf("subscribe answer %s: %v", m.Result, err)
	}
	m = c.call(stratum.MethodConfigure, `[["version-rolling"],{"version-rolling.mask":"ffffffff"}]`)
	rolling, mask, err := stratum.ParseConfigureResult(m.Result)
	if err != nil || !rolling {
		c.t.Fatalf("configure answer %s: %v", m.Result, err)
	}
	c.mask = mask
	m = c.call(stratum.MethodAuthorize, fmt.Sprintf(`[%q,"x"]`, worker))
	if !stratum.IsTrue(m.Result) {
		c.t.Fatalf("authorize answer %s %s", m.Result, m.Error)
	}
}

// share is a submit the client can send.
type share struct {
	jobID      string
	en2        []byte
	ntime      uint32
	nonce      uint32
	version    uint32
	hasVersion bool
}

func (s share) params(worker string) string {
	p := fmt.Sprintf(`[%q,%q,%q,"%08x","%08x"`, worker, s.jobID, hex.EncodeToString(s.en2), s.ntime, s.nonce)
	if s.hasVersion {
		p += fmt.Sprintf(`,"%08x"`, s.version)
	}
	return p + "]"
}

// grind finds a share for n meeting the client's difficulty, starting the
// nonce search at from; bits are the rolled version bits to use.
func (c *client) grind(n *stratum.Notify, en2 []byte, bits uint32, from uint32) share {
	c.t.Helper()
	job, err := stratum.NewJob(n)
	if err != nil {
		c.t.Fatal(err)
	}
	var res stratum.Result
	for nonce := from; nonce < from+1<<24; nonce++ {
		sh := stratum.Share{Extranonce1: c.en1, Extranonce2: en2, NTime: n.NTime, Nonce: nonce, VersionBits: bits, HasVersion: true}
		if job.Check(&sh, stratum.CheckParams{Extranonce2Size: c.en2Size, VersionMask: c.mask, Difficulty: c.diff}, &res) == nil {
			return share{jobID: n.JobID, en2: en2, ntime: n.NTime, nonce: nonce, version: bits, hasVersion: true}
		}
	}
	c.t.Fatal("no share found")
	return share{}
}

// submit sends a share and returns the error code of the answer (0: accepted).
func (c *client) submit(worker string, s share) int {
	c.t.Helper()
	m := c.call(stratum.MethodSubmit, s.params(worker))
	if stratum.IsTrue(m.Result) {
		return 0
	}
	code, _ := stratum.ErrorParam(m.Error)
	if code == 0 {
		c.t.Fatalf("submit answered %s / %s", m.Result, m.Error)
	}
	return code
}

// The raw side of client, for hostile traffic: bytes in, messages out.

func (rc *client) write(b []byte) error {
	_ = rc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.conn.Write(b)
	return err
}

// msg reads the next line as a message.
func (rc *client) msg() *stratum.Message {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := rc.rd.ReadBytes('\n')
	if err != nil {
		rc.t.Fatalf("reading an answer: %v", err)
	}
	m := &stratum.Message{}
	if err := m.Decode(bytes.TrimSpace(line)); err != nil {
		rc.t.Fatalf("proxy sent an undecodable line %q: %v", line, err)
	}
	return m
}

// closedByPeer reads until the proxy closes the connection, skipping what
// it sent first; false when it stays open for within.
func (rc *client) closedByPeer(within time.Duration) bool {
	_ = rc.conn.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, rc.rd)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// sentinel sends a request the proxy always answers with success and reads
// up to its answer, returning the answers that came before it: proof that
// the connection is still usable and that everything before was handled.
func (rc *client) sentinel() []*stratum.Message {
	rc.t.Helper()
	if err := rc.write([]byte(`{"id":"sentinel","method":"mining.extranonce.subscribe","params":[]}` + "\n")); err != nil {
		rc.t.Fatal(err)
	}
	var before []*stratum.Message
	for i := 0; i < 10000; i++ {
		m := rc.msg()
		if m.IsResponse() && string(m.ID) == `"sentinel"` {
			if !stratum.IsTrue(m.Result) {
				rc.t.Fatalf("sentinel answered %s %s", m.Result, m.Error)
			}
			return before
		}
		before = append(before, m)
	}
	rc.t.Fatal("no answer to the sentinel")
	return nil
}
