package stratum

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// blockFixture is one testdata/blocks/*.json file: a real mainnet block as
// the Stratum exchange that mined it (see testdata/blocks/README.md).
type blockFixture struct {
	Name            string `json:"-"`
	Height          int    `json:"height"`
	BlockHash       string `json:"block_hash"`
	Extranonce1     string `json:"extranonce1"`
	Extranonce2Size int    `json:"extranonce2_size"`
	VersionMask     string `json:"version_mask"`
	Notify          struct {
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	} `json:"notify"`
	Submit struct {
		Method string   `json:"method"`
		Params []string `json:"params"`
	} `json:"submit"`

	notify Notify
	share  Share
	params CheckParams
}

// loadBlockFixtures decodes every block fixture with encoding/json and
// encoding/hex only, so these tests do not lean on the package's own codec.
func loadBlockFixtures(tb testing.TB) []*blockFixture {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "blocks", "*.json"))
	if err != nil || len(files) < 2 {
		tb.Fatalf("block fixtures: %v (%d files)", err, len(files))
	}
	var out []*blockFixture
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		f := &blockFixture{Name: filepath.Base(name)}
		if err := json.Unmarshal(raw, f); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		if f.Notify.Method != "mining.notify" || len(f.Notify.Params) != 9 ||
			f.Submit.Method != "mining.submit" || len(f.Submit.Params) < 5 {
			tb.Fatalf("%s: not a notify/submit pair", name)
		}
		f.decode(tb)
		out = append(out, f)
	}
	return out
}

func (f *blockFixture) decode(tb testing.TB) {
	tb.Helper()
	str := func(i int) string {
		var s string
		if err := json.Unmarshal(f.Notify.Params[i], &s); err != nil {
			tb.Fatalf("%s: notify param %d: %v", f.Name, i, err)
		}
		return s
	}
	unhexStr := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			tb.Fatalf("%s: %v", f.Name, err)
		}
		return b
	}
	u32 := func(s string) uint32 {
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil || len(s) != 8 {
			tb.Fatalf("%s: bad uint32 hex %q", f.Name, s)
		}
		return uint32(v)
	}
	n := &f.notify
	n.JobID = str(0)
	copy(n.PrevHash[:], unhexStr(str(1)))
	n.Coinb1 = unhexStr(str(2))
	n.Coinb2 = unhexStr(str(3))
	var branch []string
	if err := json.Unmarshal(f.Notify.Params[4], &branch); err != nil {
		tb.Fatalf("%s: branch: %v", f.Name, err)
	}
	for _, h := range branch {
		var b [32]byte
		copy(b[:], unhexStr(h))
		n.Branch = append(n.Branch, b)
	}
	n.Version = u32(str(5))
	n.NBits = u32(str(6))
	n.NTime = u32(str(7))
	if err := json.Unmarshal(f.Notify.Params[8], &n.Clean); err != nil {
		tb.Fatalf("%s: clean_jobs: %v", f.Name, err)
	}

	sp := f.Submit.Params
	f.share = Share{
		Extranonce1: unhexStr(f.Extranonce1),
		Extranonce2: unhexStr(sp[2]),
		NTime:       u32(sp[3]),
		Nonce:       u32(sp[4]),
	}
	if len(sp) > 5 {
		f.share.VersionBits = u32(sp[5])
		f.share.HasVersion = true
	}
	f.params = CheckParams{Extranonce2Size: f.Extranonce2Size, Difficulty: 1}
	if f.VersionMask != "" {
		f.params.VersionMask = u32(f.VersionMask)
	}
}

func (f *blockFixture) job(tb testing.TB) *Job {
	tb.Helper()
	j, err := NewJob(&f.notify)
	if err != nil {
		tb.Fatalf("%s: NewJob: %v", f.Name, err)
	}
	return j
}

