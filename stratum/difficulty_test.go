package stratum

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// The tests check the limb arithmetic against math/big, which the package
// itself must not use on the share path.

var bigDiff1 = new(big.Int).Lsh(big.NewInt(0xffff), 208)

func bigMax256() *big.Int {
	return new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
}

// refDifficultyTarget is floor(diff1/d) for the exact binary value of d,
// saturated at 2^256-1.
func refDifficultyTarget(d float64) *big.Int {
	r := new(big.Rat).SetFrac(bigDiff1, big.NewInt(1))
	r.Quo(r, new(big.Rat).SetFloat64(d))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if q.Cmp(bigMax256()) > 0 {
		return bigMax256()
	}
	return q
}

// refNBitsTarget is Bitcoin Core's arith_uint256::SetCompact, with negative
// and overflowing values mapped to zero.
func refNBitsTarget(nbits uint32) *big.Int {
	size := nbits >> 24
	word := big.NewInt(int64(nbits & 0x007fffff))
	if size <= 3 {
		word.Rsh(word, uint(8*(3-size)))
	} else {
		word.Lsh(word, uint(8*(size-3)))
	}
	if word.Sign() != 0 && nbits&0x00800000 != 0 {
		return new(big.Int)
	}
	if word.BitLen() > 256 {
		return new(big.Int)
	}
	return word
}

func targetInt(t Target) *big.Int {
	var be [32]byte
	for i := range t {
		be[i] = t[31-i]
	}
	return new(big.Int).SetBytes(be[:])
}

func TestDifficultyTarget(t *testing.T) {
	tests := []struct {
		name string
		d    float64
		want string // big-endian hex; "" means compare with math/big only
	}{
		{"one", 1, "00000000ffff0000000000000000000000000000000000000000000000000000"},
		{"two", 2, "000000007fff8000000000000000000000000000000000000000000000000000"},
		{"half", 0.5, "00000001fffe0000000000000000000000000000000000000000000000000000"},
		{"65536", 65536, "000000000000ffff000000000000000000000000000000000000000000000000"},
		{"below one 0.001", 0.001, ""},
		{"below one 1e-6", 1e-6, ""},
		{"huge 1e12", 1e12, ""},
		{"network-sized 1.2e14", 1.2e14, ""},
		{"fraction 1234.5678", 1234.5678, ""},
		{"saturates", 1e-12, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"smallest float", math.SmallestNonzeroFloat64, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"zero", 0, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"negative", -5, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"NaN", math.NaN(), "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"max float", math.MaxFloat64, "0000000000000000000000000000000000000000000000000000000000000000"},
		{"+Inf", math.Inf(1), "0000000000000000000000000000000000000000000000000000000000000000"},
		{"2^224 is target 0", 0x1p224, "0000000000000000000000000000000000000000000000000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DifficultyTarget(tt.d)
			if tt.want != "" && got.String() != tt.want {
				t.Fatalf("DifficultyTarget(%g) = %s, want %s", tt.d, got, tt.want)
			}
			if tt.d > 0 && !math.IsInf(tt.d, 1) {
				if want := refDifficultyTarget(tt.d); targetInt(got).Cmp(want) != 0 {
					t.Fatalf("DifficultyTarget(%g) = %s, math/big says %064x", tt.d, got, want)
				}
			}
		})
	}
}

// TestDifficultyTargetRandom compares with math/big over the whole range of
// float64 exponents that matter (and some that saturate).
func TestDifficultyTargetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		d := math.Ldexp(1+rng.Float64(), rng.IntN(600)-300)
		if want, got := refDifficultyTarget(d), DifficultyTarget(d); targetInt(got).Cmp(want) != 0 {
			t.Fatalf("DifficultyTarget(%g) = %s, math/big says %064x", d, got, want)
		}
	}
}

func TestDifficultyRoundTrip(t *testing.T) {
	for _, d := range []float64{1e-9, 0.001, 0.5, 1, 3, 1000, 65536, 1024.25, 1e12, 1e15, 1.2e14, 1e20} {
		t.Run(strings.TrimLeft(big.NewFloat(d).Text('g', 6), "+"), func(t *testing.T) {
			back := DifficultyTarget(d).Difficulty()
			if math.Abs(back-d) > 1e-12*d {
				t.Fatalf("DifficultyTarget(%g).Difficulty() = %g", d, back)
			}
		})
	}
}

