package stratum

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// Size limits for a job. A pool's coinbase is a few hundred bytes (more
// with many payout outputs); a merkle branch has one hash per level of the
// block's transaction tree, so 32 levels would be 2^32 transactions.
const (
	MaxCoinbaseLen = 32 << 10 // len(coinb1) + len(coinb2), bytes
	MaxBranchLen   = 32       // merkle branch hashes
)

// ErrInvalidJob is wrapped by the errors NewJob returns.
var ErrInvalidJob = errors.New("stratum: invalid job")

// Job is a job ready for share validation: a mining.notify with its fields in
// the byte order the block header uses. A Job is not changed by any method,
// so one Job may be checked from many goroutines at once.
type Job struct {
	ID string

	// PrevHash is the previous block hash in header byte order: the 32
	// bytes as they appear in the header (chainhash order, the reverse of
	// the hex a block explorer shows).
	//
	// NOTE: this is not Notify.PrevHash. mining.notify spells the hash as
	// eight 4-byte words, each byte-reversed; NewJob swaps them back with
	// SwapWords.
	PrevHash chainhash.Hash

	// Coinb1 and Coinb2 are the coinbase transaction (serialised without
	// witness) around the extranonces: coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
	Coinb1, Coinb2 []byte

	// Branch is the merkle branch of the coinbase, bottom up, each hash in
	// the byte order it is hashed in (as the notify's hex spells it).
	Branch []chainhash.Hash

	// Version, NBits and NTime are the numbers the notify's big-endian hex
	// spells; Header writes them little-endian. Version is the version
	// before any BIP310 rolling.
	Version, NBits, NTime uint32

	Clean bool // clean_jobs: jobs before this one are stale
}

// Validate reports whether n can make a Job (see NewJob): coinbase halves
// present and within MaxCoinbaseLen together, a branch within MaxBranchLen.
func (n *Notify) Validate() error {
	if n == nil {
		return fmt.Errorf("%w: nil notify", ErrInvalidJob)
	}
	switch {
	case len(n.Coinb1) == 0:
		return fmt.Errorf("%w: job %q: empty coinb1", ErrInvalidJob, n.JobID)
	case len(n.Coinb2) == 0:
		return fmt.Errorf("%w: job %q: empty coinb2", ErrInvalidJob, n.JobID)
	case len(n.Coinb1)+len(n.Coinb2) > MaxCoinbaseLen:
		return fmt.Errorf("%w: job %q: coinbase halves are %d bytes, limit %d",
			ErrInvalidJob, n.JobID, len(n.Coinb1)+len(n.Coinb2), MaxCoinbaseLen)
	case len(n.Branch) > MaxBranchLen:
		return fmt.Errorf("%w: job %q: merkle branch has %d hashes, limit %d",
			ErrInvalidJob, n.JobID, len(n.Branch), MaxBranchLen)
	}
	return nil
}

// NewJob returns the Job for the notify n. It copies what it keeps, so n may
// be reused afterwards. It fails, with an error wrapping ErrInvalidJob, when
// a coinbase half is empty, the coinbase halves are longer than
// MaxCoinbaseLen together, or the branch is longer than MaxBranchLen.
func NewJob(n *Notify) (*Job, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	cb := make([]byte, len(n.Coinb1)+len(n.Coinb2))
	copy(cb, n.Coinb1)
	copy(cb[len(n.Coinb1):], n.Coinb2)
	j := &Job{
		ID:       n.JobID,
		PrevHash: chainhash.Hash(SwapWords(n.PrevHash)),
		Coinb1:   cb[:len(n.Coinb1):len(n.Coinb1)],
		Coinb2:   cb[len(n.Coinb1):],
		Version:  n.Version,
		NBits:    n.NBits,
		NTime:    n.NTime,
		Clean:    n.Clean,
	}
	if len(n.Branch) > 0 {
		j.Branch = make([]chainhash.Hash, len(n.Branch))
		for i := range n.Branch {
			j.Branch[i] = n.Branch[i]
		}
	}
	return j, nil
}
