package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/rs/zerolog"

	"switchyard/stratum"
)

// ErrNoBtcd is returned by StartNode when no btcd binary is on PATH, in
// $GOBIN or in $(go env GOPATH)/bin. Tests skip on it: install one with
// `go install github.com/btcsuite/btcd@v0.24.2`.
var ErrNoBtcd = errors.New("sim: btcd not found on PATH, in $GOBIN or in $(go env GOPATH)/bin (go install github.com/btcsuite/btcd@v0.24.2)")

// Node defaults.
const (
	nodeStartTimeout = 30 * time.Second // btcd answering RPC after the process started
	nodeStopTimeout  = 10 * time.Second // SIGINT to exit; then SIGKILL
	nodeCallTimeout  = 10 * time.Second // one RPC of a NodeWork
	nodeStartTries   = 3                // a free port taken between probe and listen: try again
	nodeRPCUser      = "switchyard"
)

// Node is a btcd process in regtest mode on loopback, with no peers, and
// a JSON-RPC client for it: consensus code written elsewhere that judges
// the blocks a pool builds from its miners' shares (see NodeWork).
//
// Regtest's proof of work is 0x207fffff: about every second hash is a
// block. btcd serves getblocktemplate without peers in regtest (its
// handleGetBlockTemplateRequest skips the "not connected" check there,
// and the "downloading blocks" check passes while the tip is recent), so
// one node alone is enough. Its coinbases pay AnyoneCanSpendScript.
type Node struct {
	dir    string
	url    string
	pass   string
	cmd    *exec.Cmd
	client *http.Client
	exited chan struct{} // closed when the process has ended
	waitMu sync.Mutex
	waitEr error
	once   sync.Once
	ids    atomic.Uint64

	tipMu sync.Mutex
	tip   chan struct{} // closed, then replaced, when a block submitted here is accepted
}

// FindBtcd returns the path of a btcd binary: on PATH, else in $GOBIN,
// else in bin/ of each GOPATH entry (go/build's: $GOPATH or ~/go).
func FindBtcd() (string, error) {
	if p, err := exec.LookPath("btcd"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "btcd")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoBtcd
}

// StartNode starts btcd in regtest under dir (its data, logs and a
// btcd.log of its output; HOME points there too, so nothing is written
// elsewhere), RPC and P2P on free loopback ports, and returns once it
// answers RPC. It returns ErrNoBtcd when there is no btcd to run. Close
// stops it.
func StartNode(ctx context.Context, dir string) (*Node, error) {
	bin, err := FindBtcd()
	if err != nil {
		return nil, err
	}
	var errs []error
	for try := range nodeStartTries {
		n, err := startNode(ctx, bin, filepath.Join(dir, "btcd"+strconv.Itoa(try)))
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errNodeExited) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errNodeExited marks a btcd that ended before answering RPC (a port
// taken meanwhile, most likely): StartNode tries again.
var errNodeExited = errors.New("sim: btcd exited before answering RPC")

func startNode(ctx context.Context, bin, dir string) (*Node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim: node dir: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	var secret [16]byte
	_, _ = rand.Read(secret[:])
	conf := filepath.Join(dir, "btcd.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil { // so btcd reads no ~/.btcd/btcd.conf
		return nil, fmt.Errorf("sim: node config: %w", err)
	}
	logPath := filepath.Join(dir, "btcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("sim: node log: %w", err)
	}
	n := &Node{
		dir:    dir,
		url:    "http://" + ports[0] + "/",
		pass:   hex.EncodeToString(secret[:]),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}},
		exited: make(chan struct{}),
		tip:    make(chan struct{}),
	}
	n.cmd = exec.Command(bin,
		"--configfile="+conf,
		"--regtest",
		"--datadir="+filepath.Join(dir, "data"),
		"--logdir="+filepath.Join(dir, "logs"),
		"--rpcuser="+nodeRPCUser,
		"--rpcpass="+n.pass,
		"--rpclisten="+ports[0],
		"--listen="+ports[1],
		"--notls", // loopback only: btcd allows it there
		"--nodnsseed",
		"--nocfilters",
		"--miningaddr="+RegtestAddress(AnyoneCanSpendScript()),
	)
	n.cmd.Dir = dir
	n.cmd.Env = append(os.Environ(), "HOME="+dir)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	setNodeProcAttr(n.cmd)
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("sim: start btcd: %w", err)
	}
	go func() {
		err := n.cmd.Wait()
		logf.Close()
		n.waitMu.Lock()
		n.waitEr = err
		n.waitMu.Unlock()
		close(n.exited)
	}()

	deadline := time.NewTimer(nodeStartTimeout)
	defer deadline.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.GetBlockCount(cctx)
		cancel()
		if err == nil {
			return n, nil
		}
		select {
		case <-n.exited:
			n.waitMu.Lock()
			werr := n.waitEr
			n.waitMu.Unlock()
			return nil, fmt.Errorf("%w (%v): %s", errNodeExited, werr, logTail(logPath, 600))
		case <-ctx.Done():
			n.Close()
			return nil, ctx.Err()
		case <-deadline.C:
			n.Close()
			return nil, fmt.Errorf("sim: btcd not answering RPC after %s (%v): %s", nodeStartTimeout, err, logTail(logPath, 600))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// freePorts returns n loopback addresses whose ports were free a moment
// ago (the listeners are closed before btcd binds them).
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("sim: free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// logTail returns the last max bytes of the file at path, on one line.
func logTail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " | ")
}