func TestNBitsTarget(t *testing.T) {
	tests := []struct {
		name  string
		nbits uint32
		want  string
		diff  float64 // 0: not checked
	}{
		{"genesis 1d00ffff", 0x1d00ffff, "00000000ffff0000000000000000000000000000000000000000000000000000", 1},
		{"block 100000", 0x1b04864c, "000000000004864c000000000000000000000000000000000000000000000000", 14484.162361225399},
		{"block 670718", 0x170d21b9, "0000000000000000000d21b90000000000000000000000000000000000000000", 21434395961348.918},
		{"1b0404cb", 0x1b0404cb, "00000000000404cb000000000000000000000000000000000000000000000000", 0},
		{"regtest 207fffff", 0x207fffff, "7fffff0000000000000000000000000000000000000000000000000000000000", 0},
		{"exponent 3", 0x03123456, "0000000000000000000000000000000000000000000000000000000000123456", 0},
		{"exponent 2", 0x02123456, "0000000000000000000000000000000000000000000000000000000000001234", 0},
		{"exponent 1", 0x01123456, "0000000000000000000000000000000000000000000000000000000000000012", 0},
		{"exponent 0", 0x00123456, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"zero mantissa", 0x1d000000, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"negative", 0x1d800001, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"sign bit, zero mantissa", 0x1d800000, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"top bytes 2100ffff", 0x2100ffff, "ffff000000000000000000000000000000000000000000000000000000000000", 0},
		{"top byte 220000ff", 0x220000ff, "ff00000000000000000000000000000000000000000000000000000000000000", 0},
		{"overflow 2200ffff", 0x2200ffff, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"overflow 230000ff", 0x230000ff, "0000000000000000000000000000000000000000000000000000000000000000", 0},
		{"overflow ff123456", 0xff123456, "0000000000000000000000000000000000000000000000000000000000000000", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NBitsTarget(tt.nbits)
			if got.String() != tt.want {
				t.Fatalf("NBitsTarget(%08x) = %s, want %s", tt.nbits, got, tt.want)
			}
			if ref := refNBitsTarget(tt.nbits); targetInt(got).Cmp(ref) != 0 {
				t.Fatalf("NBitsTarget(%08x) = %s, Bitcoin Core rules give %064x", tt.nbits, got, ref)
			}
			if tt.diff != 0 {
				if d := NBitsDifficulty(tt.nbits); math.Abs(d-tt.diff) > 1e-12*tt.diff {
					t.Fatalf("NBitsDifficulty(%08x) = %.10g, want %.10g", tt.nbits, d, tt.diff)
				}
			}
		})
	}
	if d := NBitsDifficulty(0x1d800001); !math.IsInf(d, 1) {
		t.Fatalf("NBitsDifficulty of an invalid nBits = %g, want +Inf", d)
	}
}

func TestNBitsTargetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		nbits := rng.Uint32()
		if i%2 == 0 {
			nbits = nbits&0x00ffffff | uint32(rng.IntN(36))<<24 // realistic exponents
		}
		if got, ref := NBitsTarget(nbits), refNBitsTarget(nbits); targetInt(got).Cmp(ref) != 0 {
			t.Fatalf("NBitsTarget(%08x) = %s, Bitcoin Core rules give %064x", nbits, got, ref)
		}
	}
}

func TestMeets(t *testing.T) {
	target := DifficultyTarget(1)
	at := chainhash.Hash(target)
	tests := []struct {
		name string
		h    func() chainhash.Hash
		want bool
	}{
		{"equal", func() chainhash.Hash { return at }, true},
		{"one above", func() chainhash.Hash { h := at; h[0] = 1; return h }, false},
		{"one below", func() chainhash.Hash {
			// target - 1: 0xffff·2^208 - 1 borrows through every lower byte.
			h := at
			h[26] = 0xfe
			for i := 0; i < 26; i++ {
				h[i] = 0xff
			}
			return h
		}, true},
		{"higher limb decides", func() chainhash.Hash { var h chainhash.Hash; h[28] = 1; return h }, false},
		{"low limbs ignored when high is below", func() chainhash.Hash {
			var h chainhash.Hash
			for i := 0; i < 26; i++ {
				h[i] = 0xff
			}
			return h
		}, true},
		{"zero hash", func() chainhash.Hash { return chainhash.Hash{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h()
			if got := target.Meets(&h); got != tt.want {
				t.Fatalf("Meets(%s) = %v, want %v", h, got, tt.want)
			}
			if ref := targetInt(Target(h)).Cmp(targetInt(target)) <= 0; ref != tt.want {
				t.Fatalf("case is wrong: math/big says %v", ref)
			}
		})
	}
}

func TestHashDifficulty(t *testing.T) {
	one := chainhash.Hash{0: 1}
	tests := []struct {
		name string
		h    chainhash.Hash
		want float64
	}{
		{"diff1 target", chainhash.Hash(DifficultyTarget(1)), 1},
		{"half of diff1", chainhash.Hash(DifficultyTarget(2)), 2},
		{"hash 1", one, 0xffff * 0x1p208},
		{"zero hash", chainhash.Hash{}, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HashDifficulty(&tt.h); got != tt.want {
				t.Fatalf("HashDifficulty(%s) = %g, want %g", tt.h, got, tt.want)
			}
		})
	}
	t.Run("random against math/big", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; i < 5000; i++ {
			var h chainhash.Hash
			for j := range h {
				h[j] = byte(rng.Uint32())
			}
			// Leading zero bytes as real shares have (the top of the number).
			for j := 31; j >= 31-rng.IntN(31); j-- {
				h[j] = 0
			}
			x := targetInt(Target(h))
			if x.Sign() == 0 {
				continue
			}
			want, _ := new(big.Float).Quo(new(big.Float).SetInt(bigDiff1), new(big.Float).SetInt(x)).Float64()
			if got := HashDifficulty(&h); math.Abs(got-want) > 4e-16*want {
				t.Fatalf("HashDifficulty(%s) = %.17g, math/big says %.17g", h, got, want)
			}
		}
	})
}
