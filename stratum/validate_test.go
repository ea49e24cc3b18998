package stratum

import (
	"errors"
	"math"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

func TestRollVersion(t *testing.T) {
	const mask = 0x1fffe000
	tests := []struct {
		name            string
		job, bits, mask uint32
		want            uint32
		wantErr         bool
	}{
		{"no bits", 0x20000000, 0, mask, 0x20000000, false},
		{"all mask bits", 0x20000000, mask, mask, 0x3fffe000, false},
		{"some bits", 0x20000000, 0x00400000, mask, 0x20400000, false},
		{"bits replace job bits under mask", 0x20002000, 0x00004000, mask, 0x20004000, false},
		{"job bits outside mask kept", 0x20000004, 0x1fffe000, mask, 0x3fffe004, false},
		{"bit above mask", 0x20000000, 0x20000000, mask, 0, true},
		{"full version sent as bits", 0x20000000, 0x20400000, mask, 0, true},
		{"bit below mask", 0x20000000, 0x00001000, mask, 0, true},
		{"mask 0, bits 0", 0x20000000, 0, 0, 0x20000000, false},
		{"mask 0, any bit", 0x20000000, 0x00002000, 0, 0, true},
		{"whatsminer-style wide mask", 0x20000000, 0xdeadbeef, 0xffffffff, 0xdeadbeef, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RollVersion(tt.job, tt.bits, tt.mask)
			if tt.wantErr {
				var re *RejectError
				if !errors.As(err, &re) || re.Reason != ReasonBadVersion || !errors.Is(err, ErrBadVersion) {
					t.Fatalf("RollVersion(%08x, %08x, %08x) error %v, want bad_version", tt.job, tt.bits, tt.mask, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RollVersion(%08x, %08x, %08x) = %08x, %v; want %08x", tt.job, tt.bits, tt.mask, got, err, tt.want)
			}
		})
	}
}

// realShare returns the job and winning share of block 670718 (version
// 0x3fffe000 rolled from 0x20000000, 8-byte extranonce2).
func realShare(t testing.TB) (*Job, Share, CheckParams) {
	t.Helper()
	for _, f := range loadBlockFixtures(t) {
		if f.Height == 670718 {
			return f.job(t), f.share, f.params
		}
	}
	t.Fatal("block670718.json missing")
	return nil, Share{}, CheckParams{}
}

func TestCheck(t *testing.T) {
	job, good, base := realShare(t)
	base.Difficulty = 1e-12 // every hash meets it: only the rule under test can refuse
	tests := []struct {
		name      string
		share     func(s *Share)
		params    func(p *CheckParams)
		job       func(j *Job)
		want      error // nil: accepted
		wantBlock bool
		hashed    bool // r filled
	}{
		{name: "real block share", want: nil, wantBlock: true, hashed: true},
		{name: "nil share", share: nil, want: errNilShare},

		{name: "bad_extranonce2: short", share: func(s *Share) { s.Extranonce2 = s.Extranonce2[:7] }, want: ErrBadExtranonce2},
		{name: "bad_extranonce2: long", share: func(s *Share) { s.Extranonce2 = append(s.Extranonce2[:8:8], 0) }, want: ErrBadExtranonce2},
		{name: "bad_extranonce2: empty", share: func(s *Share) { s.Extranonce2 = nil }, want: ErrBadExtranonce2},
		{name: "bad_extranonce2: size mismatch", params: func(p *CheckParams) { p.Extranonce2Size = 4 }, want: ErrBadExtranonce2},
		{name: "bad_extranonce2 checked before ntime", share: func(s *Share) { s.Extranonce2 = nil; s.NTime = 0 }, want: ErrBadExtranonce2},

		{name: "bad_ntime: before job", share: func(s *Share) { s.NTime = job.NTime - 1 }, want: ErrBadNTime},
		{name: "bad_ntime: zero", share: func(s *Share) { s.NTime = 0 }, want: ErrBadNTime},
		{name: "bad_ntime: past default window", share: func(s *Share) { s.NTime = job.NTime + DefaultNTimeMaxAhead + 1 }, want: ErrBadNTime},
		{name: "ntime at default window edge", share: func(s *Share) { s.NTime = job.NTime + DefaultNTimeMaxAhead }, hashed: true},
		{name: "bad_ntime: past custom window", share: func(s *Share) { s.NTime = job.NTime + 61 }, params: func(p *CheckParams) { p.NTimeMaxAhead = 60 }, want: ErrBadNTime},
		{name: "ntime at custom window edge", share: func(s *Share) { s.NTime = job.NTime + 60 }, params: func(p *CheckParams) { p.NTimeMaxAhead = 60 }, hashed: true},
		{name: "ntime window does not wrap at 2^32", job: func(j *Job) { j.NTime = math.MaxUint32 - 10 }, share: func(s *Share) { s.NTime = math.MaxUint32 }, hashed: true},
		{name: "bad_ntime: wrapped past 2^32", job: func(j *Job) { j.NTime = math.MaxUint32 - 10 }, share: func(s *Share) { s.NTime = 5 }, want: ErrBadNTime},
		{name: "bad_ntime checked before version", share: func(s *Share) { s.NTime = 0; s.VersionBits = 1 }, want: ErrBadNTime},

		{name: "bad_version: bit outside mask", share: func(s *Share) { s.VersionBits |= 0x40000000 }, want: ErrBadVersion},
		{name: "bad_version: mask 0", params: func(p *CheckParams) { p.VersionMask = 0 }, want: ErrBadVersion},
		{name: "mask 0 with zero bits", share: func(s *Share) { s.VersionBits = 0 }, params: func(p *CheckParams) { p.VersionMask = 0 }, hashed: true},
		{name: "no version param: job version", share: func(s *Share) { s.HasVersion = false; s.VersionBits = 0xffffffff }, hashed: true},

		{name: "low_difficulty", params: func(p *CheckParams) { p.Difficulty = 1e30 }, want: ErrLowDifficulty, wantBlock: true, hashed: true},
		{name: "low_difficulty, not a block", share: func(s *Share) { s.Nonce++ }, params: func(p *CheckParams) { p.Difficulty = 1e30 }, want: ErrLowDifficulty, hashed: true},
		{name: "zero difficulty accepts any hash", share: func(s *Share) { s.Nonce++ }, params: func(p *CheckParams) { p.Difficulty = 0 }, hashed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := *job
			if tt.job != nil {
				tt.job(&j)
			}
			s := good
			s.Extranonce2 = append([]byte(nil), good.Extranonce2...)
			sp := &s
			if tt.name == "nil share" {
				sp = nil
			} else if tt.share != nil {
				tt.share(sp)
			}
			p := base
			if tt.params != nil {
				tt.params(&p)
			}
			r := Result{Hash: chainhash.Hash{1}, Difficulty: 5, Block: true, Version: 7} // stale values must go
			err := j.Check(sp, p, &r)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v, want accepted", err)
				}
			} else {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Check: %v, want %v", err, tt.want)
				}
				var re *RejectError
				if !errors.As(err, &re) || re.Reason != tt.want.(*RejectError).Reason {
					t.Fatalf("Check: %v is not a *RejectError with reason %v", err, tt.want)
				}
			}
			if r.Block != tt.wantBlock {
				t.Fatalf("Block = %v, want %v", r.Block, tt.wantBlock)
			}
			if !tt.hashed {
				if r != (Result{}) {
					t.Fatalf("refused before hashing, but r = %+v", r)
				}
				return
			}
			var hdr [80]byte
			j.Header(&hdr, s.Extranonce1, s.Extranonce2, s.NTime, s.Nonce, r.Version)
			if h := chainhash.DoubleHashH(hdr[:]); h != r.Hash || r.Difficulty != HashDifficulty(&h) {
				t.Fatalf("r = %+v, header hashes to %s", r, h)
			}
			wantVersion := j.Version
			if s.HasVersion {
				wantVersion = j.Version&^p.VersionMask | s.VersionBits
			}
			if r.Version != wantVersion {
				t.Fatalf("r.Version = %08x, want %08x", r.Version, wantVersion)
			}
		})
	}
}

