package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/internal/testkit"
	"switchyard/stratum"
)

// testDiff is cheap enough to hash under the race detector: a share takes
// about 2^32·1e-7 ≈ 430 hashes.
const testDiff = 1e-7

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct{ testkit.Buffer }

func (s *syncBuffer) entries(t *testing.T) []LedgerEntry {
	t.Helper()
	es, err := ReadLedger(bytes.NewReader(s.Bytes()))
	if err != nil {
		t.Fatalf("ReadLedger: %v", err)
	}
	return es
}

func startPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	if cfg.Difficulty == 0 {
		cfg.Difficulty = testDiff
	}
	p, err := StartPool(cfg)
	if err != nil {
		t.Fatalf("StartPool: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func startFleet(t *testing.T, cfg FleetConfig) *Fleet {
	t.Helper()
	f, err := StartFleet(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartFleet: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitFor polls cond until it holds, failing after timeout.
var waitFor = testkit.WaitFor

// client is a hand-driven Stratum connection for checking a pool from the
// outside.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader

	en1     []byte
	en2Size int
	diff    float64
	job     *stratum.Job
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) call(id uint64, method string, params ...any) {
	c.t.Helper()
	if _, err := c.nc.Write(stratum.AppendCall(nil, id, method, params...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next line within d; ok is false on timeout, and the
// test fails on any other error.
func (c *client) read(d time.Duration) (line string, ok bool) {
	c.t.Helper()
	line, err := c.readErr(d)
	if err != nil {
		if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
			return "", false
		}
		c.t.Fatalf("read: %v", err)
	}
	return line, true
}

func (c *client) readErr(d time.Duration) (string, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	line, err := c.r.ReadString('\n')
	return strings.TrimSpace(line), err
}

// msg reads and decodes the next line, failing the test when none comes
// within a second.
func (c *client) msg() (stratum.Message, string) {
	c.t.Helper()
	line, ok := c.read(time.Second)
	if !ok {
		c.t.Fatal("no line within 1s")
	}
	var m stratum.Message
	if err := m.Decode([]byte(line)); err != nil {
		c.t.Fatalf("decode %q: %v", line, err)
	}
	return m, line
}

// answer reads lines until the answer to id, handling set_difficulty and
// notify on the way.
func (c *client) answer(id uint64) (stratum.Message, string) {
	c.t.Helper()
	for {
		m, line := c.msg()
		if m.IsResponse() {
			if string(m.ID) != fmt.Sprint(id) {
				c.t.Fatalf("answer %s, want id %d: %s", m.ID, id, line)
			}
			return m, line
		}
		c.notification(&m)
	}
}

func (c *client) notification(m *stratum.Message) {
	c.t.Helper()
	switch string(m.Method) {
	case stratum.MethodSetDifficulty:
		d, err := stratum.ParseDifficulty(m.Params)
		if err != nil {
			c.t.Fatalf("set_difficulty: %v", err)
		}
		c.diff = d
	case stratum.MethodNotify:
		var n stratum.Notify
		if err := n.Decode(m.Params); err != nil {
			c.t.Fatalf("notify: %v", err)
		}
		j, err := stratum.NewJob(&n)
		if err != nil {
			c.t.Fatalf("NewJob: %v", err)
		}
		c.job = j
	}
}

// handshake subscribes and authorizes worker, then waits for the first job.
func (c *client) handshake(worker string) {
	c.t.Helper()
	c.call(1, stratum.MethodSubscribe, "test/1.0")
	m, line := c.answer(1)
	var err error
	if c.en1, c.en2Size, err = stratum.ParseSubscribeResult(m.Result); err != nil {
		c.t.Fatalf("subscribe answer %s: %v", line, err)
	}
	c.call(2, stratum.MethodAuthorize, worker, "x")
	if m, line := c.answer(2); !stratum.IsTrue(m.Result) {
		c.t.Fatalf("authorize: %s", line)
	}
	for c.job == nil {
		m, _ := c.msg()
		c.notification(&m)
	}
}

// share finds a nonce for en2 whose hash meets (or, with meets false, misses)
// the client's difficulty.
func (c *client) share(en2 []byte, meets bool) uint32 {
	c.t.Helper()
	target := stratum.DifficultyTarget(c.diff)
	var hdr [80]byte
	c.job.Header(&hdr, c.en1, en2, c.job.NTime, 0, c.job.Version)
	for nonce := uint32(0); nonce < 1<<24; nonce++ {
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		h := chainhash.DoubleHashH(hdr[:])
		if target.Meets(&h) == meets {
			return nonce
		}
	}
	c.t.Fatal("no nonce found")
	return 0
}

func (c *client) submit(id uint64, worker, jobID string, en2 []byte, ntime, nonce uint32) {
	c.t.Helper()
	if _, err := c.nc.Write(stratum.AppendSubmit(nil, id, worker, jobID, en2, ntime, nonce, 0, false)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// errorOf returns an answer's error code and message (0 and "" for none).
func errorOf(m *stratum.Message) (int, string) { return stratum.ErrorParam(m.Error) }