// Dir returns the directory the node keeps its data, logs and btcd.log in.
func (n *Node) Dir() string { return n.dir }

// Close stops btcd (SIGINT, so it closes its database; SIGKILL after 10 s)
// and waits for it to exit.
func (n *Node) Close() error {
	n.once.Do(func() {
		_ = n.cmd.Process.Signal(os.Interrupt)
		select {
		case <-n.exited:
		case <-time.After(nodeStopTimeout):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		n.client.CloseIdleConnections()
	})
	return nil
}

// RPCError is an error answer of the node's JSON-RPC server.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("sim: node: %s (code %d)", e.Message, e.Code) }

// BlockRejectedError is a block the node refused: Reason is its answer to
// submitblock (btcd: "rejected: …"; Bitcoin Core: "bad-txnmrklroot", …).
type BlockRejectedError struct {
	Reason string
}

func (e *BlockRejectedError) Error() string { return "sim: node refused the block: " + e.Reason }

// Call sends one JSON-RPC request (basic auth) and decodes its result
// into result (nil: ignored). An error answer is an *RPCError.
func (n *Node) Call(ctx context.Context, method string, result any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      uint64 `json:"id"`
		Method  string `json:"method"`
		Params  []any  `json:"params"`
	}{"1.0", n.ids.Add(1), method, params})
	if err != nil {
		return fmt.Errorf("sim: node %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sim: node %s: %w", method, err)
	}
	req.SetBasicAuth(nodeRPCUser, n.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("sim: node %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("sim: node %s: %w", method, err)
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	}
	// Bitcoin Core answers errors with HTTP 500 and a JSON body, btcd
	// with 200: read the body either way.
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("sim: node %s: HTTP %d: %.200q", method, resp.StatusCode, raw)
	}
	if out.Error != nil {
		return out.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(out.Result, result); err != nil {
		return fmt.Errorf("sim: node %s result: %w", method, err)
	}
	return nil
}

// GetBlockCount returns the height of the node's best chain.
func (n *Node) GetBlockCount(ctx context.Context) (int64, error) {
	var h int64
	err := n.Call(ctx, "getblockcount", &h)
	return h, err
}

// GetBestBlockHash returns the hash of the node's best block.
func (n *Node) GetBestBlockHash(ctx context.Context) (chainhash.Hash, error) {
	var s string
	if err := n.Call(ctx, "getbestblockhash", &s); err != nil {
		return chainhash.Hash{}, err
	}
	return parseHash(s)
}

