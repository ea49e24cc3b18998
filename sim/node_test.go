package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/stratum"
)

// startTestNode starts a regtest btcd for t, or skips t when there is none.
func startTestNode(t *testing.T) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := StartNode(ctx, t.TempDir())
	if errors.Is(err, ErrNoBtcd) {
		t.Skipf("no btcd to judge blocks: %v", err)
	}
	if err != nil {
		t.Fatalf("StartNode: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// primeTestNode mines the node to segwit with mature coinbases and puts
// a few transactions in its mempool.
func primeTestNode(t *testing.T, n *Node, txs int) *Faucet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := n.Prime(ctx)
	if err != nil {
		t.Fatalf("Prime: %v", err)
	}
	for range txs {
		if _, err := f.Send(ctx); err != nil {
			t.Fatalf("Faucet.Send: %v", err)
		}
	}
	return f
}

// feed sends a transaction every interval until stop is closed, at most
// max; done is closed when it returns.
func feed(t *testing.T, f *Faucet, every time.Duration, max int, stop <-chan struct{}) (done <-chan struct{}) {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for range max {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := f.Send(ctx)
			cancel()
			if err != nil {
				t.Errorf("Faucet.Send: %v", err)
				return
			}
		}
	}()
	return ch
}

func TestRegtestAddress(t *testing.T) {
	// BIP173's P2WSH test vector, on testnet's hrp.
	script, _ := hex.DecodeString("00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262")
	if got, want := bech32("tb", 0, script[2:]), "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"; got != want {
		t.Errorf("bech32 = %s, want %s", got, want)
	}
	if a := RegtestAddress(AnyoneCanSpendScript()); len(a) != 64 || a[:5] != "bcrt1" {
		t.Errorf("RegtestAddress(anyone-can-spend) = %q", a)
	}
	if a := RegtestAddress([]byte{0x51}); a != "" {
		t.Errorf("RegtestAddress(OP_TRUE) = %q, want none", a)
	}
}