// TestCheckDifficultyBoundary puts the miner's difficulty just below and
// just above the difficulty of a real share.
func TestCheckDifficultyBoundary(t *testing.T) {
	job, s, p := realShare(t)
	var r Result
	if err := job.Check(&s, p, &r); err != nil {
		t.Fatal(err)
	}
	d := r.Difficulty
	for _, tt := range []struct {
		name string
		d    float64
		want error
	}{
		{"just below", d * (1 - 1e-9), nil},
		{"just above", d * (1 + 1e-9), ErrLowDifficulty},
		{"network difficulty", NBitsDifficulty(job.NBits), nil},
		{"below one", 0.001, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.Difficulty = tt.d
			if err := job.Check(&s, p, &r); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("difficulty %g (share %g): %v, want %v", tt.d, d, err, tt.want)
			}
		})
	}
}

func TestCheckAllocs(t *testing.T) {
	job, s, p := realShare(t)
	var r Result
	for _, tt := range []struct {
		name string
		p    CheckParams
		s    Share
	}{
		{"accepted", p, s},
		{"low_difficulty", CheckParams{Extranonce2Size: p.Extranonce2Size, VersionMask: p.VersionMask, Difficulty: 1e30}, s},
		{"bad_version", CheckParams{Extranonce2Size: p.Extranonce2Size}, s},
	} {
		t.Run(tt.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(200, func() {
				tt.s.Nonce++
				_ = job.Check(&tt.s, tt.p, &r)
			})
			if allocs != 0 {
				t.Fatalf("Check allocates %v times per share", allocs)
			}
		})
	}
}

