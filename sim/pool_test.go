package sim

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"switchyard/stratum"
)

// TestPoolVerdicts drives one connection by hand and checks every answer
// the pool gives a share, then that counters and ledger agree.
func TestPoolVerdicts(t *testing.T) {
	var led syncBuffer
	p := startPool(t, PoolConfig{Extranonce2Size: 4, Ledger: &led, JobInterval: time.Hour})
	c := dial(t, p.Addr())
	c.handshake("w1")
	if len(c.en1) != DefaultExtranonce1Size || c.en2Size != 4 || c.diff != testDiff {
		t.Fatalf("en1 %x en2 size %d diff %g", c.en1, c.en2Size, c.diff)
	}
	job := c.job
	good := []byte{0, 0, 0, 1}
	goodNonce := c.share(good, true)
	low := []byte{0, 0, 0, 2}
	lowNonce := c.share(low, false)

	type want struct {
		code int
		msg  string
	}
	steps := []struct {
		name   string
		submit func(id uint64)
		want   want // code 0: accepted
	}{
		{"accepted", func(id uint64) { c.submit(id, "w1", job.ID, good, job.NTime, goodNonce) }, want{}},
		{"duplicate", func(id uint64) { c.submit(id, "w1", job.ID, good, job.NTime, goodNonce) }, want{22, "Duplicate share"}},
		{"low difficulty", func(id uint64) { c.submit(id, "w1", job.ID, low, job.NTime, lowNonce) }, want{23, "Low difficulty share"}},
		{"unknown job", func(id uint64) { c.submit(id, "w1", "zzz", good, job.NTime, goodNonce) }, want{21, "Job not found"}},
		{"bad extranonce2 size", func(id uint64) { c.submit(id, "w1", job.ID, good[:3], job.NTime, goodNonce) }, want{20, "Invalid extranonce2 size"}},
		{"ntime before job", func(id uint64) { c.submit(id, "w1", job.ID, good, job.NTime-1, goodNonce) }, want{20, "Ntime out of range"}},
		{"unauthorized worker", func(id uint64) { c.submit(id, "w2", job.ID, good, job.NTime, goodNonce) }, want{24, "Unauthorized worker"}},
		{"version bits without rolling", func(id uint64) {
			c.nc.Write(stratum.AppendSubmit(nil, id, "w1", job.ID, good, job.NTime, goodNonce, 0x2000, true))
		}, want{20, "Version bits outside mask"}},
		{"malformed", func(id uint64) {
			c.send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["w1","%s","00000001","zz","00000000"]}`, id, job.ID))
		}, want{20, "Invalid parameters"}},
		{"stale after clean job", func(id uint64) {
			p.PushJob(true)
			c.submit(id, "w1", job.ID, []byte{0, 0, 0, 3}, job.NTime, c.share([]byte{0, 0, 0, 3}, true))
		}, want{21, "Stale job"}},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			id := uint64(10 + i)
			st.submit(id)
			m, line := c.answer(id)
			code, msg := errorOf(&m)
			if code != st.want.code || msg != st.want.msg {
				t.Fatalf("answer %s: want code %d %q", line, st.want.code, st.want.msg)
			}
			if code == 0 && !stratum.IsTrue(m.Result) {
				t.Fatalf("answer %s: want true", line)
			}
		})
	}
	c.call(99, "mining.frobnicate")
	if m, line := c.answer(99); !strings.Contains(line, `[20,"Unknown method"`) || m.Error == nil {
		t.Fatalf("unknown method answered %s", line)
	}

	p.Close()
	s := p.Stats()
	wantRejected := map[string]uint64{"duplicate": 1, "low_difficulty": 1, "unknown_job": 1, "bad_extranonce2": 1,
		"bad_ntime": 1, "not_authorized": 1, "bad_version": 1, "malformed": 1, "stale": 1}
	if s.Submits != 10 || s.Accepted != 1 || fmt.Sprint(s.Rejected) != fmt.Sprint(wantRejected) {
		t.Fatalf("stats %s", s)
	}
	checkPoolLedger(t, led.entries(t), s)
}

// checkPoolLedger checks that ledger lines add up to the pool's counters.
func checkPoolLedger(t *testing.T, es []LedgerEntry, s PoolStats) {
	t.Helper()
	var accepted uint64
	var diff float64
	rejected := map[string]uint64{}
	for _, e := range es {
		switch e.Result {
		case ResultAccepted:
			accepted++
			diff += e.Difficulty
		case ResultRejected:
			rejected[e.Reason]++
		default:
			t.Fatalf("ledger result %q", e.Result)
		}
	}
	if uint64(len(es)) != s.Submits || accepted != s.Accepted || fmt.Sprint(rejected) != fmt.Sprint(s.Rejected) {
		t.Fatalf("ledger: %d lines, %d accepted, rejected %v; stats %s", len(es), accepted, rejected, s)
	}
	if d := diff - s.AcceptedDifficulty; d > 1e-9 || d < -1e-9 {
		t.Fatalf("ledger difficulty %g, stats %g", diff, s.AcceptedDifficulty)
	}
	if s.Submits != s.Accepted+s.RejectedTotal() {
		t.Fatalf("submits %d != accepted %d + rejected %d", s.Submits, s.Accepted, s.RejectedTotal())
	}
}

func TestPoolHandshake(t *testing.T) {
	p := startPool(t, PoolConfig{Users: []string{"good"}, VersionMask: 0x00ffe000, JobInterval: time.Hour})

	t.Run("configure answers the intersection", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.nc.Write(stratum.AppendConfigureRequest(nil, 1, 0x1fffe000))
		m, line := c.answer(1)
		ok, mask, err := stratum.ParseConfigureResult(m.Result)
		if err != nil || !ok || mask != 0x00ffe000 {
			t.Fatalf("configure answer %s", line)
		}
	})
	t.Run("unknown user refused", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.call(1, stratum.MethodSubscribe)
		c.answer(1)
		c.call(2, stratum.MethodAuthorize, "bad", "x")
		if m, line := c.answer(2); m.Error == nil || !strings.Contains(line, "[24,") {
			t.Fatalf("authorize answer %s", line)
		}
		if line, ok := c.read(100 * time.Millisecond); ok {
			t.Fatalf("unauthorized connection got %s", line)
		}
	})
	t.Run("worker of a known account accepted", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.call(1, stratum.MethodSubscribe)
		c.answer(1)
		c.call(2, stratum.MethodAuthorize, "good.rig7", "x")
		if m, line := c.answer(2); m.Error != nil {
			t.Fatalf("authorize answer %s", line)
		}
		c.call(3, stratum.MethodAuthorize, "goodish.rig7", "x")
		if m, line := c.answer(3); m.Error == nil {
			t.Fatalf("authorize answer %s", line)
		}
	})
	t.Run("submit before subscribe", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.call(1, stratum.MethodAuthorize, "good", "x")
		c.answer(1)
		c.submit(2, "good", "1", []byte{1, 2, 3, 4}, 0, 0)
		if _, line := c.answer(2); !strings.Contains(line, "[25,") {
			t.Fatalf("submit answer %s", line)
		}
	})
	t.Run("difficulty before the first job, extranonce1 unique", func(t *testing.T) {
		seen := map[string]bool{}
		for range 3 {
			c := dial(t, p.Addr())
			c.call(1, stratum.MethodSubscribe)
			m, _ := c.answer(1)
			en1, _, _ := stratum.ParseSubscribeResult(m.Result)
			if seen[string(en1)] {
				t.Fatalf("extranonce1 %x twice", en1)
			}
			seen[string(en1)] = true
			c.call(2, stratum.MethodAuthorize, "good", "x")
			c.answer(2)
			if m, line := c.msg(); string(m.Method) != stratum.MethodSetDifficulty {
				t.Fatalf("first line after authorize %s", line)
			}
			if m, line := c.msg(); string(m.Method) != stratum.MethodNotify || !strings.HasSuffix(line, "true]}") {
				t.Fatalf("second line after authorize %s", line)
			}
		}
	})
	t.Run("suggest_difficulty honoured above the floor", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.handshake("good")
		c.call(3, stratum.MethodSuggestDifficulty, 0.5)
		c.answer(3)
		if c.diff != 0.5 {
			t.Fatalf("difficulty %g after suggesting 0.5", c.diff)
		}
		c.call(4, stratum.MethodSuggestDifficulty, testDiff/10)
		c.answer(4)
		if c.diff != testDiff {
			t.Fatalf("difficulty %g after suggesting below the floor", c.diff)
		}
	})
	t.Run("get_version and extranonce.subscribe", func(t *testing.T) {
		c := dial(t, p.Addr())
		c.call(1, stratum.MethodGetVersion)
		if _, line := c.answer(1); !strings.Contains(line, `"stratumsim/1.0"`) {
			t.Fatalf("get_version %s", line)
		}
		c.call(2, stratum.MethodExtranonceSubscribe)
		if m, line := c.answer(2); !stratum.IsTrue(m.Result) {
			t.Fatalf("extranonce.subscribe %s", line)
		}
	})
}

func TestPoolJobs(t *testing.T) {
	p := startPool(t, PoolConfig{JobInterval: 30 * time.Millisecond, CleanEvery: 2, BranchDepth: 5, Extranonce1Size: 4, Extranonce2Size: 8})
	c := dial(t, p.Addr())
	c.handshake("w")
	var cleans, jobs int
	for jobs < 6 {
		m, line := c.msg()
		if string(m.Method) != stratum.MethodNotify {
			continue
		}
		var n stratum.Notify
		if err := n.Decode(m.Params); err != nil {
			t.Fatal(err)
		}
		jobs++
		if n.Clean {
			cleans++
		}
		cb := len(n.Coinb1) + 4 + 8 + len(n.Coinb2)
		if cb < 190 || cb > 250 || len(n.Branch) != 5 || n.Version != 0x20000000 || n.NBits != 0x17034219 {
			t.Fatalf("job shape: coinbase %d bytes, branch %d, version %08x nbits %08x: %.120s",
				cb, len(n.Branch), n.Version, n.NBits, line)
		}
		if d := time.Since(time.Unix(int64(n.NTime), 0)); d < -time.Second || d > 2*time.Second {
			t.Fatalf("ntime %d is %s off", n.NTime, d)
		}
		// The scriptSig starts with a BIP34 height push, and the
		// extranonces are pushed right after it.
		sig := n.Coinb1[42:]
		if sig[0] != 3 || sig[4] != 12 || !bytes.Equal(n.Coinb1[:5], []byte{1, 0, 0, 0, 1}) {
			t.Fatalf("coinb1 %x", n.Coinb1)
		}
	}
	if cleans != 3 {
		t.Fatalf("%d clean jobs of 6, want 3", cleans)
	}
}
