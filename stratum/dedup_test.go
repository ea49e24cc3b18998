package stratum

import (
	"encoding/binary"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// nthHash returns a distinct share-like hash: random-looking low bytes,
// zero high bytes.
func nthHash(i int) chainhash.Hash {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	h := chainhash.HashH(b[:])
	for j := 24; j < 32; j++ {
		h[j] = 0
	}
	return h
}

func TestDedup(t *testing.T) {
	t.Run("zero value: first seen, then duplicate", func(t *testing.T) {
		var d Dedup
		h := nthHash(1)
		if d.Seen(&h) {
			t.Fatal("first share reported as duplicate")
		}
		if !d.Seen(&h) {
			t.Fatal("second submit of the same share not a duplicate")
		}
		if d.Len() != 1 {
			t.Fatalf("Len = %d, want 1", d.Len())
		}
	})
	t.Run("different shares are not duplicates", func(t *testing.T) {
		var d Dedup
		for i := 0; i < 1000; i++ {
			h := nthHash(i)
			if d.Seen(&h) {
				t.Fatalf("share %d reported as duplicate", i)
			}
		}
	})
	t.Run("same header from a real share is a duplicate", func(t *testing.T) {
		job, s, p := realShare(t)
		var d Dedup
		var r Result
		for i, want := range []bool{false, true, true} {
			if err := job.Check(&s, p, &r); err != nil {
				t.Fatal(err)
			}
			if got := d.Seen(&r.Hash); got != want {
				t.Fatalf("submit %d: Seen = %v, want %v", i+1, got, want)
			}
		}
		s.Nonce++ // another share of the same job
		if err := job.Check(&s, CheckParams{Extranonce2Size: p.Extranonce2Size, VersionMask: p.VersionMask}, &r); err != nil {
			t.Fatal(err)
		}
		if d.Seen(&r.Hash) {
			t.Fatal("a different nonce reported as duplicate")
		}
	})
	t.Run("Reset forgets", func(t *testing.T) {
		var d Dedup
		h := nthHash(7)
		d.Seen(&h)
		d.Reset()
		if d.Len() != 0 || d.Seen(&h) {
			t.Fatal("share remembered after Reset")
		}
	})
	t.Run("Reset after a burst releases the memory", func(t *testing.T) {
		var d Dedup
		for i := 0; i <= dedupKeep; i++ {
			h := nthHash(i)
			d.Seen(&h)
		}
		d.Reset()
		if d.cur != nil || d.prev != nil {
			t.Fatal("maps kept after a burst")
		}
		h := nthHash(0)
		if d.Seen(&h) || !d.Seen(&h) {
			t.Fatal("Dedup unusable after releasing its memory")
		}
	})
	t.Run("Reset in steady state does not allocate", func(t *testing.T) {
		var d Dedup
		hashes := make([]chainhash.Hash, dedupKeep)
		for k := range hashes {
			hashes[k] = nthHash(k)
		}
		fill := func() {
			for k := range hashes {
				d.Seen(&hashes[k])
			}
			d.Reset()
		}
		fill()
		if allocs := testing.AllocsPerRun(20, fill); allocs != 0 {
			t.Fatalf("a block's worth of shares and Reset allocate %v times", allocs)
		}
	})
	t.Run("bounded: two generations", func(t *testing.T) {
		d := Dedup{Size: 4}
		for i := 0; i < 8; i++ { // generation A: 0-3, generation B: 4-7
			h := nthHash(i)
			d.Seen(&h)
		}
		for i := 0; i < 8; i++ {
			if h := nthHash(i); !d.Seen(&h) {
				t.Fatalf("share %d of the last 2·Size forgotten", i)
			}
		}
		h := nthHash(8) // generation C starts, A is dropped
		if d.Seen(&h) {
			t.Fatal("new share reported as duplicate")
		}
		if d.Len() > 2*d.Size {
			t.Fatalf("Len = %d, above 2·Size", d.Len())
		}
		for i := 0; i < 4; i++ {
			if h := nthHash(i); d.Seen(&h) {
				t.Fatalf("share %d of the oldest generation still remembered", i)
			}
		}
	})
	t.Run("default size bounds memory", func(t *testing.T) {
		var d Dedup
		for i := 0; i < 5*DefaultDedupSize; i++ {
			h := nthHash(i)
			d.Seen(&h)
			if d.Len() > 2*DefaultDedupSize {
				t.Fatalf("Len = %d after %d shares", d.Len(), i+1)
			}
		}
		if d.Len() < DefaultDedupSize {
			t.Fatalf("Len = %d, want at least the last %d", d.Len(), DefaultDedupSize)
		}
	})
	t.Run("steady state does not allocate", func(t *testing.T) {
		d := Dedup{Size: 256}
		i := 0
		for ; i < 4*256; i++ { // warm both generations up
			h := nthHash(i)
			d.Seen(&h)
		}
		hashes := make([]chainhash.Hash, 4096)
		for k := range hashes {
			hashes[k] = nthHash(i + k)
		}
		k := 0
		allocs := testing.AllocsPerRun(len(hashes)-1, func() {
			d.Seen(&hashes[k])
			k++
		})
		if allocs != 0 {
			t.Fatalf("Seen allocates %v times per share", allocs)
		}
	})
}