// FuzzCheck checks arbitrary shares against the real-block jobs: no panic,
// and the verdict agrees with the share's hash.
func FuzzCheck(f *testing.F) {
	fixtures := loadBlockFixtures(f)
	for i, bf := range fixtures {
		s := bf.share
		f.Add(uint8(i), s.Extranonce1, s.Extranonce2, s.NTime, s.Nonce, s.VersionBits, s.HasVersion,
			bf.params.VersionMask, uint8(bf.params.Extranonce2Size), 1.0, uint32(0))
		f.Add(uint8(i), s.Extranonce1, s.Extranonce2, s.NTime+1, s.Nonce, s.VersionBits, s.HasVersion,
			bf.params.VersionMask, uint8(bf.params.Extranonce2Size), 0.001, uint32(0))
	}
	jobs := make([]*Job, len(fixtures))
	for i, bf := range fixtures {
		jobs[i] = bf.job(f)
	}
	f.Fuzz(func(t *testing.T, which uint8, en1, en2 []byte, ntime, nonce, bits uint32, hasVersion bool,
		mask uint32, en2Size uint8, diff float64, ahead uint32) {
		j := jobs[int(which)%len(jobs)]
		s := Share{Extranonce1: en1, Extranonce2: en2, NTime: ntime, Nonce: nonce, VersionBits: bits, HasVersion: hasVersion}
		p := CheckParams{Extranonce2Size: int(en2Size), VersionMask: mask, Difficulty: diff, NTimeMaxAhead: ahead}
		var r Result
		err := j.Check(&s, p, &r)

		if ahead == 0 {
			ahead = DefaultNTimeMaxAhead
		}
		switch {
		case len(en2) != int(en2Size):
			if !errors.Is(err, ErrBadExtranonce2) {
				t.Fatalf("extranonce2 of %d bytes, size %d: %v", len(en2), en2Size, err)
			}
			return
		case ntime < j.NTime || uint64(ntime) > uint64(j.NTime)+uint64(ahead):
			if !errors.Is(err, ErrBadNTime) {
				t.Fatalf("ntime %d, job %d, ahead %d: %v", ntime, j.NTime, ahead, err)
			}
			return
		case hasVersion && bits&^mask != 0:
			if !errors.Is(err, ErrBadVersion) {
				t.Fatalf("bits %08x, mask %08x: %v", bits, mask, err)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrLowDifficulty) {
			t.Fatalf("unexpected error %v", err)
		}
		var hdr [80]byte
		j.Header(&hdr, en1, en2, ntime, nonce, r.Version)
		if h := chainhash.DoubleHashH(hdr[:]); h != r.Hash {
			t.Fatalf("r.Hash %s, header hashes to %s", r.Hash, h)
		}
		if r.Block != NBitsTarget(j.NBits).Meets(&r.Hash) {
			t.Fatalf("Block = %v for %s under nBits %08x", r.Block, r.Hash, j.NBits)
		}
		if meets := DifficultyTarget(diff).Meets(&r.Hash); meets != (err == nil) {
			t.Fatalf("hash %s meets difficulty %g: %v, but Check says %v", r.Hash, diff, meets, err)
		}
		// The float difficulty agrees with the integer verdict up to
		// rounding (a few ulps).
		if err == nil && diff > 0 && r.Difficulty < diff*(1-1e-12) {
			t.Fatalf("accepted at difficulty %g with share difficulty %g", diff, r.Difficulty)
		}
		if err != nil && r.Difficulty > diff*(1+1e-12) {
			t.Fatalf("refused at difficulty %g with share difficulty %g", diff, r.Difficulty)
		}
	})
}
