package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/stratum"
)

func TestParseProfile(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"ckpool", ProfileCkpool, true},
		{" CKPool ", ProfileCkpool, true},
		{"public-pool", ProfilePublicPool, true},
		{"miningcore", ProfileMiningcore, true},
		{"nicehash", ProfileNiceHash, true},
		{"slush", "", false},
	} {
		got, err := ParseProfile(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseProfile(%q) = %q, %v", tc.in, got, err)
		}
	}
	for _, name := range Profiles() {
		if got, err := ParseProfile(name); got != name || err != nil {
			t.Errorf("Profiles() lists %q, ParseProfile says %q, %v", name, got, err)
		}
	}
	if _, err := StartPool(PoolConfig{Profile: "slush"}); err == nil {
		t.Error("StartPool took an unknown profile")
	}
}

// kinds reads n lines and names each: "answer", or the method of a
// notification.
func kinds(t *testing.T, c *client, n int) ([]string, []string) {
	t.Helper()
	var ks, lines []string
	for range n {
		m, line := c.msg()
		k := string(m.Method)
		if m.IsResponse() {
			k = "answer"
		}
		ks, lines = append(ks, k), append(lines, line)
	}
	return ks, lines
}

// TestProfileHandshake pins each profile's handshake order and extranonce
// sizes, and the notify-first order a proxy must also cope with.
func TestProfileHandshake(t *testing.T) {
	const (
		ans  = "answer"
		diff = stratum.MethodSetDifficulty
		job  = stratum.MethodNotify
		msg  = stratum.MethodShowMessage
	)
	for _, tc := range []struct {
		name       string
		cfg        PoolConfig
		en1, en2   int
		afterSub   []string
		afterAuth  []string
		answerLike string // the subscribe answer's envelope, as a regexp
	}{
		{"stratumsim", PoolConfig{}, 4, 8, []string{ans}, []string{ans, diff, job}, `^\{"id":1,"result":\[.*\],"error":null\}$`},
		{ProfileCkpool, PoolConfig{Profile: ProfileCkpool}, 4, 8, []string{ans, diff, job}, []string{msg, ans}, `^\{"result":\[\[\["mining.notify",.*\],"error":null,"id":1\}$`},
		{ProfilePublicPool, PoolConfig{Profile: ProfilePublicPool}, 4, 4, []string{ans}, []string{ans, diff, job}, `^\{"id":1,"error":null,"result":\[.*\]\}$`},
		{ProfileMiningcore, PoolConfig{Profile: ProfileMiningcore}, 4, 4, []string{ans, diff, job}, []string{ans}, `^\{"result":\[.*\],"id":1\}$`},
		{ProfileNiceHash, PoolConfig{Profile: ProfileNiceHash}, 5, 3, []string{ans}, []string{ans, diff, job}, `^\{"id":1,"result":\[.*\],"error":null\}$`},
		{"ckpool notify first", PoolConfig{Profile: ProfileCkpool, Handshake: HandshakeNotifyFirst}, 4, 8, []string{ans, job}, []string{msg, ans, diff}, `"id":1\}$`},
		{"stratumsim after subscribe", PoolConfig{Handshake: HandshakeAfterSubscribe}, 4, 8, []string{ans, diff, job}, []string{ans}, `"error":null\}$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.JobInterval = time.Hour
			p := startPool(t, tc.cfg)
			c := dial(t, p.Addr())
			c.call(1, stratum.MethodSubscribe, "test/1.0")
			got, lines := kinds(t, c, len(tc.afterSub))
			if fmt.Sprint(got) != fmt.Sprint(tc.afterSub) {
				t.Fatalf("after subscribe %v, want %v: %q", got, tc.afterSub, lines)
			}
			if !regexp.MustCompile(tc.answerLike).MatchString(lines[0]) {
				t.Fatalf("subscribe answer %s, want %s", lines[0], tc.answerLike)
			}
			var m stratum.Message
			if err := m.Decode([]byte(lines[0])); err != nil {
				t.Fatal(err)
			}
			en1, en2, err := stratum.ParseSubscribeResult(m.Result)
			if err != nil || len(en1) != tc.en1 || en2 != tc.en2 {
				t.Fatalf("extranonce1 %x, extranonce2 size %d (%v); want %d and %d bytes", en1, en2, err, tc.en1, tc.en2)
			}
			c.call(2, stratum.MethodAuthorize, "w", "x")
			got, lines = kinds(t, c, len(tc.afterAuth))
			if fmt.Sprint(got) != fmt.Sprint(tc.afterAuth) {
				t.Fatalf("after authorize %v, want %v: %q", got, tc.afterAuth, lines)
			}
			for _, l := range lines {
				if strings.Contains(l, `"mining.notify"`) && !strings.HasSuffix(l, "true]}") {
					t.Fatalf("first job not clean: %s", l)
				}
			}
			if line, ok := c.read(50 * time.Millisecond); ok {
				t.Fatalf("unexpected %s", line)
			}
		})
	}
}

// nonceBetween finds a nonce for en2 on c's job whose hash meets difficulty
// lo but not hi (hi 0: no upper bound).
func nonceBetween(t *testing.T, c *client, en2 []byte, lo, hi float64) uint32 {
	t.Helper()
	low, high := stratum.DifficultyTarget(lo), stratum.DifficultyTarget(hi)
	var hdr [80]byte
	c.job.Header(&hdr, c.en1, en2, c.job.NTime, 0, c.job.Version)
	for nonce := uint32(0); nonce < 1<<26; nonce++ {
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		h := chainhash.DoubleHashH(hdr[:])
		if low.Meets(&h) && (hi == 0 || !high.Meets(&h)) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

// submitLine submits a share and returns the raw answer line.
func submitLine(t *testing.T, c *client, id uint64, jobID string, en2 []byte, nonce uint32) string {
	t.Helper()
	c.submit(id, "w", jobID, en2, c.job.NTime, nonce)
	_, line := c.answer(id)
	return line
}

func accepted(line string) bool { return strings.Contains(line, `"result":true`) }

// awaitJob reads until a mining.notify for a job other than old arrives.
func awaitJob(t *testing.T, c *client, old string) {
	t.Helper()
	for c.job.ID == old {
		m, _ := c.msg()
		c.notification(&m)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

// TestProfileCredit changes the pool's difficulty with SetDifficulty and
// checks, per profile, what a share on the job sent before the change is
// judged and credited at, and that the next job is at the new one. Every
// accepted share is credited the pool's difficulty, not its own.
func TestProfileCredit(t *testing.T) {
	const d = testDiff
	type step struct {
		lo, hi float64 // the share's hash difficulty range
		credit float64 // 0: refused
	}
	for _, tc := range []struct {
		name    string
		profile string
		to      float64
		oldJob  []step // shares on the job from before the change
		newJob  []step // shares on a job sent after it
	}{
		// Raised to 4d.
		{"stratumsim up", "", 4 * d, []step{{d, 3 * d, d}}, []step{{d, 3 * d, 0}, {4 * d, 0, 4 * d}}},
		{"ckpool up", ProfileCkpool, 4 * d, []step{{d, 3 * d, d}, {4 * d, 0, d}}, []step{{d, 3 * d, 0}, {4 * d, 0, 4 * d}}},
		{"public-pool up", ProfilePublicPool, 4 * d, []step{{d, 3 * d, 0}, {4 * d, 0, 4 * d}}, []step{{4 * d, 0, 4 * d}}},
		{"miningcore up", ProfileMiningcore, 4 * d, []step{{d, 3 * d, d}, {4 * d, 0, 4 * d}}, []step{{d, 3 * d, d}, {4 * d, 0, 4 * d}}},
		{"nicehash up", ProfileNiceHash, 4 * d, []step{{d, 3 * d, d}, {4 * d, 0, d}}, []step{{d, 3 * d, 0}, {4 * d, 0, 4 * d}}},
		// Lowered to d/4.
		{"stratumsim down", "", d / 4, []step{{d / 4, d, d / 4}, {d, 0, d / 4}}, []step{{d / 4, d, d / 4}}},
		{"ckpool down", ProfileCkpool, d / 4, []step{{d / 4, d, d / 4}, {d, 0, d / 4}}, []step{{d / 4, d, d / 4}}},
		{"public-pool down", ProfilePublicPool, d / 4, []step{{d / 4, d, d / 4}, {d, 0, d / 4}}, []step{{d / 4, d, d / 4}}},
		{"miningcore down", ProfileMiningcore, d / 4, []step{{d / 4, d, d / 4}, {d, 0, d / 4}}, []step{{d / 4, d, d / 4}}},
		{"nicehash down", ProfileNiceHash, d / 4, []step{{d / 4, d, 0}, {d, 0, d}}, []step{{d / 4, d, d / 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var led syncBuffer
			p := startPool(t, PoolConfig{Profile: tc.profile, Vardiff: Vardiff{Off: true}, JobInterval: time.Hour, Ledger: &led})
			c := dial(t, p.Addr())
			c.handshake("w")
			if c.diff != d {
				t.Fatalf("difficulty %g, want %g", c.diff, d)
			}
			old := c.job.ID
			if n, err := p.SetDifficulty(tc.to); n != 1 || err != nil {
				t.Fatalf("SetDifficulty: %d, %v", n, err)
			}
			var id uint64 = 10
			run := func(what string, steps []step) {
				for _, st := range steps {
					id++
					en2 := make([]byte, c.en2Size)
					en2[0], en2[1] = byte(id>>8), byte(id)
					before := p.Stats().AcceptedDifficulty
					line := submitLine(t, c, id, c.job.ID, en2, nonceBetween(t, c, en2, st.lo, st.hi))
					got := p.Stats().AcceptedDifficulty - before
					if accepted(line) != (st.credit > 0) || !near(got, st.credit) {
						t.Errorf("%s: share of difficulty [%g, %g): %s, credited %g; want credited %g", what, st.lo, st.hi, line, got, st.credit)
					}
				}
			}
			if c.job.ID != old {
				t.Fatalf("job %s after the change, want %s", c.job.ID, old)
			}
			run("job before the change", tc.oldJob)
			p.PushJob(false)
			awaitJob(t, c, old)
			if c.diff != tc.to {
				t.Fatalf("miner saw difficulty %g, want %g", c.diff, tc.to)
			}
			run("job after the change", tc.newJob)
			p.Close()
			s := p.Stats()
			var credited float64
			for _, e := range led.entries(t) {
				if e.Result == ResultAccepted && e.Credited != e.Difficulty {
					t.Errorf("ledger line credited %g, held to %g", e.Credited, e.Difficulty)
				}
				credited += e.Credited
			}
			if !near(credited, s.AcceptedDifficulty) || !near(s.CreditedWork, s.AcceptedDifficulty*(1<<32)) {
				t.Errorf("ledger credits %g, stats %g (%g hashes)", credited, s.AcceptedDifficulty, s.CreditedWork)
			}
		})
	}
}

// TestProfileVardiff drives each profile's own vardiff with small
// parameters: fast shares move the connection's difficulty up, with
// mining.set_difficulty (and a job, where the pool sends one).
func TestProfileVardiff(t *testing.T) {
	const d = testDiff
	for _, tc := range []struct {
		profile string
		vd      Vardiff
		shares  int
		job     bool // a job follows the change
	}{
		{ProfileCkpool, Vardiff{Shares: 4, Interval: time.Hour, Target: time.Second, Max: 8 * d}, 4, false},
		{ProfileMiningcore, Vardiff{Interval: time.Nanosecond, Target: 10 * time.Second, Max: 8 * d}, 2, true},
		{ProfilePublicPool, Vardiff{Interval: 300 * time.Millisecond, Min: 1e-12, Max: 8 * d}, 5, true},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := startPool(t, PoolConfig{Profile: tc.profile, Vardiff: tc.vd, JobInterval: time.Hour})
			c := dial(t, p.Addr())
			c.handshake("w")
			for i := range tc.shares {
				en2 := make([]byte, c.en2Size)
				en2[0] = byte(i + 1)
				if line := submitLine(t, c, uint64(10+i), c.job.ID, en2, nonceBetween(t, c, en2, d, 0)); !accepted(line) {
					t.Fatalf("share %d: %s", i, line)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for c.diff == d {
				line, ok := c.read(time.Until(deadline))
				if !ok {
					t.Fatalf("no retarget after %d fast shares", tc.shares)
				}
				var m stratum.Message
				if err := m.Decode([]byte(line)); err != nil {
					t.Fatal(err)
				}
				c.notification(&m)
			}
			if c.diff != 8*d {
				t.Fatalf("retargeted to %g, want the %g cap", c.diff, 8*d)
			}
			line, ok := c.read(100 * time.Millisecond)
			if tc.job != (ok && strings.Contains(line, `"mining.notify"`)) {
				t.Fatalf("after the retarget: %q", line)
			}
			if s := p.Stats(); s.Retargets != 1 {
				t.Fatalf("%d retargets", s.Retargets)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		p := startPool(t, PoolConfig{Profile: ProfileCkpool, Vardiff: Vardiff{Off: true, Shares: 2}, JobInterval: time.Hour})
		c := dial(t, p.Addr())
		c.handshake("w")
		for i := range 4 {
			en2 := make([]byte, c.en2Size)
			en2[0] = byte(i + 1)
			submitLine(t, c, uint64(10+i), c.job.ID, en2, nonceBetween(t, c, en2, d, 0))
		}
		if line, ok := c.read(50 * time.Millisecond); ok || p.Stats().Retargets != 0 {
			t.Fatalf("pinned vardiff moved: %s", line)
		}
	})
}

// TestProfileResendJob: ckpool re-sends the current job with
// clean_jobs=true; it stays the same job, so shares on it are still
// accepted and an earlier share is still a duplicate.
func TestProfileResendJob(t *testing.T) {
	p := startPool(t, PoolConfig{Profile: ProfileCkpool, JobInterval: time.Hour})
	c := dial(t, p.Addr())
	c.handshake("w")
	job := c.job
	en2 := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	nonce := c.share(en2, true)
	if line := submitLine(t, c, 10, job.ID, en2, nonce); !accepted(line) {
		t.Fatalf("first share: %s", line)
	}
	if n := p.ResendJob(); n != 1 {
		t.Fatalf("ResendJob reached %d connections", n)
	}
	m, line := c.msg()
	var n stratum.Notify
	if string(m.Method) != stratum.MethodNotify || n.Decode(m.Params) != nil || n.JobID != job.ID || !n.Clean {
		t.Fatalf("resent job %s, want job %s with clean_jobs=true", line, job.ID)
	}
	en2b := []byte{0, 0, 0, 0, 0, 0, 0, 2}
	if line := submitLine(t, c, 11, job.ID, en2b, c.share(en2b, true)); !accepted(line) {
		t.Fatalf("share after the resend: %s", line)
	}
	if line := submitLine(t, c, 12, job.ID, en2, nonce); !strings.Contains(line, `"reject-reason":"Duplicate"`) {
		t.Fatalf("repeat of the first share: %s", line)
	}
	if s := p.Stats(); s.Accepted != 2 || s.Duplicates != 1 || s.Rejected["duplicate"] != 1 {
		t.Fatalf("stats %s", s)
	}
}

// TestProfileBlocks makes every share of 4× the share difficulty a block
// candidate: counted whether accepted or stale (ckpool submits stale
// solves), or only when accepted (public-pool forgets stale jobs).
func TestProfileBlocks(t *testing.T) {
	const d = testDiff
	for _, tc := range []struct {
		profile            string
		staleAnswer        string
		blocks, blocksStle uint64
	}{
		{ProfileCkpool, `"reject-reason":"Stale"`, 2, 1},
		{ProfileMiningcore, `"result":true`, 2, 1},
		{ProfilePublicPool, `[21,"Job not found",""]`, 1, 0},
		{"", `[21,"Stale job",null]`, 1, 0},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := startPool(t, PoolConfig{Profile: tc.profile, NetworkDifficulty: 4 * d, Vardiff: Vardiff{Off: true}, JobInterval: time.Hour})
			c := dial(t, p.Addr())
			c.handshake("w")
			job := c.job
			en2 := make([]byte, c.en2Size)
			en2[0] = 1
			if line := submitLine(t, c, 10, job.ID, en2, nonceBetween(t, c, en2, d, 4*d)); !accepted(line) {
				t.Fatalf("share: %s", line)
			}
			en2[0] = 2
			if line := submitLine(t, c, 11, job.ID, en2, nonceBetween(t, c, en2, 4*d, 0)); !accepted(line) {
				t.Fatalf("block share: %s", line)
			}
			p.PushJob(true)
			awaitJob(t, c, job.ID)
			c.job = job // mine on the stale job
			en2[0] = 3
			if line := submitLine(t, c, 12, job.ID, en2, nonceBetween(t, c, en2, 4*d, 0)); !strings.Contains(line, tc.staleAnswer) {
				t.Fatalf("block share on a stale job: %s, want %s", line, tc.staleAnswer)
			}
			if s := p.Stats(); s.Blocks != tc.blocks || s.BlocksStale != tc.blocksStle {
				t.Fatalf("blocks %d (stale %d), want %d (%d)", s.Blocks, s.BlocksStale, tc.blocks, tc.blocksStle)
			}
		})
	}
}

// TestProfileRejectShape pins the exact answer to an accepted share, a
// low-difficulty one and one for an unknown job, per profile.
func TestProfileRejectShape(t *testing.T) {
	const d = testDiff
	for _, tc := range []struct {
		profile          string
		ok, low, unknown string // regexps of the whole line
	}{
		{"", `^\{"id":10,"result":true,"error":null\}$`,
			`^\{"id":11,"result":null,"error":\[23,"Low difficulty share",null\]\}$`,
			`^\{"id":12,"result":null,"error":\[21,"Job not found",null\]\}$`},
		{ProfileCkpool, `^\{"result":true,"error":null,"id":10\}$`,
			`^\{"reject-reason":"Above target","result":false,"error":null,"id":11\}$`,
			`^\{"reject-reason":"Invalid JobID","result":false,"error":null,"id":12\}$`},
		{ProfilePublicPool, `^\{"id":10,"error":null,"result":true\}$`,
			`^\{"id":11,"result":null,"error":\[23,"Difficulty too low",""\]\}$`,
			`^\{"id":12,"result":null,"error":\[21,"Job not found",""\]\}$`},
		{ProfileMiningcore, `^\{"result":true,"id":10\}$`,
			`^\{"result":false,"error":\{"code":23,"message":"low difficulty share \([0-9.e-]+\)","data":null\},"id":11\}$`,
			`^\{"result":false,"error":\{"code":21,"message":"job not found","data":null\},"id":12\}$`},
		{ProfileNiceHash, `^\{"id":10,"result":true,"error":null\}$`,
			`^\{"id":11,"result":false,"error":\[1,"Share above target\."\]\}$`,
			`^\{"id":12,"result":false,"error":\[2,"Job not found\."\]\}$`},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := startPool(t, PoolConfig{Profile: tc.profile, Vardiff: Vardiff{Off: true}, JobInterval: time.Hour})
			c := dial(t, p.Addr())
			c.handshake("w")
			en2 := make([]byte, c.en2Size)
			for i, want := range []string{tc.ok, tc.low, tc.unknown} {
				en2[0] = byte(i + 1)
				lo, hi, job := d, 0.0, c.job.ID
				switch i {
				case 1:
					lo, hi = d/1000, 0.9*d // misses d even with miningcore's 1% slack
				case 2:
					job = "ffffff"
				}
				if line := submitLine(t, c, uint64(10+i), job, en2, nonceBetween(t, c, en2, lo, hi)); !regexp.MustCompile(want).MatchString(line) {
					t.Errorf("answer %s, want %s", line, want)
				}
			}
		})
	}
	t.Run("ckpool drops an unauthorised submit unanswered", func(t *testing.T) {
		p := startPool(t, PoolConfig{Profile: ProfileCkpool, JobInterval: time.Hour})
		c := dial(t, p.Addr())
		c.call(1, stratum.MethodSubscribe)
		c.answer(1)
		c.submit(2, "w", "1", []byte{1, 2, 3, 4, 5, 6, 7, 8}, 0, 0)
		for {
			line, ok := c.read(100 * time.Millisecond)
			if !ok {
				break
			}
			if strings.Contains(line, `"id":2`) {
				t.Fatalf("answered %s", line)
			}
		}
		if s := p.Stats(); s.Rejected["not_authorized"] != 1 {
			t.Fatalf("stats %s", s)
		}
	})
	t.Run("public-pool pays for a duplicate", func(t *testing.T) {
		p := startPool(t, PoolConfig{Profile: ProfilePublicPool, Vardiff: Vardiff{Off: true}, JobInterval: time.Hour})
		c := dial(t, p.Addr())
		c.handshake("w")
		en2 := []byte{0, 0, 0, 9}
		nonce := c.share(en2, true)
		for id := uint64(10); id < 12; id++ {
			if line := submitLine(t, c, id, c.job.ID, en2, nonce); !accepted(line) {
				t.Fatalf("answer %s", line)
			}
		}
		if s := p.Stats(); s.Accepted != 2 || s.Duplicates != 1 || !near(s.AcceptedDifficulty, 2*d) {
			t.Fatalf("stats %s", s)
		}
	})
}

// TestProfilePing: pings go to every connection, answers and missing
// answers are counted.
func TestProfilePing(t *testing.T) {
	p := startPool(t, PoolConfig{Profile: ProfileCkpool, PingInterval: 20 * time.Millisecond, JobInterval: time.Hour})
	c := dial(t, p.Addr())
	c.handshake("w")
	// Pings are answered until an answer counts (on a busy machine one can
	// come after the next ping, which makes it a miss), then no more.
	waitFor(t, 5*time.Second, "an answered and a missed ping", func() bool {
		line, ok := c.read(20 * time.Millisecond)
		if ok && strings.Contains(line, `"method":"mining.ping","params":[]`) && p.Stats().PingAnswers == 0 {
			var m stratum.Message
			if err := m.Decode([]byte(line)); err != nil {
				t.Fatal(err)
			}
			c.send(fmt.Sprintf(`{"id":%s,"result":"pong","error":null}`, m.ID))
		}
		s := p.Stats()
		return s.PingAnswers >= 1 && s.PingsMissed >= 1
	})
	if s := p.Stats(); s.Pings < s.PingAnswers+s.PingsMissed {
		t.Fatalf("pings %d, answered %d, missed %d", s.Pings, s.PingAnswers, s.PingsMissed)
	}
}

// TestProfileSetExtranonce: NiceHash sends mining.set_extranonce to every
// connection; ckpool has no such extension and does not answer for it.
func TestProfileSetExtranonce(t *testing.T) {
	t.Run("nicehash unsolicited", func(t *testing.T) {
		p := startPool(t, PoolConfig{Profile: ProfileNiceHash, JobInterval: time.Hour})
		c := dial(t, p.Addr())
		c.handshake("w")
		if n, err := p.SetExtranonce(0); n != 1 || err != nil {
			t.Fatalf("SetExtranonce: %d, %v", n, err)
		}
		m, line := c.msg()
		en1, en2, err := stratum.ParseSetExtranonce(m.Params)
		if string(m.Method) != stratum.MethodSetExtranonce || err != nil || len(en1) != 5 || en2 != 3 || string(en1) == string(c.en1) {
			t.Fatalf("got %s", line)
		}
	})
	t.Run("ckpool none", func(t *testing.T) {
		p := startPool(t, PoolConfig{Profile: ProfileCkpool, JobInterval: time.Hour})
		c := dial(t, p.Addr())
		c.handshake("w")
		c.call(5, stratum.MethodExtranonceSubscribe)
		if n, _ := p.SetExtranonce(0); n != 0 {
			t.Fatalf("SetExtranonce reached %d connections", n)
		}
		for {
			line, ok := c.read(100 * time.Millisecond)
			if !ok {
				break
			}
			if strings.Contains(line, `"id":5`) || strings.Contains(line, stratum.MethodSetExtranonce) {
				t.Fatalf("got %s", line)
			}
		}
	})
}
