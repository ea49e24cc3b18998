package sim

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"time"

	"switchyard/stratum"
)

// Job constants of the simulated network. NBits is the target of a real
// 2024 block: far beyond anything the simulation can hash, so no share is
// ever a block by chance.
const (
	jobVersion  = 0x20000000
	jobNBits    = 0x17034219
	startHeight = 870000
	poolTag     = "/stratumsim/"
)

// jobMaker builds the jobs of a simulated pool: a coinbase of real shape
// (BIP34 height, the extranonces inside the scriptSig, three outputs), a
// random merkle branch and a random previous block hash per "block". It is
// used by one goroutine at a time.
type jobMaker struct {
	rng         *rand.Rand
	en1Size     int
	en2Size     int
	branchDepth int

	seq    uint64
	height uint32
	prev   [32]byte // header order
}

func newJobMaker(seed uint64, en1Size, en2Size, branchDepth int) *jobMaker {
	m := &jobMaker{
		rng:         rand.New(rand.NewPCG(seed, seed^0x5eed)),
		en1Size:     en1Size,
		en2Size:     en2Size,
		branchDepth: branchDepth,
		height:      startHeight,
	}
	m.newBlock()
	return m
}

// newBlock moves to the next height with a fresh previous block hash whose
// 8 most significant bytes (the last ones in header order) are zero, like a
// real block hash.
func (m *jobMaker) newBlock() {
	m.height++
	for i := 0; i < 24; i += 8 {
		binary.LittleEndian.PutUint64(m.prev[i:], m.rng.Uint64())
	}
	clear(m.prev[24:])
}

// next returns the next job as its mining.notify. A clean job starts a new
// block.
func (m *jobMaker) next(clean bool, now time.Time) *stratum.Notify {
	if clean && m.seq > 0 {
		m.newBlock()
	}
	m.seq++
	n := &stratum.Notify{
		JobID:    strconv.FormatUint(m.seq, 16),
		PrevHash: stratum.SwapWords(m.prev), // NOTE: the wire spells prevhash word-swapped
		Version:  jobVersion,
		NBits:    jobNBits,
		NTime:    uint32(now.Unix()),
		Clean:    clean,
	}
	n.Coinb1, n.Coinb2 = m.coinbase()
	n.Branch = make([][32]byte, m.branchDepth)
	for i := range n.Branch {
		m.fill(n.Branch[i][:])
	}
	return n
}

// coinbase returns the halves of a coinbase transaction (no witness):
//
//	coinb1: version, 1 input (null prevout), scriptSig length,
//	        scriptSig: push(height) push(len(en1+en2))
//	(extranonce1 ‖ extranonce2)
//	coinb2: push(tag) push(8 random bytes), sequence, 3 outputs
//	        (P2WPKH payout, P2PKH payout, witness commitment), locktime
func (m *jobMaker) coinbase() (coinb1, coinb2 []byte) {
	en := m.en1Size + m.en2Size
	scriptLen := 4 + 1 + en + 1 + len(poolTag) + 1 + 8

	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint32(b, 1) // tx version
	b = append(b, 1)                           // input count
	b = append(b, make([]byte, 32)...)         // null prevout hash
	b = append(b, 0xff, 0xff, 0xff, 0xff)      // prevout index
	b = append(b, byte(scriptLen))             // < 0xfd: one-byte varint
	b = append(b, 3, byte(m.height), byte(m.height>>8), byte(m.height>>16))
	b = append(b, byte(en)) // push opcode of the extranonce area
	coinb1 = b

	b = make([]byte, 0, 160)
	b = append(b, byte(len(poolTag)))
	b = append(b, poolTag...)
	b = append(b, 8)
	b = m.fill8(b)
	b = append(b, 0xff, 0xff, 0xff, 0xff) // sequence
	b = append(b, 3)                      // output count
	reward := uint64(312_500_000) + m.rng.Uint64N(50_000_000)
	share := reward / 10
	// P2WPKH: OP_0 <20 bytes>
	b = binary.LittleEndian.AppendUint64(b, reward-share)
	b = append(b, 22, 0x00, 20)
	b = m.fillN(b, 20)
	// P2PKH: OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG
	b = binary.LittleEndian.AppendUint64(b, share)
	b = append(b, 25, 0x76, 0xa9, 20)
	b = m.fillN(b, 20)
	b = append(b, 0x88, 0xac)
	// witness commitment: OP_RETURN <aa21a9ed ‖ 32 bytes>
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = append(b, 38, 0x6a, 36, 0xaa, 0x21, 0xa9, 0xed)
	b = m.fillN(b, 32)
	b = binary.LittleEndian.AppendUint32(b, 0) // locktime
	return coinb1, b
}

func (m *jobMaker) fill(dst []byte) {
	for i := 0; i < len(dst); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], m.rng.Uint64())
		copy(dst[i:], w[:])
	}
}

func (m *jobMaker) fill8(b []byte) []byte { return binary.LittleEndian.AppendUint64(b, m.rng.Uint64()) }

func (m *jobMaker) fillN(b []byte, n int) []byte {
	start := len(b)
	b = append(b, make([]byte, n)...)
	m.fill(b[start:])
	return b
}
