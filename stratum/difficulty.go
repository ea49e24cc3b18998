package stratum

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// diff1 is the target of difficulty 1 as pools count it ("bdiff"):
// 0x00000000FFFF0000…0000 = 0xFFFF·2^208. (Bitcoin Core's "pdiff" 1 is the
// slightly larger 0x00000000FFFFFFFF…; Stratum difficulties are bdiff.)
const diff1 = 0xffff * (1 << 208)

// Target is a 256-bit proof-of-work target, stored like chainhash.Hash: a
// little-endian number, byte 31 the most significant. A hash meets a target
// when, read the same way, it is not above it. Comparisons are exact
// integer compares.
//
// NOTE: chainhash order is the reverse of the hex explorers print, so the
// leading zeros of a block hash are its last bytes here. String prints the
// explorer (big-endian) form.
type Target [32]byte

// Meets reports whether h, read as a little-endian number, is at most t:
// whether the header that hashed to h meets the target.
func (t Target) Meets(h *chainhash.Hash) bool {
	for i := 24; i >= 0; i -= 8 {
		a := binary.LittleEndian.Uint64(h[i:])
		b := binary.LittleEndian.Uint64(t[i:])
		if a != b {
			return a < b
		}
	}
	return true
}

// Difficulty returns the difficulty t stands for, diff1/t, as a float
// (+Inf for the zero target).
func (t Target) Difficulty() float64 {
	return HashDifficulty((*chainhash.Hash)(&t))
}

// String returns t as 64 hex digits, most significant first.
func (t Target) String() string {
	var be [32]byte
	for i := range t {
		be[i] = t[31-i]
	}
	return hex.EncodeToString(be[:])
}

// maxTarget is 2^256-1: every hash meets it.
func maxTarget() Target {
	var t Target
	for i := range t {
		t[i] = 0xff
	}
	return t
}

// DifficultyTarget returns floor(diff1 / d), the target a share of
// difficulty d must meet, computed exactly from d's binary value without
// big.Int. Any positive d works, including d < 1 (test setups use 0.001):
// targets above 2^256-1 saturate there. d <= 0 or NaN gives the maximum
// target (every hash meets it); +Inf gives the zero target.
func DifficultyTarget(d float64) Target {
	if !(d > 0) {
		return maxTarget()
	}
	if math.IsInf(d, 1) {
		return Target{}
	}
	// d = m·2^(e-53) with m a 53-bit integer, so
	// diff1/d = 0xffff·2^s / m with s = 208+53-e.
	frac, e := math.Frexp(d)
	m := uint64(math.Ldexp(frac, 53)) // exact: 2^52 <= m < 2^53
	s := 208 + 53 - e
	switch {
	case s < 0:
		// 0xffff·2^s < 1 <= m.
		return Target{}
	case s >= 294:
		// quotient > 0xffff·2^(s-53) >= 2^256.
		return maxTarget()
	}
	// Numerator 0xffff<<s in five 64-bit limbs (s < 294 keeps it below 2^310).
	var num [5]uint64
	w, b := s/64, uint(s%64)
	num[w] = 0xffff << b
	if b > 48 {
		num[w+1] = 0xffff >> (64 - b)
	}
	// Long division by m, most significant limb first.
	var q [5]uint64
	var rem uint64
	for i := 4; i >= 0; i-- {
		q[i], rem = bits.Div64(rem, num[i], m)
	}
	if q[4] != 0 {
		return maxTarget()
	}
	var t Target
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint64(t[8*i:], q[i])
	}
	return t
}

// NBitsTarget expands a header's compact nBits into its target:
// mantissa·256^(exponent-3) with the exponent in the top byte and a 23-bit
// mantissa below it. An nBits Bitcoin Core would reject (negative, or
// overflowing 256 bits) gives the zero target, which no real hash meets.
func NBitsTarget(nbits uint32) Target {
	exp := int(nbits >> 24)
	mant := nbits & 0x007fffff
	var t Target
	if mant == 0 {
		return t
	}
	if nbits&0x00800000 != 0 {
		return t // negative
	}
	if exp <= 3 {
		mant >>= 8 * uint(3-exp)
		binary.LittleEndian.PutUint32(t[:4], mant)
		return t
	}
	for i := 0; i < 3; i++ {
		c := byte(mant >> (8 * i))
		if c == 0 {
			continue
		}
		p := exp - 3 + i
		if p >= len(t) {
			return Target{} // overflow
		}
		t[p] = c
	}
	return t
}

// NBitsDifficulty returns the network difficulty an nBits stands for, as
// Bitcoin Core's getdifficulty reports it (0x1d00ffff is 1).
func NBitsDifficulty(nbits uint32) float64 {
	return NBitsTarget(nbits).Difficulty()
}

// HashDifficulty returns the difficulty of a share whose header hashed to h:
// diff1 / h, h read as a little-endian number (chainhash order). The result
// is a float64, exact to about 1e-15 relative; decisions use Target.Meets.
// The zero hash has difficulty +Inf.
func HashDifficulty(h *chainhash.Hash) float64 {
	v := float64(binary.LittleEndian.Uint64(h[24:]))*0x1p192 +
		float64(binary.LittleEndian.Uint64(h[16:]))*0x1p128 +
		float64(binary.LittleEndian.Uint64(h[8:]))*0x1p64 +
		float64(binary.LittleEndian.Uint64(h[0:]))
	if v == 0 {
		return math.Inf(1)
	}
	return diff1 / v
}
