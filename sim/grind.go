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
	if s.f.fw.items {
		s.grindItems(ctx)
		return
	}
	interval, next := s.pace()
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
						// Replaced while we waited: the share is for old work.
						s.f.st.unsubmitted.add(UnsubmittedSuperseded)
						break
					}
					next = time.Now().Add(interval)
				}
				if !s.submit(w, w.en1, en2, nonce, bits) {
					return
				}
			}
			if nonce == math.MaxUint32 {
				break
			}
		}
	}
}

// grindItems hashes the way firmware does, one work item at a time: an
// extranonce2 (in the firmware's byte order, restarting at 0 when a notify
// says so) over fw.itemNonces nonces. A notify that abandons the work in
// hand (clean_jobs, and for some firmware a new previous block) is obeyed
// within rollEvery nonces; any other waits for the item to end, so the
// shares found meanwhile go out under the previous job id, as an ASIC's
// results or a cpuminer thread's scan do. Every share is held to the
// target of the item it was found on.
func (s *session) grindItems(ctx context.Context) {
	fw := &s.f.fw
	interval, next := s.pace()
	var (
		hdr    [80]byte
		en2buf [stratum.MaxExtranonce2Size]byte
		cur    *work
	)
	for ctx.Err() == nil {
		if w := s.work.Load(); w == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		} else if w != cur {
			cur = s.takeWork()
			if cur.resetEn2 {
				s.m.en2 = 0
			}
		}
		en1, en2Size := cur.en1, cur.en2Size
		if x := s.live.Load(); x != nil && fw.setExtranonce == xnNextWork {
			en1, en2Size = x.en1, x.size
		}
		en2 := fw.putExtranonce2(en2buf[:en2Size], s.m.en2)
		s.m.en2++
		// cgminer stratum_sthread: "Pool asking for inappropriately long
		// nonce2 length ... Not attempting to submit shares".
		submittable := fw.maxSubmitEn2 == 0 || en2Size <= fw.maxSubmitEn2
		cur.job.Header(&hdr, en1, en2, cur.job.NTime, 0, cur.job.Version)
		var bits uint32
		for nonce := uint32(0); nonce < fw.itemNonces; nonce++ {
			if nonce%rollEvery == 0 {
				if ctx.Err() != nil {
					return
				}
				if w := s.work.Load(); w != cur && w.abandon {
					break
				}
				if cur.mask != 0 {
					bits = rand.Uint32() & cur.mask
					version, _ := stratum.RollVersion(cur.job.Version, bits, cur.mask) // bits are inside the mask
					binary.LittleEndian.PutUint32(hdr[0:], version)
				}
			}
			binary.LittleEndian.PutUint32(hdr[76:], nonce)
			if h := chainhash.DoubleHashH(hdr[:]); !cur.target.Meets(&h) {
				continue
			}
			if !submittable {
				s.f.st.unsubmitted.add(UnsubmittedExtranonce2Size)
				continue
			}
			// Submitted at once, as firmware does; the rate cap then
			// pauses the hashing, so a share is never held while the work
			// it was found on goes stale or changes terms.
			if !s.submit(cur, en1, en2, nonce, bits) {
				return
			}
			if interval > 0 {
				next = next.Add(interval)
				if now := time.Now(); next.Before(now) {
					next = now
				}
				if !sleepCtx(ctx, time.Until(next)) {
					return
				}
				if w := s.work.Load(); w != cur && w.abandon {
					break
				}
			}
		}
	}
}

// pace returns the interval between submits the miner's cap allows
// (MaxSharesPerSecond, or its class's; 0: none) and when the first may go:
// at a random point of the first interval, so a rate-capped fleet does not
// submit in lockstep.
func (s *session) pace() (interval time.Duration, first time.Time) {
	if r := s.m.rate; r > 0 {
		interval = time.Duration(float64(time.Second) / r)
	}
	return interval, time.Now().Add(time.Duration(rand.Int64N(int64(interval) + 1)))
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
