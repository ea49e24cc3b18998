package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/stratum"
)

// Ledger results.
const (
	ResultAccepted = "accepted"
	ResultRejected = "rejected"
	ResultLost     = "lost" // fleet only: the connection ended with the share unanswered
)

// LedgerEntry is one line of a ledger: one share, as the pool judged it or
// as a miner saw it answered. Hex fields are as sent on the wire.
type LedgerEntry struct {
	T           time.Time `json:"t"`
	Conn        uint64    `json:"conn"` // pool: connection number; fleet: miner index
	Worker      string    `json:"worker"`
	JobID       string    `json:"job_id"`
	Extranonce1 string    `json:"extranonce1"`
	Extranonce2 string    `json:"extranonce2"`
	NTime       string    `json:"ntime"`
	Nonce       string    `json:"nonce"`
	Version     string    `json:"version,omitempty"`  // rolled version bits (6th submit param), when sent
	Result      string    `json:"result"`             // ResultAccepted, ResultRejected or ResultLost
	Reason      string    `json:"reason,omitempty"`   // rejection or loss label
	Difficulty  float64   `json:"difficulty"`         // the difficulty the share was held to (pool) or aimed at (miner)
	Credited    float64   `json:"credited,omitempty"` // pool, accepted shares: the difficulty credited (the pool's for the share's job, by the profile's rule)
	Block       bool      `json:"block,omitempty"`    // pool: the share met the network target and was submitted as a block
	LatencyMS   float64   `json:"latency_ms,omitempty"`
}

// ReadLedger reads a ledger written by a Pool or a Fleet.
func ReadLedger(r io.Reader) ([]LedgerEntry, error) {
	var out []LedgerEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e LedgerEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("sim: ledger line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// ledger writes LedgerEntry lines, one Write each, from many goroutines.
type ledger struct {
	mu   sync.Mutex
	enc  *json.Encoder
	werr error
}

// newLedger returns nil for a nil writer; a nil *ledger writes nothing.
func newLedger(w io.Writer) *ledger {
	if w == nil {
		return nil
	}
	return &ledger{enc: json.NewEncoder(w)}
}

func (l *ledger) write(e *LedgerEntry) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(e); err != nil && l.werr == nil {
		l.werr = fmt.Errorf("sim: ledger: %w", err)
	}
}

// err returns the first write error, if any.
func (l *ledger) err() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.werr
}

// reasonCounters counts by a fixed set of labels, chosen when it is made,
// so it can be read and updated without a lock.
type reasonCounters map[string]*atomic.Uint64

// newReasonCounters counts every stratum.Reason label, "other" and extra.
func newReasonCounters(extra ...string) reasonCounters {
	rc := reasonCounters{labelOther: new(atomic.Uint64)}
	for _, r := range stratum.Reasons() {
		rc[r.String()] = new(atomic.Uint64)
	}
	for _, l := range extra {
		rc[l] = new(atomic.Uint64)
	}
	return rc
}

// add counts one under label, or under "other" for a label not in the set.
func (rc reasonCounters) add(label string) {
	if c, ok := rc[label]; ok {
		c.Add(1)
		return
	}
	rc[labelOther].Add(1)
}

const labelOther = "other"

// snapshot returns the non-zero counts.
func (rc reasonCounters) snapshot() map[string]uint64 {
	out := make(map[string]uint64)
	for l, c := range rc {
		if n := c.Load(); n > 0 {
			out[l] = n
		}
	}
	return out
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// formatCounts formats m as " (a=1 b=2)", sorted, or "" when empty.
func formatCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(" (")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	b.WriteByte(')')
	return b.String()
}

// atomicFloat is a float64 that goroutines add to.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) Add(d float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (f *atomicFloat) Load() float64 { return math.Float64frombits(f.bits.Load()) }
