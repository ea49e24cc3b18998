package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/config"
	"switchyard/stratum"
)

func TestPhaseOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	base := creditSnap{at: t0, work: 100, submits: 10, credited: 50, creditedShares: 5, lostShares: 2, lostWork: 20,
		found: 1, reached: 1, duplicates: 1, disconnects: 3}
	for _, tc := range []struct {
		name           string
		end            creditSnap
		work, credited float64
		eff            float64
	}{
		{
			name: "every share credited at the miners' difficulty",
			end:  creditSnap{at: t0.Add(time.Minute), work: 1100, submits: 110, credited: 1050, creditedShares: 105, lostShares: 2, lostWork: 20},
			work: 1000, credited: 1000, eff: 1,
		},
		{
			name: "pool credits a sixteenth (miners at 16x the pool's difficulty)",
			end:  creditSnap{at: t0.Add(time.Minute), work: 1700, submits: 110, credited: 150, creditedShares: 105, lostShares: 2, lostWork: 20},
			work: 1600, credited: 100, eff: 0.0625,
		},
		{
			name: "shares lost in the outage leave the work",
			end:  creditSnap{at: t0.Add(time.Minute), work: 1100, submits: 110, credited: 950, creditedShares: 95, lostShares: 12, lostWork: 120},
			work: 900, credited: 900, eff: 1,
		},
		{
			name: "no work: efficiency 0, not NaN",
			end:  base,
			work: 0, credited: 0, eff: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := phaseOf(base, tc.end)
			if p.Work != tc.work || p.Credited != tc.credited || math.Abs(p.Efficiency-tc.eff) > 1e-12 {
				t.Errorf("work %v credited %v efficiency %v, want %v %v %v", p.Work, p.Credited, p.Efficiency, tc.work, tc.credited, tc.eff)
			}
			if p.MinersWork != tc.end.work-base.work || p.LostShares != tc.end.lostShares-base.lostShares ||
				p.CreditedShares != tc.end.creditedShares-base.creditedShares {
				t.Errorf("deltas: %+v", p)
			}
		})
	}
	p := phaseOf(base, creditSnap{at: t0.Add(90 * time.Second), found: 8, reached: 7, duplicates: 4, disconnects: 3, submits: 10})
	if p.Seconds != 90 || p.BlocksFound != 7 || p.BlocksReached != 6 || p.Duplicates != 3 || p.Disconnects != 0 {
		t.Errorf("counts: %+v", p)
	}
	q := phaseOf(creditSnap{rejectedBy: map[string]uint64{"stale": 2, "duplicate": 1}},
		creditSnap{rejectedBy: map[string]uint64{"stale": 5, "duplicate": 1, "pool_switched": 4}})
	if fmt.Sprint(q.RejectedBy) != "map[pool_switched:4 stale:3]" || q.PoolRejectBy != nil {
		t.Errorf("rejections by reason: %v and %v, want map[pool_switched:4 stale:3] and nil", q.RejectedBy, q.PoolRejectBy)
	}
	if row := p.row(); !strings.Contains(row, "| 7 / 6 |") || strings.Count(row, "|") != strings.Count(strings.SplitN(creditTableHeader, "\n", 2)[0], "|") {
		t.Errorf("row %q does not fit the header", row)
	}
}

func TestEfficiency(t *testing.T) {
	for _, tc := range []struct{ credited, work, want float64 }{
		{1, 1, 1}, {1, 16, 0.0625}, {5, 0, 0}, {5, -1, 0}, {5, math.NaN(), 0}, {5, math.Inf(1), 0},
	} {
		if got := efficiency(tc.credited, tc.work); got != tc.want {
			t.Errorf("efficiency(%v, %v) = %v, want %v", tc.credited, tc.work, got, tc.want)
		}
	}
}

func TestLossMeter(t *testing.T) {
	m := lossMeter{window: 2} // the mean is over the last 2 intervals
	for i, st := range []struct {
		s              lossSample
		lost, lostWork float64
	}{
		{lossSample{submits: 0, work: 0, lost: 3}, 3, 0},        // lost before the first reading: not priced
		{lossSample{submits: 10, work: 100, lost: 3}, 3, 0},     // nothing lost
		{lossSample{submits: 20, work: 300, lost: 5}, 5, 30},    // 2 lost at 300/20 = 15
		{lossSample{submits: 30, work: 600, lost: 5}, 5, 30},    // nothing lost
		{lossSample{submits: 30, work: 600, lost: 7}, 7, 80},    // 2 at (600-100)/(30-10) = 25: the first reading left the window
		{lossSample{submits: 30, work: 600, lost: 8}, 8, 110},   // 1 at (600-300)/10 = 30
		{lossSample{submits: 30, work: 600, lost: 9}, 9, 140},   // no submits in the window: the last mean, 30
		{lossSample{submits: 40, work: 640, lost: 11}, 11, 148}, // 2 at 40/10 = 4
	} {
		m.observe(st.s)
		if m.lost != st.lost || math.Abs(m.lostWork-st.lostWork) > 1e-9 {
			t.Fatalf("reading %d: lost %v priced %v, want %v priced %v", i, m.lost, m.lostWork, st.lost, st.lostWork)
		}
	}
	if len(m.hist) != 3 {
		t.Errorf("kept %d readings, want window+1 = 3", len(m.hist))
	}
}

