package sim

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/stratum"
)

// rollEvery is how often (in nonces) the grinder checks whether its work
// was replaced and, when rolling, draws new version bits.
const rollEvery = 1 << 8

// grind hashes the session's current work until ctx is done, submitting
// every header that meets the work's target.
func (s *session) grind(ctx context.Context) {
	var interval time.Duration
	if r := s.f.cfg.MaxSharesPerSecond; r > 0 {
		interval = time.Duration(float64(time.Second) / r)
	}
	// Start each miner at a random point of its first interval so a
	// rate-capped fleet does not submit in lockstep.
	next := time.Now().Add(time.Duration(rand.Int64N(int64(interval) + 1)))
	var (
		hdr    [80]byte
		en2buf [stratum.MaxExtranonce2Size]byte
	)
	for ctx.Err() == nil {
		w := s.work.Load()
		if w == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		s.m.en2++
		en2 := putCounter(en2buf[:w.en2Size], s.m.en2)
		// NOTE: version and nonce are the header's first and last fields,
		// little-endian (see stratum.Job.Header). Patching them saves
		// rebuilding the merkle root for every hash; the pool re-checks
		// every share with stratum.Job.Check.
		w.job.Header(&hdr, w.en1, en2, w.job.NTime, 0, w.job.Version)
		var bits uint32
		for nonce := uint32(0); ; nonce++ {
			if nonce%rollEvery == 0 {
				if ctx.Err() != nil || s.work.Load() != w {
					break
				}
				if w.mask != 0 {
					bits = rand.Uint32() & w.mask
					version, _ := stratum.RollVersion(w.job.Version, bits, w.mask) // bits are inside the mask
					binary.LittleEndian.PutUint32(hdr[0:], version)
				}
			}
			binary.LittleEndian.PutUint32(hdr[76:], nonce)
			if h := chainhash.DoubleHashH(hdr[:]); w.target.Meets(&h) {
				if interval > 0 {
					if !sleepCtx(ctx, time.Until(next)) {
						return
					}
					if s.work.Load() != w {
						break // replaced while we waited: the share is for old work
					}
					next = time.Now().Add(interval)
				}
				if !s.submit(w, en2, nonce, bits) {
					return
				}
			}
			if nonce == math.MaxUint32 {
				break
			}
		}
	}
}

// putCounter writes v big-endian into b (its low-order bytes when b is
// shorter than 8) and returns b.
func putCounter(b []byte, v uint64) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}
