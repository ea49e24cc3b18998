package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/sim"
)

// startPrimedNode starts a regtest btcd mined up to segwit with mature
// coinbases, and a Faucet to give its templates transactions; it skips t
// when there is no btcd.
func startPrimedNode(t *testing.T) (*sim.Node, *sim.Faucet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := sim.StartNode(ctx, t.TempDir())
	if errors.Is(err, sim.ErrNoBtcd) {
		t.Skipf("no btcd to judge blocks: %v", err)
	}
	if err != nil {
		t.Fatalf("StartNode: %v", err)
	}
	t.Cleanup(func() { node.Close() })
	faucet, err := node.Prime(ctx)
	if err != nil {
		t.Fatalf("Prime: %v", err)
	}
	return node, faucet
}

// TestNodeBlocksAcrossFailover: two pools backed by one regtest btcd
// (consensus code switchyard did not write), version-rolling miners
// mining through switchyard. At regtest's difficulty every share is a
// block: each is assembled from the pool's job with the extranonce1 and
// extranonce2 switchyard's miners hashed and submitted to the node. The
// primary goes dark, miners move to the backup without disconnecting, and
// the node took every block candidate from either pool: its best chain is
// exactly the candidates, p0's then p1's, rolled versions included.
func TestNodeBlocksAcrossFailover(t *testing.T) {
	node, faucet := startPrimedNode(t)
	ctx := context.Background()
	h0, err := node.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	works := make([]*sim.NodeWork, 2)
	for i := range works {
		w, err := sim.NewNodeWork(node, sim.NodeWorkConfig{Tag: fmt.Sprintf("/switchyard-p%d/", i)})
		if err != nil {
			t.Fatal(err)
		}
		works[i] = w
	}
	r := newRig(t, 2, func(i int, c *sim.PoolConfig) { c.Work = works[i] }, nil)
	for i, w := range works {
		w.Follow(r.pools[i], 200*time.Millisecond)
		t.Cleanup(w.Close)
	}

	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // transactions for the templates: merkle branches, witness commitments
		defer close(fed)
		tk := time.NewTicker(150 * time.Millisecond)
		defer tk.Stop()
		for range 200 {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := faucet.Send(sctx)
			cancel()
			if err != nil {
				t.Errorf("Faucet.Send: %v", err)
				return
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-fed
	}()

	const n, blocks = 4, 6
	fleet := r.startFleet(n, func(c *sim.FleetConfig) { c.MaxSharesPerSecond = 1 })
	waitFor(t, 15*time.Second, fmt.Sprintf("%d blocks from p0", blocks), func() bool { return len(works[0].Records()) >= blocks })
	if got := len(works[1].Records()); got != 0 {
		t.Errorf("p1 had %d block candidates while p0 served the miners", got)
	}

	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", 5*time.Second)
	waitFor(t, 15*time.Second, fmt.Sprintf("%d blocks from p1", blocks), func() bool { return len(works[1].Records()) >= blocks })
	r.checkConnected(fleet, n)
	close(stop)
	<-fed
	r.closeAndAccount(fleet, accountOpts{})

	checkFailoverChain(t, node, h0, [][]sim.BlockRecord{works[0].Records(), works[1].Records()})
	for i, p := range r.pools {
		if ps, recs := p.Stats(), len(works[i].Records()); uint64(recs) < ps.Accepted {
			t.Errorf("p%d accepted %d shares, only %d block candidates: every accepted share should be one", i, ps.Accepted, recs)
		}
	}
}

// checkFailoverChain checks that the node took every candidate of every
// pool, that its best chain above h0 is exactly the candidates on it, the
// blocks of each pool after those of the pools before it, that every
// other candidate is a stored sibling of a best-chain block (a race lost
// at the same height), and that each pool's blocks carried rolled
// versions and transactions.
func checkFailoverChain(t *testing.T, node *sim.Node, h0 int64, perPool [][]sim.BlockRecord) {
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
	parentAt := make(map[int64]chainhash.Hash) // height → parent of the best-chain block there
	onChain := make(map[chainhash.Hash]bool)
	var lastHeight int64 = h0 // highest best-chain block of the pools so far
	total := 0
	for i, recs := range perPool {
		total += len(recs)
		var on, rolled, withTxs, witness int
		first := int64(-1)
		top := lastHeight
		for j := range recs {
			r := &recs[j]
			if r.Err != nil {
				t.Errorf("p%d candidate %d (job %s, height %d): %v", i, j, r.JobID, r.Height, r.Err)
				continue
			}
			h, ok := best[r.Hash]
			if !ok {
				continue
			}
			on++
			onChain[r.Hash] = true
			parentAt[h] = r.PrevHash
			if first < 0 || h < first {
				first = h
			}
			top = max(top, h)
			if r.Rolled() {
				rolled++
			}
			if r.Txs > 0 {
				withTxs++
			}
			if r.Witness {
				witness++
			}
		}
		t.Logf("p%d: %d candidates, %d on the best chain (heights %d…%d): %d with rolled versions, %d with transactions, %d with a witness commitment",
			i, len(recs), on, first, top, rolled, withTxs, witness)
		if on == 0 || rolled == 0 || withTxs == 0 || witness == 0 {
			t.Errorf("p%d: %d blocks on the best chain, %d rolled, %d with transactions, %d with a witness commitment: want some of each",
				i, on, rolled, withTxs, witness)
		}
		if first >= 0 && first <= lastHeight {
			t.Errorf("p%d's first best-chain block is at height %d, not above the previous pool's last (%d)", i, first, lastHeight)
		}
		lastHeight = top
	}
	for hash := range onChain {
		delete(best, hash)
	}
	if len(best) != 0 {
		t.Errorf("%d blocks on the best chain above %d are not candidates of the pools", len(best), h0)
	}
	if int64(len(onChain)) != h1-h0 {
		t.Errorf("best chain grew by %d blocks, %d candidates are on it", h1-h0, len(onChain))
	}
	side := 0
	for i, recs := range perPool {
		for j := range recs {
			r := &recs[j]
			if r.Err != nil || onChain[r.Hash] {
				continue
			}
			side++
			if _, err := node.GetRawBlock(ctx, r.Hash); err != nil {
				t.Errorf("p%d candidate %d (%s) is neither on the best chain nor stored: %v", i, j, r.Hash, err)
			}
			if p, ok := parentAt[r.Height]; !ok || p != r.PrevHash {
				t.Errorf("p%d candidate %d (%s) off the best chain is no sibling of the best-chain block at height %d", i, j, r.Hash, r.Height)
			}
		}
	}
	t.Logf("best chain %d → %d; %d of %d candidates on a side chain", h0, h1, side, total)
	if 2*side > total {
		t.Errorf("%d of %d candidates off the best chain: races should be rare", side, total)
	}
}