func TestExtranonceSizes(t *testing.T) {
	for _, tc := range []struct {
		en1, poolEn2     int
		wantEn1, wantMin int
		wantErr          bool
	}{
		{0, 8, 2, 4, false}, // ckpool: the defaults
		{0, 4, 2, 4, false}, // public-pool, miningcore
		{0, 3, 1, 3, false}, // NiceHash
		{0, 2, 0, 0, true},  // no room for 2 bytes of miner extranonce2
		{1, 8, 1, 4, false},
		{3, 8, 3, 5, false},
		{3, 4, 0, 0, true},
	} {
		t.Run(fmt.Sprintf("%d_%d", tc.en1, tc.poolEn2), func(t *testing.T) {
			en1, minPool, err := extranonceSizes(tc.en1, tc.poolEn2)
			if (err != nil) != tc.wantErr || en1 != tc.wantEn1 || minPool != tc.wantMin {
				t.Errorf("extranonceSizes(%d, %d) = %d, %d, %v; want %d, %d, error %v",
					tc.en1, tc.poolEn2, en1, minPool, err, tc.wantEn1, tc.wantMin, tc.wantErr)
			}
		})
	}
}

func TestSwitchyardConfig(t *testing.T) {
	pools := []string{"127.0.0.1:4001", "127.0.0.1:4002"}
	for _, old := range []bool{false, true} {
		text := switchyardConfig("127.0.0.1:3333", "127.0.0.1:9333", pools, 1, 3, old, 1.6e-7, 10*time.Second, 5*time.Second)
		if has := strings.Contains(text, "min_pool_extranonce2_size"); has == old {
			t.Errorf("old config %v: min_pool_extranonce2_size present %v", old, has)
		}
		c, err := config.Parse([]byte(text), "credit.toml")
		if err != nil {
			t.Fatalf("old config %v: %v\n%s", old, err, text)
		}
		if c.Server.Extranonce1Size != 1 || len(c.Pools) != 2 || c.Pools[1].Name != "p1" ||
			c.Difficulty.Initial != 1.6e-7 || c.Difficulty.Min != 1.6e-7 || c.Difficulty.Max != 1.6e-7 ||
			c.Failover.FailbackAfter.Duration() != 10*time.Second || c.Failover.BackoffMax.Duration() != 5*time.Second {
			t.Errorf("old config %v: parsed %+v", old, c)
		}
		if !old && c.Server.MinPoolExtranonce2Size != 3 {
			t.Errorf("min_pool_extranonce2_size = %d, want 3", c.Server.MinPoolExtranonce2Size)
		}
	}
}

func TestCompactTarget(t *testing.T) {
	if got := compactTarget(stratum.NBitsTarget(0x1d00ffff)); got != 0x1d00ffff {
		t.Errorf("compactTarget(difficulty 1) = %08x, want 1d00ffff", got)
	}
	if got := compactTarget(stratum.NBitsTarget(0x17034219)); got != 0x17034219 {
		t.Errorf("compactTarget(a 2024 block's target) = %08x, want 17034219", got)
	}
	for _, d := range []float64{6.4e-7, 1e-9, 1.5, 42, 1e6} {
		nbits := compactTarget(stratum.DifficultyTarget(d))
		if nbits&0x00800000 != 0 {
			t.Errorf("difficulty %g: nBits %08x has the sign bit", d, nbits)
		}
		// The compact target is at most the exact one, and within its
		// 15-16 bits of precision.
		if got := stratum.NBitsDifficulty(nbits); got < d*(1-1e-12) || got > d*(1+1.0/(1<<15)) {
			t.Errorf("difficulty %g: nBits %08x stands for %g", d, nbits, got)
		}
	}
}

