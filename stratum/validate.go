package stratum

import (
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DefaultNTimeMaxAhead is how far (seconds) a share's ntime may run ahead of
// its job's ntime when CheckParams.NTimeMaxAhead is 0. ckpool allows the
// same 7000 s: roughly the two hours a node accepts, less some margin.
const DefaultNTimeMaxAhead = 7000

// RollVersion returns the header version of a share that rolled the given
// version bits under the negotiated mask: (jobVersion &^ mask) | bits.
// Bits outside the mask are refused with a *RejectError matching
// ErrBadVersion; with mask 0 only bits 0 is accepted.
//
// NOTE: this is BIP310 as written: the miner's bits replace the job's bits
// under the mask. Pools differ (some OR or XOR the submitted bits into the
// job version), so a share accepted here may be judged differently
// upstream, and a miner that submits its whole version (0x2xxxxxxx) rather
// than the rolled bits is refused here. The mask must be the one
// negotiated with both sides.
func RollVersion(jobVersion, bits, mask uint32) (uint32, error) {
	if bits&^mask != 0 {
		return jobVersion, ErrBadVersion
	}
	return jobVersion&^mask | bits, nil
}

// Share is one submitted share, the parts of a mining.submit that Check
// needs plus the miner's extranonce1.
//
// NOTE: the hash only sees coinb1 ‖ Extranonce1 ‖ Extranonce2 ‖ coinb2, so
// a proxy may check a miner's share against the pool's job with
// Extranonce1 = pool extranonce1 ‖ miner prefix (‖ padding), or against the
// job as sent to the miner (coinb1 ‖ pool extranonce1) with Extranonce1 =
// prefix: same bytes, same hash. Only Extranonce2's length is checked.
type Share struct {
	Extranonce1 []byte
	Extranonce2 []byte
	NTime       uint32
	Nonce       uint32
	VersionBits uint32 // BIP310 rolled bits, used when HasVersion
	HasVersion  bool   // the submit carried a sixth (version bits) param
}

// CheckParams are the per-miner rules Check applies.
type CheckParams struct {
	Extranonce2Size int     // the extranonce2 length (bytes) the miner was given
	VersionMask     uint32  // negotiated BIP310 mask; 0: no rolling (only bits 0 pass)
	Difficulty      float64 // the difficulty the share must meet (<= 0: any hash)
	NTimeMaxAhead   uint32  // seconds ntime may run ahead of the job; 0: DefaultNTimeMaxAhead
}

// Result is what Check learned about a share.
type Result struct {
	Hash       chainhash.Hash // sha256d of the header, chainhash order
	Difficulty float64        // HashDifficulty(&Hash)
	Block      bool           // Hash meets the job's NBits target: a block candidate
	Version    uint32         // header version used (job version with rolled bits)
}

// errNilShare is returned for a nil share: a caller's bug, refused rather
// than a panic.
var errNilShare = &RejectError{Reason: ReasonMalformed, Detail: "nil share"}

// Check validates a share against j, in this order: extranonce2 size, ntime
// window (not before the job's ntime, at most NTimeMaxAhead after it),
// version bits inside the mask, then the header hash against p.Difficulty.
// It returns nil for a good share, or a *RejectError that errors.Is matches
// against ErrBadExtranonce2, ErrBadNTime, ErrBadVersion or ErrLowDifficulty.
// The errors are those shared sentinels, so they carry no Detail and must
// not be modified; log from the share and r instead.
//
// r is reset, then filled once the header is hashed: on nil and on
// ErrLowDifficulty alike. r.Block is set whenever the hash meets the
// network target, even with ErrLowDifficulty (a miner whose difficulty is
// above the network's), so the caller must forward block candidates before
// looking at the error. Job staleness and duplicates (Dedup) are the
// caller's to check.
//
// Check allocates nothing and may be called concurrently on one Job.
func (j *Job) Check(s *Share, p CheckParams, r *Result) error {
	var local Result
	if r == nil {
		r = &local
	}
	*r = Result{}
	if s == nil {
		return errNilShare
	}
	if len(s.Extranonce2) != p.Extranonce2Size {
		return ErrBadExtranonce2
	}
	ahead := p.NTimeMaxAhead
	if ahead == 0 {
		ahead = DefaultNTimeMaxAhead
	}
	if s.NTime < j.NTime || uint64(s.NTime) > uint64(j.NTime)+uint64(ahead) {
		return ErrBadNTime
	}
	version := j.Version
	if s.HasVersion {
		v, err := RollVersion(j.Version, s.VersionBits, p.VersionMask)
		if err != nil {
			return err
		}
		version = v
	}
	var hdr [80]byte
	j.Header(&hdr, s.Extranonce1, s.Extranonce2, s.NTime, s.Nonce, version)
	r.Hash = chainhash.DoubleHashH(hdr[:])
	r.Difficulty = HashDifficulty(&r.Hash)
	r.Version = version
	r.Block = NBitsTarget(j.NBits).Meets(&r.Hash)
	if !DifficultyTarget(p.Difficulty).Meets(&r.Hash) {
		return ErrLowDifficulty
	}
	return nil
}