func TestAppendScriptNum(t *testing.T) {
	// Heights as Bitcoin Core's CScript() << nHeight pushes them (BIP34).
	for _, tc := range []struct {
		v    int64
		want string
	}{
		{0, "00"}, {1, "51"}, {16, "60"}, {17, "0111"}, {127, "017f"}, {128, "028000"},
		{451, "02c301"}, {32767, "02ff7f"}, {32768, "03008000"}, {870001, "0371460d"},
	} {
		if got := hex.EncodeToString(appendScriptNum(nil, tc.v)); got != tc.want {
			t.Errorf("appendScriptNum(%d) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestMerkleBranchBlock100000(t *testing.T) {
	// Mainnet block 100000: four transactions, the first the coinbase.
	ids := []string{
		"8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
		"fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
		"6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
		"e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
	}
	const root = "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
	txs := make([]TemplateTx, len(ids))
	for i, s := range ids {
		h, err := parseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		txs[i].TxID = h
	}
	for _, tc := range []struct {
		name  string
		txs   []TemplateTx
		depth int
	}{
		{"three after the coinbase", txs[1:], 2},
		{"none", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			branch := merkleBranch(tc.txs)
			if len(branch) != tc.depth {
				t.Fatalf("branch of %d hashes, want %d", len(branch), tc.depth)
			}
			hs := make([]chainhash.Hash, len(branch))
			for i := range branch {
				hs[i] = branch[i]
			}
			got := stratum.MerkleRoot(txs[0].TxID, hs)
			want := txs[0].TxID.String()
			if tc.depth > 0 {
				want = root
			}
			if got.String() != want {
				t.Errorf("merkle root %s, want %s", got, want)
			}
		})
	}
}

// TestNodeMinesFleetBlocks: a pool backed by a regtest btcd, a fleet of
// version-rolling miners on it. Every share is a block there, and every
// block candidate is taken by the node: the best chain grows by exactly
// the candidates built on the tip, block for block, and a candidate that
// lost a race with another connection's (same parent) is kept on a side
// chain. Templates carry transactions (merkle branch, witness
// commitment), versions are rolled.
func TestNodeMinesFleetBlocks(t *testing.T) {
	node := startTestNode(t)
	faucet := primeTestNode(t, node, 3)
	ctx := context.Background()
	h0, err := node.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	work, err := NewNodeWork(node, NodeWorkConfig{Tag: "/nodetest/"})
	if err != nil {
		t.Fatal(err)
	}
	defer work.Close()
	pool := startPool(t, PoolConfig{Work: work, Difficulty: testDiff, JobInterval: time.Hour})
	work.Follow(pool, 200*time.Millisecond)

	stop := make(chan struct{})
	fed := feed(t, faucet, 100*time.Millisecond, 100, stop)
	fleet := startFleet(t, FleetConfig{Addr: pool.Addr(), Miners: 3, VersionRolling: true, MaxSharesPerSecond: 1.5})
	const want = 12
	waitFor(t, 15*time.Second, "block candidates", func() bool { return len(work.Records()) >= want })
	close(stop)
	<-fed
	if err := fleet.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	recs := work.Records()
	fs, ps := fleet.Stats(), pool.Stats()
	t.Logf("fleet %s", fs)
	t.Logf("pool %s", ps)
	// Every accepted share is a block at regtest's difficulty; a share on
	// a job gone stale may be offered as well.
	if fs.Accepted != ps.Accepted || uint64(len(recs)) < ps.Accepted {
		t.Errorf("pool accepted %d shares, fleet saw %d accepted, %d block candidates: every accepted share should be one",
			ps.Accepted, fs.Accepted, len(recs))
	}
	checkNodeChain(t, node, h0, recs)
}

// checkNodeChain checks that the node took every candidate, that its best
// chain above h0 is exactly the candidates on it, that every other one is
// stored on a side chain, a sibling of a best-chain candidate (same parent:
// it lost a race), and that the candidates exercised transactions, the
// witness commitment and rolled versions.
func checkNodeChain(t *testing.T, node *Node, h0 int64, recs []BlockRecord) {
	t.Helper()
	ctx := context.Background()
	h1, err := node.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	best := make(map[chainhash.Hash]int64) // best chain above h0: hash → height
	for h := h0 + 1; h <= h1; h++ {
		hash, err := node.GetBlockHash(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		best[hash] = h
	}
	parentAt := make(map[int64]chainhash.Hash) // height → parent of the best-chain candidate there
	onChain := make(map[chainhash.Hash]bool)
	var rolled, withTxs, witness, on int
	for i := range recs {
		r := &recs[i]
		if r.Err != nil {
			t.Errorf("candidate %d (job %s, height %d): %v", i, r.JobID, r.Height, r.Err)
			continue
		}
		if r.Rolled() {
			rolled++
		}
		h, ok := best[r.Hash]
		if !ok {
			continue
		}
		on++
		onChain[r.Hash] = true
		delete(best, r.Hash)
		parentAt[h] = r.PrevHash
		if h != r.Height {
			t.Errorf("candidate %d (%s) built for height %d is at %d", i, r.Hash, r.Height, h)
		}
		if r.Witness {
			witness++
		}
		if r.Txs > 0 {
			withTxs++
			b, err := node.GetBlock(ctx, r.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Tx) != 1+r.Txs || uint32(b.Version) != r.Version {
				t.Errorf("block %s: the node has %d transactions, version %08x; the pool built %d, version %08x",
					r.Hash, len(b.Tx), uint32(b.Version), 1+r.Txs, r.Version)
			}
		}
	}
	if len(best) != 0 {
		t.Errorf("%d blocks on the best chain above %d are not candidates of the pools", len(best), h0)
	}
	if int64(on) != h1-h0 {
		t.Errorf("best chain grew by %d blocks, %d candidates are on it", h1-h0, on)
	}
	side := 0
	for i := range recs {
		r := &recs[i]
		if r.Err != nil || onChain[r.Hash] {
			continue
		}
		side++
		if _, err := node.GetRawBlock(ctx, r.Hash); err != nil {
			t.Errorf("candidate %d (%s) is neither on the best chain nor stored: %v", i, r.Hash, err)
		}
		if p, ok := parentAt[r.Height]; !ok || p != r.PrevHash {
			t.Errorf("candidate %d (%s) off the best chain does not share its parent with the best-chain block at height %d",
				i, r.Hash, r.Height)
		}
	}
	t.Logf("%d candidates: best chain %d → %d, %d on a side chain; %d with transactions, %d with a witness commitment, %d with rolled versions",
		len(recs), h0, h1, side, withTxs, witness, rolled)
	if 2*on < len(recs) {
		t.Errorf("only %d of %d candidates on the best chain: races should be rare", on, len(recs))
	}
	if rolled == 0 || withTxs == 0 || witness == 0 {
		t.Errorf("the blocks did not exercise rolled versions (%d), transactions (%d) and the witness commitment (%d)",
			rolled, withTxs, witness)
	}
}

// TestNodeRefusesCorruptCoinbase: a candidate whose coinbase is not the one
// its header commits to is refused by the node, and the chain does not
// move; the same candidate intact is then taken.
func TestNodeRefusesCorruptCoinbase(t *testing.T) {
	node := startTestNode(t)
	primeTestNode(t, node, 2)
	work, err := NewNodeWork(node, NodeWorkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer work.Close()
	ctx := context.Background()
	const en1Size, en2Size = 4, 8
	n, err := work.Job(en1Size, en2Size, true)
	if err != nil {
		t.Fatal(err)
	}
	job, err := stratum.NewJob(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Branch) == 0 {
		t.Fatal("the template has no transactions")
	}
	en1 := []byte{1, 2, 3, 4}
	en2 := []byte{0, 0, 0, 0, 0, 0, 0, 7}
	good := findBlock(t, job, en1, en2, 0x1fffe000)
	var hdr [80]byte
	job.Header(&hdr, en1, en2, good.NTime, good.Nonce, good.Version)

	h0, err := node.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(c *BlockCandidate)
	}{
		{"extranonce2 of another share", func(c *BlockCandidate) {
			c.Extranonce2 = bytes.Clone(c.Extranonce2)
			c.Extranonce2[0] ^= 1
		}},
		{"a coinbase output byte flipped", func(c *BlockCandidate) {
			j := *c.Job
			j.Coinb2 = bytes.Clone(j.Coinb2)
			j.Coinb2[len(j.Coinb2)-20] ^= 0x80 // inside the last output's script
			c.Job = &j
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.corrupt(&bad)
			// The header the pool hashed stays: only the block's coinbase
			// differs from the one its merkle root commits to.
			before := len(work.Records())
			if work.submit(&bad, &hdr) {
				t.Error("corrupt candidate became the tip")
			}
			recs := work.Records()
			if len(recs) != before+1 {
				t.Fatalf("%d records, want %d", len(recs), before+1)
			}
			var rej *BlockRejectedError
			if !errors.As(recs[before].Err, &rej) {
				t.Fatalf("node's answer %v, want a refusal", recs[before].Err)
			}
			t.Logf("node: %s", rej.Reason)
			if h, _ := node.GetBlockCount(ctx); h != h0 {
				t.Errorf("height %d after a refused block, want %d", h, h0)
			}
		})
	}
	if !work.Block(good) {
		t.Fatalf("intact candidate not the tip: %v", work.Records()[len(work.Records())-1].Err)
	}
	if h, _ := node.GetBlockCount(ctx); h != h0+1 {
		t.Errorf("height %d after the intact block, want %d", h, h0+1)
	}
}

// findBlock grinds nonces (version bits rolled under mask) until job's
// header meets the network target.
func findBlock(t *testing.T, job *stratum.Job, en1, en2 []byte, mask uint32) BlockCandidate {
	t.Helper()
	var res stratum.Result
	for nonce := uint32(0); nonce < 1<<16; nonce++ {
		s := stratum.Share{Extranonce1: en1, Extranonce2: en2, NTime: job.NTime, Nonce: nonce,
			VersionBits: (nonce << 13) & mask, HasVersion: true}
		err := job.Check(&s, stratum.CheckParams{Extranonce2Size: len(en2), VersionMask: mask}, &res)
		if err != nil {
			t.Fatal(err)
		}
		if res.Block && res.Version != job.Version {
			return BlockCandidate{Job: job, Extranonce1: en1, Extranonce2: en2, NTime: s.NTime, Nonce: nonce,
				Version: res.Version, Hash: res.Hash}
		}
	}
	t.Fatal("no block found")
	return BlockCandidate{}
}
