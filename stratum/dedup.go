package stratum

import (
	"encoding/binary"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DefaultDedupSize is how many shares one Dedup generation holds when
// Dedup.Size is 0. A miner at a 10 s vardiff aim sends about 60 shares per
// block interval, so this only bounds a flood: a full Dedup (two
// generations) takes about 250 KiB.
const DefaultDedupSize = 4096

// Dedup remembers recent shares by header hash to spot duplicates. Two
// submits are the same share exactly when they give the same header (same
// job contents, extranonce1, extranonce2, ntime, nonce and version), so the
// header hash is the key; a pool re-sending identical work under a new job
// id is rightly a duplicate too.
//
// Memory is bounded: shares fill a current generation of at most Size
// entries; when it is full it becomes the previous generation, replacing the
// one before, whose shares are forgotten. So a Dedup remembers at least the
// last Size shares and at most 2·Size. Generations are cleared, not
// reallocated, so a Dedup in steady state does not allocate; Reset after
// an unusual number of shares releases them (see dedupKeep).
//
// The caller keeps one Dedup per miner (or per pool connection), calls Seen
// for shares Check accepted, calls Reset on a clean_jobs notify (older jobs
// are then stale, which the caller checks by job id), and does not share it
// between goroutines. The zero value is ready to use.
type Dedup struct {
	// Size is the most shares one generation holds; 0 means
	// DefaultDedupSize. Set it before the first Seen.
	Size int

	cur, prev map[uint64]struct{}
}

// dedupKey keys a hash by its 8 low-order bytes. They are uniformly random
// whatever the difficulty (the high-order bytes are the leading zeros), so a
// new share is mistaken for one of 2·4096 remembered ones with a chance
// under 1e-15.
func dedupKey(h *chainhash.Hash) uint64 {
	return binary.LittleEndian.Uint64(h[:8])
}

// Seen records h and reports whether it was already recorded (a duplicate).
func (d *Dedup) Seen(h *chainhash.Hash) bool {
	k := dedupKey(h)
	if _, ok := d.cur[k]; ok {
		return true
	}
	if _, ok := d.prev[k]; ok {
		return true
	}
	size := d.Size
	if size <= 0 {
		size = DefaultDedupSize
	}
	if len(d.cur) >= size {
		d.cur, d.prev = d.prev, d.cur
		clear(d.cur)
	}
	if d.cur == nil {
		d.cur = make(map[uint64]struct{})
	}
	d.cur[k] = struct{}{}
	return false
}

// dedupKeep is the most shares a Dedup may have held for Reset to keep its
// memory. A map never shrinks: without this, one burst (hours on one job
// while every pool is down, or a flood) would pin its peak size for the
// miner's whole life.
const dedupKeep = 64

// Reset forgets every share. Call it when a clean_jobs notify makes all
// earlier jobs stale. It keeps the memory for reuse (no allocation in
// steady state) unless more than dedupKeep shares were remembered: then the
// memory goes back to the allocator.
func (d *Dedup) Reset() {
	if d.Len() > dedupKeep {
		d.cur, d.prev = nil, nil
		return
	}
	clear(d.cur)
	clear(d.prev)
}

// Len returns how many shares d remembers.
func (d *Dedup) Len() int {
	return len(d.cur) + len(d.prev)
}
