package stratum

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// benchJob is a realistic job: a 250-byte coinbase (coinb1 100 bytes,
// 4-byte extranonce1, 4-byte extranonce2, coinb2 142 bytes: a BIP34 height,
// a pool tag, a payout and a witness commitment output) and a 12-level
// merkle branch (a block of 2049-4096 transactions).
func benchJob() (*Job, Share, CheckParams) {
	n := &Notify{
		JobID:   "bench",
		Coinb1:  make([]byte, 100),
		Coinb2:  make([]byte, 142),
		Branch:  make([][32]byte, 12),
		Version: 0x20000000,
		NBits:   0x17034219,
		NTime:   1732500000,
	}
	fill := func(b []byte, seed byte) {
		for i := range b {
			b[i] = seed + byte(i*7)
		}
	}
	fill(n.PrevHash[:], 1)
	fill(n.Coinb1, 2)
	fill(n.Coinb2, 3)
	for i := range n.Branch {
		fill(n.Branch[i][:], byte(10+i))
	}
	j, err := NewJob(n)
	if err != nil {
		panic(err)
	}
	s := Share{
		Extranonce1: []byte{0xde, 0xad, 0xbe, 0xef},
		Extranonce2: []byte{0, 0, 0, 1},
		NTime:       n.NTime + 30,
		VersionBits: 0x00402000,
		HasVersion:  true,
	}
	// Difficulty 1e-12: every hash meets it, so every share takes the
	// accept path. A refused share costs the same (one compare differs).
	p := CheckParams{Extranonce2Size: 4, VersionMask: 0x1fffe000, Difficulty: 1e-12}
	return j, s, p
}

// BenchmarkValidateShare is one mining.submit through Job.Check: header
// assembly, the coinbase and merkle hashing, the header hash and the
// target compares.
func BenchmarkValidateShare(b *testing.B) {
	j, s, p := benchJob()
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		s.Nonce++
		if err := j.Check(&s, p, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSha256dHeader is the baseline: double SHA-256 of one 80-byte
// header.
func BenchmarkSha256dHeader(b *testing.B) {
	var hdr [80]byte
	for i := range hdr {
		hdr[i] = byte(i)
	}
	var sink chainhash.Hash
	b.ReportAllocs()
	for b.Loop() {
		binary.LittleEndian.PutUint32(hdr[76:], binary.LittleEndian.Uint32(hdr[76:])+1)
		sink = chainhash.DoubleHashH(hdr[:])
	}
	_ = sink
}

// BenchmarkHashWork is the hashing no validator can skip, written as plain
// code over prepared buffers: sha256d of the 250-byte coinbase, 12 merkle
// steps and sha256d of the header. ValidateShare should stay close to it.
func BenchmarkHashWork(b *testing.B) {
	j, s, _ := benchJob()
	coinbase := append(append(append(append([]byte(nil), j.Coinb1...), s.Extranonce1...), s.Extranonce2...), j.Coinb2...)
	var hdr [80]byte
	var pair [64]byte
	var sink [32]byte
	b.ReportAllocs()
	for b.Loop() {
		coinbase[len(j.Coinb1)+len(s.Extranonce1)]++ // a new extranonce2
		first := sha256.Sum256(coinbase)
		root := sha256.Sum256(first[:])
		for i := range j.Branch {
			copy(pair[:32], root[:])
			copy(pair[32:], j.Branch[i][:])
			first = sha256.Sum256(pair[:])
			root = sha256.Sum256(first[:])
		}
		copy(hdr[36:68], root[:])
		first = sha256.Sum256(hdr[:])
		sink = sha256.Sum256(first[:])
	}
	_ = sink
}

func BenchmarkDifficultyTarget(b *testing.B) {
	var sink Target
	d := 65536.5
	b.ReportAllocs()
	for b.Loop() {
		sink = DifficultyTarget(d)
		d++
	}
	_ = sink
}

func BenchmarkDedupSeen(b *testing.B) {
	var d Dedup
	var h chainhash.Hash
	b.ReportAllocs()
	for b.Loop() {
		binary.LittleEndian.PutUint64(h[:], binary.LittleEndian.Uint64(h[:])+0x9e3779b97f4a7c15)
		d.Seen(&h)
	}
}
