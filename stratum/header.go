package stratum

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// SwapWords byte-reverses each 4-byte word of b. It turns the prevhash of a
// mining.notify into header byte order and back (it is its own inverse).
//
// NOTE: this is the prevhash trap of Stratum v1. The header holds the
// previous block hash in chainhash order (the reverse of the hex a block
// explorer shows). mining.notify sends those 32 bytes as eight 32-bit words,
// each printed as a big-endian number, so every word arrives byte-reversed:
// header order 50120119 172a6104 … becomes "19011250 04612a17 …" on the wire
// (block 100000). The trailing zero bytes of the hash stay at the end either
// way, which is why a word-order mistake is easy to miss until no share meets
// any target. Merkle branch hashes and the coinbase halves are not swapped.
func SwapWords(b [32]byte) [32]byte {
	var o [32]byte
	for i := 0; i < 32; i += 4 {
		binary.BigEndian.PutUint32(o[i:], binary.LittleEndian.Uint32(b[i:]))
	}
	return o
}

// MerkleRoot folds the coinbase's transaction hash with its merkle branch:
// for each branch hash b, root = sha256d(root ‖ b). Hashes are in chainhash
// (internal) byte order, as mining.notify sends the branch.
func MerkleRoot(coinbaseHash chainhash.Hash, branch []chainhash.Hash) chainhash.Hash {
	var buf [64]byte
	root := coinbaseHash
	for i := range branch {
		copy(buf[:32], root[:])
		copy(buf[32:], branch[i][:])
		root = chainhash.DoubleHashH(buf[:])
	}
	return root
}

// coinbaseHash returns sha256d(coinb1 ‖ en1 ‖ en2 ‖ coinb2), the coinbase's
// txid in chainhash order. The halves are streamed into the hash, so no
// coinbase buffer is needed, whatever the extranonce lengths.
func (j *Job) coinbaseHash(en1, en2 []byte) chainhash.Hash {
	h := sha256.New() // does not escape: no allocation (see TestCheckAllocs)
	h.Write(j.Coinb1)
	h.Write(en1)
	h.Write(en2)
	h.Write(j.Coinb2)
	var first chainhash.Hash
	h.Sum(first[:0])
	return sha256.Sum256(first[:])
}

// Header assembles the 80-byte block header of a share into dst:
//
//	version ‖ prevhash ‖ merkle root ‖ ntime ‖ nbits ‖ nonce
//
// version is the full header version, already rolled (see RollVersion);
// ntime and nonce are the numbers the submit's hex spells. The numbers are
// written little-endian, prevhash in header order (Job.PrevHash) and the
// merkle root of coinb1 ‖ en1 ‖ en2 ‖ coinb2 in chainhash order.
func (j *Job) Header(dst *[80]byte, en1, en2 []byte, ntime, nonce, version uint32) {
	root := MerkleRoot(j.coinbaseHash(en1, en2), j.Branch)
	binary.LittleEndian.PutUint32(dst[0:4], version)
	copy(dst[4:36], j.PrevHash[:])
	copy(dst[36:68], root[:])
	binary.LittleEndian.PutUint32(dst[68:72], ntime)
	binary.LittleEndian.PutUint32(dst[72:76], j.NBits)
	binary.LittleEndian.PutUint32(dst[76:80], nonce)
}