// GetBlockHash returns the hash of the best chain's block at height.
func (n *Node) GetBlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	var s string
	if err := n.Call(ctx, "getblockhash", &s, height); err != nil {
		return chainhash.Hash{}, err
	}
	return parseHash(s)
}

// BlockInfo is what getblock says of a block of the best chain.
type BlockInfo struct {
	Hash          string   `json:"hash"`
	Height        int64    `json:"height"`
	Confirmations int64    `json:"confirmations"`
	Version       int32    `json:"version"`
	MerkleRoot    string   `json:"merkleroot"`
	PreviousHash  string   `json:"previousblockhash"`
	Time          int64    `json:"time"`
	Tx            []string `json:"tx"` // transaction ids, the coinbase's first
}

// GetBlock returns what the node says of a block of its best chain (btcd
// answers an error for a block it keeps on a side chain: see
// GetRawBlock).
func (n *Node) GetBlock(ctx context.Context, hash chainhash.Hash) (*BlockInfo, error) {
	var b BlockInfo
	if err := n.Call(ctx, "getblock", &b, hash.String(), 1); err != nil {
		return nil, err
	}
	return &b, nil
}

// GetRawBlock returns a block the node has stored, best chain or not, as
// serialised.
func (n *Node) GetRawBlock(ctx context.Context, hash chainhash.Hash) ([]byte, error) {
	var s string
	if err := n.Call(ctx, "getblock", &s, hash.String(), 0); err != nil {
		return nil, err
	}
	return hex.DecodeString(s)
}

// gbtResult is the part of a getblocktemplate answer a pool uses.
type gbtResult struct {
	Version           int64  `json:"version"`
	PreviousBlockHash string `json:"previousblockhash"`
	Transactions      []struct {
		Data string `json:"data"`
		TxID string `json:"txid"`
		Hash string `json:"hash"`
	} `json:"transactions"`
	CoinbaseValue            int64  `json:"coinbasevalue"`
	Bits                     string `json:"bits"`
	CurTime                  int64  `json:"curtime"`
	Height                   int64  `json:"height"`
	DefaultWitnessCommitment string `json:"default_witness_commitment"`
}

// GetBlockTemplate asks for a block template (the segwit rule, as
// Bitcoin Core requires) with the coinbase left to the caller.
func (n *Node) GetBlockTemplate(ctx context.Context) (*Template, error) {
	var g gbtResult
	req := map[string]any{"rules": []string{"segwit"}, "capabilities": []string{"coinbasevalue"}}
	if err := n.Call(ctx, "getblocktemplate", &g, req); err != nil {
		return nil, err
	}
	return g.template()
}

func (g *gbtResult) template() (*Template, error) {
	prev, err := parseHash(g.PreviousBlockHash)
	if err != nil {
		return nil, fmt.Errorf("sim: template previousblockhash: %w", err)
	}
	bits, err := strconv.ParseUint(g.Bits, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("sim: template bits %q: %w", g.Bits, err)
	}
	if g.Version < 0 || g.Version > math.MaxUint32 || g.CurTime < 0 || g.CurTime > math.MaxUint32 {
		return nil, fmt.Errorf("sim: template version %d or curtime %d out of range", g.Version, g.CurTime)
	}
	t := &Template{
		Height:        g.Height,
		PrevHash:      prev,
		Version:       uint32(g.Version),
		NBits:         uint32(bits),
		CurTime:       uint32(g.CurTime),
		CoinbaseValue: g.CoinbaseValue,
		Txs:           make([]TemplateTx, len(g.Transactions)),
	}
	for i, tx := range g.Transactions {
		id := tx.TxID
		if id == "" { // BIP22 before segwit: hash is the txid
			id = tx.Hash
		}
		if t.Txs[i].TxID, err = parseHash(id); err != nil {
			return nil, fmt.Errorf("sim: template tx %d: %w", i, err)
		}
		if t.Txs[i].Data, err = hex.DecodeString(tx.Data); err != nil {
			return nil, fmt.Errorf("sim: template tx %d data: %w", i, err)
		}
	}
	if g.DefaultWitnessCommitment != "" {
		c, err := hex.DecodeString(g.DefaultWitnessCommitment)
		if err != nil {
			return nil, fmt.Errorf("sim: template witness commitment: %w", err)
		}
		// NOTE: Bitcoin Core sends the commitment output's whole script,
		// btcd only the 32-byte commitment ("the witness commitment
		// itself", its rpcserverhelp.go): make it a script either way.
		switch {
		case len(c) == 32:
			t.WitnessCommitment = append(witnessMagic[:len(witnessMagic):len(witnessMagic)], c...)
		case len(c) == 38 && bytes.Equal(c[:6], witnessMagic[:]):
			t.WitnessCommitment = c
		default:
			return nil, fmt.Errorf("sim: template witness commitment of %d bytes", len(c))
		}
	}
	return t, nil
}

