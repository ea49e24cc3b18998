package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

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

// WorkSource supplies a pool's jobs and takes its block candidates in
// place of the random jobs of the simulated network: NodeWork puts a real
// node behind the pool. Job is called one PushJob at a time, Block from
// any connection's goroutine.
type WorkSource interface {
	// Job returns the next job, its coinbase laid out for an extranonce1
	// and an extranonce2 of the given sizes. The job is clean when clean
	// is asked or when it starts a new block (a new previous block hash).
	// Job ids must not repeat.
	Job(en1Size, en2Size int, clean bool) (*stratum.Notify, error)
	// Block takes a share whose hash meets its job's network target and
	// reports whether the chain tip moved to it; the pool then issues a
	// clean job at once. It must not keep c's slices.
	Block(c BlockCandidate) (newTip bool)
}

// BlockCandidate is a share whose hash meets its job's network target:
// with the job's template, everything a block needs.
type BlockCandidate struct {
	Job         *stratum.Job
	Extranonce1 []byte // as hashed: the connection's extranonce1
	Extranonce2 []byte
	NTime       uint32
	Nonce       uint32
	Version     uint32         // the header version, rolled bits included (stratum.Result.Version)
	Hash        chainhash.Hash // the header's hash (stratum.Result.Hash)
}

// workJob returns the WorkSource's next job, or (nil, true) when the pool
// has none and makes its own. A WorkSource that fails is logged and
// (nil, false) returned: the current job stays.
func (p *Pool) workJob(clean bool) (*stratum.Notify, bool) {
	if p.cfg.Work == nil {
		return nil, true
	}
	n, err := p.cfg.Work.Job(p.cfg.Extranonce1Size, p.cfg.Extranonce2Size, clean)
	if err != nil {
		p.log.Error().Err(err).Msg("no job from the work source")
		return nil, false
	}
	return n, true
}

// offerBlock hands a share that meets the network target to the
// WorkSource, before the share's own verdict (ckpool's submission_diff in
// src/stratifier.c tests for a block "regardless of share status"), and
// issues a clean job at once when the tip moved to it.
func (p *Pool) offerBlock(j *stratum.Job, s *stratum.Share, r *stratum.Result) {
	if p.cfg.Work == nil {
		return
	}
	c := BlockCandidate{Job: j, Extranonce1: s.Extranonce1, Extranonce2: s.Extranonce2,
		NTime: s.NTime, Nonce: s.Nonce, Version: r.Version, Hash: r.Hash}
	if p.cfg.Work.Block(c) {
		p.PushJob(true)
	}
}

// Template is a block template as a pool uses it (getblocktemplate,
// BIP22/BIP23): what the coinbase, the merkle branch and the header of a
// job come from, and what a block adds after its coinbase.
type Template struct {
	Height        int64
	PrevHash      chainhash.Hash // header (chainhash) order
	Version       uint32
	NBits         uint32
	CurTime       uint32
	CoinbaseValue int64        // satoshis: subsidy and fees
	Txs           []TemplateTx // in block order, without the coinbase

	// WitnessCommitment is the script of the coinbase output that commits
	// to the block's witnesses (OP_RETURN 0x24 aa21a9ed ‖ 32 bytes,
	// BIP141); nil when no transaction has a witness.
	WitnessCommitment []byte
}

// TemplateTx is one transaction of a template.
type TemplateTx struct {
	TxID chainhash.Hash // of the transaction without its witness: what the merkle tree holds
	Data []byte         // serialised as the block carries it, witness included
}

// Coinbase limits (consensus: a coinbase scriptSig is 2 to 100 bytes).
const (
	maxCoinbaseScript = 100
	maxTagLen         = 32
)

// witnessMagic starts a witness commitment output's script (BIP141).
var witnessMagic = [...]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}

// templateCoinbase returns the halves of t's coinbase transaction,
// serialised without witness, around an extranonce area of enSize bytes:
//
//	coinb1: version 2, 1 input (null prevout), scriptSig length,
//	        scriptSig: push(height) (BIP34) push-opcode(enSize)
//	(extranonce1 ‖ extranonce2)
//	coinb2: push(tag), sequence, outputs: CoinbaseValue to payout,
//	        then t's witness commitment (value 0) if it has one; locktime 0
//
// This is the layout of ckpool's generate_coinbase (src/stratifier.c)
// and of Bitcoin Core's own coinbase (src/node/miner.cpp): the extranonce
// right after the height, the commitment as the last output. The scriptSig
// length counts enSize bytes, so every share must carry exactly that many.
func templateCoinbase(t *Template, enSize int, payout []byte, tag string) (coinb1, coinb2 []byte, err error) {
	if t.Height < 0 {
		return nil, nil, fmt.Errorf("sim: template height %d", t.Height)
	}
	if len(tag) > maxTagLen {
		return nil, nil, fmt.Errorf("sim: coinbase tag %q: longer than %d bytes", tag, maxTagLen)
	}
	height := appendScriptNum(nil, t.Height)
	scriptLen := len(height) + 1 + enSize + 1 + len(tag)
	if enSize < 1 || enSize > 75 || scriptLen > maxCoinbaseScript {
		return nil, nil, fmt.Errorf("sim: coinbase scriptSig of %d bytes (extranonces %d): want at most %d",
			scriptLen, enSize, maxCoinbaseScript)
	}
	b := make([]byte, 0, 42+len(height)+1)
	b = binary.LittleEndian.AppendUint32(b, 2) // tx version
	b = append(b, 1)                           // input count
	b = append(b, make([]byte, 32)...)         // null prevout hash
	b = append(b, 0xff, 0xff, 0xff, 0xff)      // prevout index
	b = appendVarInt(b, uint64(scriptLen))
	b = append(b, height...)
	b = append(b, byte(enSize)) // push opcode of the extranonce area
	coinb1 = b

	outputs := 1
	if t.WitnessCommitment != nil {
		outputs++
	}
	c := make([]byte, 0, 1+len(tag)+4+1+2*9+len(payout)+len(t.WitnessCommitment)+4)
	c = append(c, byte(len(tag)))
	c = append(c, tag...)
	c = append(c, 0xff, 0xff, 0xff, 0xff) // sequence
	c = appendVarInt(c, uint64(outputs))
	c = binary.LittleEndian.AppendUint64(c, uint64(t.CoinbaseValue))
	c = appendVarInt(c, uint64(len(payout)))
	c = append(c, payout...)
	if t.WitnessCommitment != nil {
		c = binary.LittleEndian.AppendUint64(c, 0)
		c = appendVarInt(c, uint64(len(t.WitnessCommitment)))
		c = append(c, t.WitnessCommitment...)
	}
	c = binary.LittleEndian.AppendUint32(c, 0) // locktime
	return coinb1, c, nil
}