// TestRealBlocks rebuilds real mainnet blocks from their Stratum job and
// submit and requires the real block hash.
func TestRealBlocks(t *testing.T) {
	for _, f := range loadBlockFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			j := f.job(t)
			var r Result
			if err := j.Check(&f.share, f.params, &r); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := r.Hash.String(); got != f.BlockHash {
				t.Fatalf("hash %s, want block %d hash %s", got, f.Height, f.BlockHash)
			}
			if !r.Block || !NBitsTarget(j.NBits).Meets(&r.Hash) {
				t.Fatalf("block hash does not meet its nBits %08x", j.NBits)
			}
			if r.Difficulty < NBitsDifficulty(j.NBits) {
				t.Fatalf("hash difficulty %g below network difficulty %g", r.Difficulty, NBitsDifficulty(j.NBits))
			}
			// The network difficulty as a share difficulty must pass too.
			p := f.params
			p.Difficulty = NBitsDifficulty(j.NBits)
			if err := j.Check(&f.share, p, &r); err != nil {
				t.Fatalf("Check at network difficulty: %v", err)
			}

			// Header on its own gives the same hash.
			var hdr [80]byte
			j.Header(&hdr, f.share.Extranonce1, f.share.Extranonce2, f.share.NTime, f.share.Nonce, r.Version)
			if h := chainhash.DoubleHashH(hdr[:]); h != r.Hash {
				t.Fatalf("Header hashes to %s, Check to %s", h, r.Hash)
			}
			if f.share.HasVersion && r.Version&f.params.VersionMask != f.share.VersionBits {
				t.Fatalf("header version %08x does not carry the rolled bits %08x", r.Version, f.share.VersionBits)
			}

			// One flipped extranonce2 bit is another coinbase: no block.
			s := f.share
			s.Extranonce2 = bytes.Clone(s.Extranonce2)
			s.Extranonce2[0] ^= 1
			if err := j.Check(&s, f.params, &r); err == nil && r.Block {
				t.Fatalf("mutated share still hashes to a block: %s", r.Hash)
			}
		})
	}
}

// TestBlock100000Merkle checks the coinbase txid and merkle root of block
// 100000 against their well-known values.
func TestBlock100000Merkle(t *testing.T) {
	var f *blockFixture
	for _, g := range loadBlockFixtures(t) {
		if g.Height == 100000 {
			f = g
		}
	}
	if f == nil {
		t.Fatal("block100000.json missing")
	}
	j := f.job(t)
	cb := j.coinbaseHash(f.share.Extranonce1, f.share.Extranonce2)
	if got, want := cb.String(), "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"; got != want {
		t.Fatalf("coinbase txid %s, want %s", got, want)
	}
	if got, want := MerkleRoot(cb, j.Branch).String(), "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"; got != want {
		t.Fatalf("merkle root %s, want %s", got, want)
	}
	if got := MerkleRoot(cb, nil); got != cb {
		t.Fatalf("empty branch: root %s, want the coinbase txid", got)
	}
}

func TestSwapWords(t *testing.T) {
	// Block 100000's previous block hash, as explorers print it, in header
	// order, and as mining.notify spells it.
	prev, err := chainhash.NewHashFromStr("000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250")
	if err != nil {
		t.Fatal(err)
	}
	const wire = "1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000"
	got := SwapWords(*prev)
	if hex.EncodeToString(got[:]) != wire {
		t.Fatalf("SwapWords(header order) = %x, want %s", got, wire)
	}
	if back := SwapWords(got); back != *prev {
		t.Fatalf("SwapWords is not its own inverse: %x", back)
	}
}

func TestHeaderLayout(t *testing.T) {
	j := &Job{
		PrevHash: chainhash.Hash{0: 0xaa, 31: 0xbb},
		Coinb1:   []byte{1},
		Coinb2:   []byte{2},
		NBits:    0x1d00ffff,
	}
	var hdr [80]byte
	j.Header(&hdr, []byte{3}, []byte{4}, 0x11223344, 0x55667788, 0x20000000)
	root := chainhash.DoubleHashH([]byte{1, 3, 4, 2})
	want := []byte{0, 0, 0, 0x20}
	want = append(want, j.PrevHash[:]...)
	want = append(want, root[:]...)
	want = append(want, 0x44, 0x33, 0x22, 0x11, 0xff, 0xff, 0x00, 0x1d, 0x88, 0x77, 0x66, 0x55)
	if !bytes.Equal(hdr[:], want) {
		t.Fatalf("header\n got %x\nwant %x", hdr, want)
	}
}