// SubmitBlock submits a serialised block. It returns nil when the node
// took it (on its best chain or, at equal work, a side chain), a
// *BlockRejectedError when it refused it, another error when it could
// not be asked.
//
// NOTE: btcd also answers null for an orphan (a block whose parent it
// does not know: a wrong prevhash, say), which it keeps in memory only;
// nil is proof of a valid block only once the block is on the chain.
func (n *Node) SubmitBlock(ctx context.Context, block []byte) error {
	var answer *string
	if err := n.Call(ctx, "submitblock", &answer, hex.EncodeToString(block)); err != nil {
		return err
	}
	if answer != nil {
		return &BlockRejectedError{Reason: *answer}
	}
	n.tipMu.Lock()
	close(n.tip)
	n.tip = make(chan struct{})
	n.tipMu.Unlock()
	return nil
}

// blockTaken returns a channel closed when a block submitted through n is
// next accepted: pools sharing a node learn at once that the tip moved.
func (n *Node) blockTaken() <-chan struct{} {
	n.tipMu.Lock()
	defer n.tipMu.Unlock()
	return n.tip
}

// Generate mines count blocks with btcd's own CPU miner (the generate
// RPC of regtest and simnet), paying AnyoneCanSpendScript.
func (n *Node) Generate(ctx context.Context, count int) ([]chainhash.Hash, error) {
	var ss []string
	if err := n.Call(ctx, "generate", &ss, count); err != nil {
		return nil, err
	}
	hs := make([]chainhash.Hash, len(ss))
	for i, s := range ss {
		h, err := parseHash(s)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return hs, nil
}

// SendRawTransaction hands a serialised transaction to the node's mempool
// and returns its txid.
func (n *Node) SendRawTransaction(ctx context.Context, tx []byte) (chainhash.Hash, error) {
	var s string
	if err := n.Call(ctx, "sendrawtransaction", &s, hex.EncodeToString(tx)); err != nil {
		return chainhash.Hash{}, err
	}
	return parseHash(s)
}

// segwitActive reports whether the node's chain has segwit active.
func (n *Node) segwitActive(ctx context.Context) (bool, int64, error) {
	var info struct {
		Blocks int64 `json:"blocks"`
		Forks  map[string]struct {
			Status string `json:"status"`
		} `json:"bip9_softforks"`
		Forks2 map[string]struct {
			Active bool `json:"active"`
		} `json:"softforks"` // Bitcoin Core
	}
	if err := n.Call(ctx, "getblockchaininfo", &info); err != nil {
		return false, 0, err
	}
	return info.Forks["segwit"].Status == "active" || info.Forks2["segwit"].Active, info.Blocks, nil
}

// parseHash reads a hash as RPC prints it (byte-reversed).
func parseHash(s string) (chainhash.Hash, error) {
	h, err := chainhash.NewHashFromStr(s)
	if err != nil || len(s) != 64 {
		return chainhash.Hash{}, fmt.Errorf("sim: bad hash %q", s)
	}
	return *h, nil
}

// AnyoneCanSpendScript returns the output script the node's coinbases and
// the Faucet's transactions pay: P2WSH of the witness script OP_TRUE, so
// an input spends it with the witness [OP_TRUE] and no key. A fresh slice
// each call.
func AnyoneCanSpendScript() []byte {
	h := sha256.Sum256([]byte{opTrue})
	return append([]byte{0x00, 0x20}, h[:]...)
}

const opTrue = 0x51

// RegtestAddress returns the regtest (bcrt) bech32 address of a witness
// v0 output script (OP_0 push(20 or 32 bytes)), as --miningaddr takes it,
// or "" for another script. Bech32 is BIP173's.
func RegtestAddress(script []byte) string {
	if len(script) < 2 || script[0] != 0x00 || int(script[1]) != len(script)-2 || (script[1] != 20 && script[1] != 32) {
		return ""
	}
	return bech32("bcrt", 0, script[2:])
}

// bech32 encodes a segwit address: hrp "1" version ‖ program in 5-bit
// groups ‖ 6-character checksum (BIP173).
func bech32(hrp string, version byte, program []byte) string {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	data := []byte{version}
	var acc, bits uint
	for _, b := range program {
		acc = acc<<8 | uint(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			data = append(data, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		data = append(data, byte(acc<<(5-bits))&31)
	}
	values := make([]byte, 0, 2*len(hrp)+1+len(data)+6)
	for i := range len(hrp) {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := range len(hrp) {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(values) ^ 1
	var sb strings.Builder
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, d := range data {
		sb.WriteByte(charset[d])
	}
	for i := range 6 {
		sb.WriteByte(charset[(mod>>(5*(5-i)))&31])
	}
	return sb.String()
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

// Faucet makes transactions on a regtest node from anyone-can-spend
// outputs (AnyoneCanSpendScript), so that block templates carry
// transactions, some with unconfirmed parents, all with witnesses: the
// merkle branch and the witness commitment then matter. Safe for
// concurrent use.
type Faucet struct {
	n     *Node
	mu    sync.Mutex
	coins []coin // spendable, the next one last
}

// coin is a spendable output.
type coin struct {
	txid  chainhash.Hash
	vout  uint32
	value int64
}

// Faucet transaction terms.
const (
	faucetFee     = 10_000     // satoshis a transaction leaves to the miner
	faucetMinCoin = 10_000_000 // outputs below this are not spent again
	primeCoins    = 16         // coinbases the Faucet starts with
	segwitWindow  = 144        // regtest's BIP9 confirmation window
)

// Prime mines blocks with the node's own miner until segwit is active
// (regtest signals it through BIP9: three windows of 144 blocks) and the
// first coinbases are mature, and returns a Faucet holding those
// coinbases. It takes well under a second.
func (n *Node) Prime(ctx context.Context) (*Faucet, error) {
	var mined []chainhash.Hash
	for {
		active, height, err := n.segwitActive(ctx)
		if err != nil {
			return nil, err
		}
		if active && height >= primeCoins+100 {
			break
		}
		if height > 20*segwitWindow {
			return nil, fmt.Errorf("sim: segwit not active at height %d", height)
		}
		hs, err := n.Generate(ctx, segwitWindow)
		if err != nil {
			return nil, err
		}
		mined = append(mined, hs...)
	}
	if len(mined) < primeCoins {
		return nil, fmt.Errorf("sim: node already had blocks: %d mined here, want %d", len(mined), primeCoins)
	}
	f := &Faucet{n: n}
	want := AnyoneCanSpendScript()
	for i := primeCoins - 1; i >= 0; i-- { // the oldest coinbase is spent first
		c, err := n.coinbaseCoin(ctx, mined[i], want)
		if err != nil {
			return nil, err
		}
		f.coins = append(f.coins, c)
	}
	return f, nil
}

// coinbaseCoin returns output 0 of a block's coinbase, which must pay
// script.
func (n *Node) coinbaseCoin(ctx context.Context, block chainhash.Hash, script []byte) (coin, error) {
	type vtx struct {
		TxID string `json:"txid"`
		Vout []struct {
			Value        float64 `json:"value"`
			ScriptPubKey struct {
				Hex string `json:"hex"`
			} `json:"scriptPubKey"`
		} `json:"vout"`
	}
	var b struct {
		RawTx []vtx `json:"rawtx"` // btcd
		Tx    []vtx `json:"tx"`    // Bitcoin Core
	}
	if err := n.Call(ctx, "getblock", &b, block.String(), 2); err != nil {
		return coin{}, err
	}
	txs := b.RawTx
	if len(txs) == 0 {
		txs = b.Tx
	}
	if len(txs) == 0 || len(txs[0].Vout) == 0 {
		return coin{}, fmt.Errorf("sim: block %s: no coinbase output", block)
	}
	out := txs[0].Vout[0]
	if out.ScriptPubKey.Hex != hex.EncodeToString(script) {
		return coin{}, fmt.Errorf("sim: block %s pays %s, not the anyone-can-spend script", block, out.ScriptPubKey.Hex)
	}
	id, err := parseHash(txs[0].TxID)
	if err != nil {
		return coin{}, err
	}
	return coin{txid: id, vout: 0, value: int64(math.Round(out.Value * 1e8))}, nil
}

// ErrFaucetDry is returned by Faucet.Send when no output is left to spend.
var ErrFaucetDry = errors.New("sim: faucet has nothing left to spend")

// Send makes one transaction, spending the newest spendable output
// (often one of the previous transaction's, still unconfirmed) into two
// anyone-can-spend outputs, and hands it to the node. It returns the txid.
func (f *Faucet) Send(ctx context.Context) (chainhash.Hash, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.coins) > 0 && f.coins[len(f.coins)-1].value < faucetMinCoin {
		f.coins = f.coins[:len(f.coins)-1]
	}
	if len(f.coins) == 0 {
		return chainhash.Hash{}, ErrFaucetDry
	}
	c := f.coins[len(f.coins)-1]
	half := (c.value - faucetFee) / 2
	tx, txid := spendTx(c, half, AnyoneCanSpendScript())
	if _, err := f.n.SendRawTransaction(ctx, tx); err != nil {
		return chainhash.Hash{}, fmt.Errorf("sim: faucet spending %s:%d: %w", c.txid, c.vout, err)
	}
	f.coins = f.coins[:len(f.coins)-1]
	f.coins = append(f.coins, coin{txid, 1, half}, coin{txid, 0, half})
	return txid, nil
}

// spendTx returns a segwit transaction spending c with the witness
// [OP_TRUE] into two outputs of value each paying script, and its txid.
func spendTx(c coin, value int64, script []byte) (tx []byte, txid chainhash.Hash) {
	var body []byte // inputs and outputs, as both serialisations have them
	body = append(body, 1)
	body = append(body, c.txid[:]...)
	body = binary.LittleEndian.AppendUint32(body, c.vout)
	body = append(body, 0)                      // empty scriptSig
	body = append(body, 0xff, 0xff, 0xff, 0xff) // sequence: final, no relative lock
	body = append(body, 2)
	for range 2 {
		body = binary.LittleEndian.AppendUint64(body, uint64(value))
		body = appendVarInt(body, uint64(len(script)))
		body = append(body, script...)
	}
	var version, lock [4]byte
	binary.LittleEndian.PutUint32(version[:], 2)

	stripped := append(append(append([]byte{}, version[:]...), body...), lock[:]...)
	txid = chainhash.DoubleHashH(stripped)

	tx = append(tx, version[:]...)
	tx = append(tx, 0x00, 0x01) // segwit marker and flag
	tx = append(tx, body...)
	tx = append(tx, 1, 1, opTrue) // one witness item: the witness script OP_TRUE
	tx = append(tx, lock[:]...)
	return tx, txid
}

// NodeWorkConfig configures a NodeWork. A zero field takes the default
// named beside it.
type NodeWorkConfig struct {
	Tag    string // in every coinbase scriptSig, at most 32 bytes (poolTag)
	Payout []byte // the coinbase output script (AnyoneCanSpendScript())
	Log    zerolog.Logger
}

// NodeWork is a WorkSource backed by a Node: each job comes from a fresh
// getblocktemplate (coinbase with BIP34 height and the witness
// commitment, merkle branch of the template's transactions, version,
// nbits, ntime and the previous block hash in Stratum word order), and
// each block candidate is assembled (header from stratum.Job.Header,
// coinbase with the share's extranonces, the template's transactions) and
// submitted, the node's answer kept in a BlockRecord. Give every pool its
// own NodeWork; several may share one Node.
//
// The coinbase is laid out for the pool's configured extranonce sizes:
// do not change a connection's extranonce2 size (Pool.SetExtranonce with
// a new size) on a node-backed pool.
type NodeWork struct {
	n      *Node
	cfg    NodeWorkConfig
	log    zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // serialises Job and Block; guards the fields below
	seq     uint64
	prev    chainhash.Hash // previous block hash of the last job
	jobs    map[string]*Template
	order   []string // job ids, oldest first
	records []BlockRecord
}

// nodeWorkJobs is how many jobs a NodeWork remembers: more than a pool
// does (keepJobs), so a share the pool still takes has its template.
const nodeWorkJobs = 4 * keepJobs

// BlockRecord is one block candidate and what the node made of it.
type BlockRecord struct {
	At              time.Time
	JobID           string
	Hash            chainhash.Hash
	PrevHash        chainhash.Hash
	Height          int64
	Version         uint32 // the header's, rolled bits included
	TemplateVersion uint32 // the job's
	Txs             int    // template transactions in the block besides the coinbase
	Witness         bool   // the coinbase carried a witness commitment
	Err             error  // the node's answer: nil when it took the block
	Tip             bool   // the node's best block right after the submit
}

// Rolled reports whether the candidate's version differs from its job's:
// the miner rolled version bits (BIP310).
func (r *BlockRecord) Rolled() bool { return r.Version != r.TemplateVersion }

// NewNodeWork returns a WorkSource for n; it fetches one template first,
// so a node that will not serve templates fails here. Close stops it.
func NewNodeWork(n *Node, cfg NodeWorkConfig) (*NodeWork, error) {
	if cfg.Tag == "" {
		cfg.Tag = poolTag
	}
	if cfg.Payout == nil {
		cfg.Payout = AnyoneCanSpendScript()
	}
	if len(cfg.Tag) > maxTagLen {
		return nil, fmt.Errorf("sim: coinbase tag %q: longer than %d bytes", cfg.Tag, maxTagLen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &NodeWork{
		n:      n,
		cfg:    cfg,
		log:    cfg.Log.With().Str("component", "nodework").Str("tag", cfg.Tag).Logger(),
		ctx:    ctx,
		cancel: cancel,
		jobs:   make(map[string]*Template),
	}
	cctx, ccancel := context.WithTimeout(ctx, nodeCallTimeout)
	defer ccancel()
	if _, err := n.GetBlockTemplate(cctx); err != nil {
		cancel()
		return nil, fmt.Errorf("sim: node serves no block template: %w", err)
	}
	return w, nil
}

// Close stops Follow's goroutine and fails node calls still to come.
func (w *NodeWork) Close() {
	w.cancel()
	w.wg.Wait()
}

// Job implements WorkSource: a job from a fresh block template.
func (w *NodeWork) Job(en1Size, en2Size int, clean bool) (*stratum.Notify, error) {
	ctx, cancel := context.WithTimeout(w.ctx, nodeCallTimeout)
	defer cancel()
	t, err := w.n.GetBlockTemplate(ctx)
	if err != nil {
		return nil, err
	}
	coinb1, coinb2, err := templateCoinbase(t, en1Size+en2Size, w.cfg.Payout, w.cfg.Tag)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	id := strconv.FormatUint(w.seq, 16)
	newBlock := t.PrevHash != w.prev
	w.prev = t.PrevHash
	w.jobs[id] = t
	w.order = append(w.order, id)
	if len(w.order) > nodeWorkJobs {
		delete(w.jobs, w.order[0])
		w.order = w.order[1:]
	}
	return &stratum.Notify{
		JobID:    id,
		PrevHash: stratum.SwapWords(t.PrevHash), // NOTE: the wire spells prevhash word-swapped
		Coinb1:   coinb1,
		Coinb2:   coinb2,
		Branch:   merkleBranch(t.Txs),
		Version:  t.Version,
		NBits:    t.NBits,
		NTime:    t.CurTime,
		Clean:    clean || newBlock,
	}, nil
}

// Block implements WorkSource: it assembles c's block, the header from
// stratum.Job.Header, submits it and records the answer; true when the
// node's tip is now that block.
func (w *NodeWork) Block(c BlockCandidate) bool {
	var hdr [80]byte
	c.Job.Header(&hdr, c.Extranonce1, c.Extranonce2, c.NTime, c.Nonce, c.Version)
	return w.submit(&c, &hdr)
}

// submit assembles c's block with header hdr, which must hash to c.Hash,
// submits it and records the node's answer.
func (w *NodeWork) submit(c *BlockCandidate, hdr *[80]byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := BlockRecord{At: time.Now(), JobID: c.Job.ID, Hash: c.Hash, Version: c.Version, TemplateVersion: c.Job.Version}
	t := w.jobs[c.Job.ID]
	switch {
	case t == nil:
		rec.Err = fmt.Errorf("sim: job %q: no template kept", c.Job.ID)
	case chainhash.DoubleHashH(hdr[:]) != c.Hash:
		rec.Err = fmt.Errorf("sim: job %q: the candidate's header does not hash to %s", c.Job.ID, c.Hash)
	default:
		rec.PrevHash, rec.Height, rec.Txs, rec.Witness = t.PrevHash, t.Height, len(t.Txs), t.WitnessCommitment != nil
		var block []byte
		if block, rec.Err = assembleBlock(t, hdr, c); rec.Err == nil {
			ctx, cancel := context.WithTimeout(w.ctx, nodeCallTimeout)
			if rec.Err = w.n.SubmitBlock(ctx, block); rec.Err == nil {
				best, err := w.n.GetBestBlockHash(ctx)
				rec.Tip = err == nil && best == c.Hash
			}
			cancel()
			if rec.Tip {
				// The pool pushes a clean job on it at once (offerBlock):
				// Follow need not push another.
				w.prev = c.Hash
			}
		}
	}
	w.records = append(w.records, rec)
	ev := w.log.Info()
	if rec.Err != nil {
		ev = w.log.Warn().Err(rec.Err)
	}
	ev.Str("job_id", rec.JobID).Str("hash", rec.Hash.String()).Int64("height", rec.Height).
		Bool("tip", rec.Tip).Int("txs", rec.Txs).Msg("block candidate submitted")
	return rec.Tip
}

// Records returns a copy of every block candidate so far, in order.
func (w *NodeWork) Records() []BlockRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]BlockRecord(nil), w.records...)
}

// JobPusher is what Follow needs of a pool (*Pool has it).
type JobPusher interface {
	PushJob(clean bool)
}

// Follow watches the node's tip until Close: every interval (a second
// when 0), and at once when a block submitted through the same Node is
// accepted (by another pool sharing it, say), it asks for the best block
// hash and, when it is not the previous block of the last job, pushes a
// clean job to p.
func (w *NodeWork) Follow(p JobPusher, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			taken := w.n.blockTaken()
			select {
			case <-w.ctx.Done():
				return
			case <-t.C:
			case <-taken:
			}
			ctx, cancel := context.WithTimeout(w.ctx, nodeCallTimeout)
			best, err := w.n.GetBestBlockHash(ctx)
			cancel()
			if err != nil {
				continue
			}
			w.mu.Lock()
			moved := best != w.prev
			w.mu.Unlock()
			if moved {
				p.PushJob(true)
			}
		}
	}()
}