// merkleBranch returns the Stratum merkle branch of a block whose
// transactions after the coinbase are txs: at each level of the tree, the
// hash paired with the coinbase's side, bottom up. An odd level pairs its
// last hash with itself, as the block's merkle tree does.
func merkleBranch(txs []TemplateTx) [][32]byte {
	level := make([]chainhash.Hash, len(txs))
	for i := range txs {
		level[i] = txs[i].TxID
	}
	var branch [][32]byte
	var buf [64]byte
	for len(level) > 0 {
		branch = append(branch, level[0])
		rest := level[1:]
		next := level[:0:0]
		for i := 0; i < len(rest); i += 2 {
			right := rest[i]
			if i+1 < len(rest) {
				right = rest[i+1]
			}
			copy(buf[:32], rest[i][:])
			copy(buf[32:], right[:])
			next = append(next, chainhash.DoubleHashH(buf[:]))
		}
		level = next
	}
	return branch
}

// assembleBlock serialises the block of candidate c on template t:
// header ‖ transaction count ‖ coinbase ‖ t's transactions. hdr is the
// header the pool hashed (stratum.Job.Header), the coinbase coinb1 ‖
// extranonce1 ‖ extranonce2 ‖ coinb2 of the job as the pool judged the
// share. With a witness commitment, the coinbase is written with its
// witness: marker and flag after the version, one 32-byte zero item (the
// witness reserved value) before the locktime (BIP141/BIP144); its txid,
// which the merkle root holds, does not change.
func assembleBlock(t *Template, hdr *[80]byte, c *BlockCandidate) ([]byte, error) {
	j := c.Job
	if len(j.Coinb1) < 4 || len(j.Coinb2) < 4 {
		return nil, fmt.Errorf("sim: job %q: coinbase halves too short for a transaction", j.ID)
	}
	size := 80 + 9 + len(j.Coinb1) + len(c.Extranonce1) + len(c.Extranonce2) + len(j.Coinb2) + 2 + 34
	for i := range t.Txs {
		size += len(t.Txs[i].Data)
	}
	b := make([]byte, 0, size)
	b = append(b, hdr[:]...)
	b = appendVarInt(b, uint64(1+len(t.Txs)))
	witness := t.WitnessCommitment != nil
	if witness {
		b = append(b, j.Coinb1[:4]...)
		b = append(b, 0x00, 0x01) // segwit marker and flag
		b = append(b, j.Coinb1[4:]...)
	} else {
		b = append(b, j.Coinb1...)
	}
	b = append(b, c.Extranonce1...)
	b = append(b, c.Extranonce2...)
	if witness {
		lock := len(j.Coinb2) - 4
		b = append(b, j.Coinb2[:lock]...)
		b = append(b, 0x01, 0x20) // one witness item of 32 bytes
		b = append(b, make([]byte, 32)...)
		b = append(b, j.Coinb2[lock:]...)
	} else {
		b = append(b, j.Coinb2...)
	}
	for i := range t.Txs {
		b = append(b, t.Txs[i].Data...)
	}
	return b, nil
}

// appendScriptNum appends the minimal script push of v >= 0, as BIP34
// wants the height in a coinbase: OP_0, OP_1…OP_16, or the little-endian
// bytes of v with a zero byte added when the top bit is set (that bit is
// the sign of a script number).
func appendScriptNum(b []byte, v int64) []byte {
	switch {
	case v == 0:
		return append(b, 0x00)
	case v >= 1 && v <= 16:
		return append(b, 0x50+byte(v))
	}
	var num [9]byte
	n := 0
	for u := uint64(v); u > 0; u >>= 8 {
		num[n] = byte(u)
		n++
	}
	if num[n-1]&0x80 != 0 {
		n++ // num[n-1] is already zero
	}
	b = append(b, byte(n))
	return append(b, num[:n]...)
}

// appendVarInt appends v as a Bitcoin CompactSize.
func appendVarInt(b []byte, v uint64) []byte {
	switch {
	case v < 0xfd:
		return append(b, byte(v))
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(v))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
}