func TestLineSplitter(t *testing.T) {
	var got []string
	see := func(b []byte) { got = append(got, string(b)) }
	var s lineSplitter
	for _, chunk := range []string{`{"a":1}`, "\r\n{\"b\"", ":2}\n\n{\"c\":3}\n{\"d\""} {
		s.feed([]byte(chunk), see)
	}
	want := []string{`{"a":1}`, `{"b":2}`, ``, `{"c":3}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	got = nil
	s = lineSplitter{}
	s.feed([]byte(strings.Repeat("x", maxTapLine+1)), see)
	s.feed([]byte("tail of the long line\nnext\n"), see)
	if fmt.Sprint(got) != "[next]" {
		t.Errorf("after an over-long line: %q, want [next]", got)
	}
}

func TestBlockBook(t *testing.T) {
	b := newBlockBook()
	for _, line := range []string{
		`{"job_id":"1","extranonce1":"aa","extranonce2":"0001","ntime":"1","nonce":"5","result":"accepted","block":true}`,
		`{"job_id":"1","extranonce1":"aa","extranonce2":"0001","ntime":"1","nonce":"5","result":"rejected","reason":"duplicate","block":true}`,
		`{"job_id":"1","extranonce1":"aa","extranonce2":"0001","ntime":"1","nonce":"6","result":"accepted"}`,
		`{"job_id":"2","extranonce1":"aa","extranonce2":"0001","ntime":"1","nonce":"5","result":"rejected","reason":"stale","block":true}`,
	} {
		if _, err := b.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.count(); n != 2 {
		t.Errorf("%d distinct block candidates, want 2 (a duplicate counts once, a plain share not at all)", n)
	}
}

// TestTapFindsBlockCandidates feeds one connection's lines through the
// tap as switchyard and a miner would exchange them, with real shares
// ground against a job whose nBits is easy.
func TestTapFindsBlockCandidates(t *testing.T) {
	const mask = 0x1fffe000
	netDiff := 1e-9 // about 4 hashes a block candidate
	nbits := compactTarget(stratum.DifficultyTarget(netDiff))
	n, err := newCreditWork(7, nbits).Job(4, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	job, err := stratum.NewJob(n)
	if err != nil {
		t.Fatal(err)
	}
	en1 := []byte{0x00, 0x2a} // the miner's: switchyard folds the pool's into coinb1
	tap := newBlockTap("")
	c := newTapConn()
	c.fromMiner(tap, []byte(`{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}`))
	c.fromMiner(tap, []byte(`{"id":2,"method":"mining.subscribe","params":["cgminer/4.12.1"]}`))
	c.fromSwitchyard([]byte(`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`))
	c.fromSwitchyard([]byte(`{"id":2,"result":[[["mining.notify","1"]],"002a",2],"error":null}`))
	c.fromSwitchyard(append([]byte(`{"id":null,"method":"mining.notify","params":`), append(notifyParams(n), '}')...))

	// Grind: the first nonces meeting and missing the network target,
	// with version bits rolled inside the mask.
	en2, ntime, bits := []byte{0x01, 0x00}, n.NTime, uint32(0x00002000)
	version, _ := stratum.RollVersion(job.Version, bits, mask)
	target := stratum.NBitsTarget(nbits)
	var hit, miss = -1, -1
	var hdr [80]byte
	for nonce := 0; nonce < 1000 && (hit < 0 || miss < 0); nonce++ {
		job.Header(&hdr, en1, en2, ntime, uint32(nonce), version)
		h := chainhash.DoubleHashH(hdr[:])
		if target.Meets(&h) && hit < 0 {
			hit = nonce
		} else if !target.Meets(&h) && miss < 0 {
			miss = nonce
		}
	}
	if hit < 0 || miss < 0 {
		t.Fatalf("no nonce under 1000 meets / misses difficulty %g", netDiff)
	}
	submit := func(jobID string, nonce int) []byte {
		return fmt.Appendf(nil, `{"id":9,"method":"mining.submit","params":["credit.0","%s","0100","%08x","%08x","%08x"]}`, jobID, ntime, nonce, bits)
	}
	c.fromMiner(tap, submit(n.JobID, hit))
	c.fromMiner(tap, submit(n.JobID, hit)) // the same share again: one candidate
	c.fromMiner(tap, submit(n.JobID, miss))
	c.fromMiner(tap, submit("ffff", hit)) // a job the connection never got
	c.fromSwitchyard([]byte(`{"id":9,"result":true,"error":null}`))
	st := tap.stats()
	if st.submits != 4 || st.found != 1 || st.unmatched != 1 {
		t.Errorf("tap counted %+v, want 4 submits, 1 block candidate, 1 unmatched", st)
	}
}

// notifyParams is n's params array as switchyard sends it.
func notifyParams(n *stratum.Notify) []byte {
	line := n.AppendJSON(nil)
	i := strings.Index(string(line), `"params":`)
	j := strings.LastIndex(string(line), "]")
	return line[i+len(`"params":`) : j+1]
}
