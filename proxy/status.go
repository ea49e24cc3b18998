package proxy

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchyard/stratum"
)

// SetUpstream connects the first route's pool side; call before Serve.
func (s *Server) SetUpstream(up Upstream) { s.SetRouteUpstream(0, up) }

// Summary is the miners part of /api/v1/status.
type Summary struct {
	Connected int `json:"connected"`
	Lanes     int `json:"lanes"`
}

// Summary reports connected miners and lanes.
func (s *Server) Summary() Summary {
	return Summary{Connected: s.Miners(), Lanes: s.LaneCount()}
}

// MinerRow is one connected miner in /api/v1/miners.
type MinerRow struct {
	Worker     string  `json:"worker"`
	Remote     string  `json:"remote"`
	Agent      string  `json:"agent,omitempty"`
	Difficulty float64 `json:"difficulty"`
	HashrateHs float64 `json:"hashrate_hs"`
	// Submitted = Accepted + Rejected + Lost: every share the miner sent on
	// this connection, as switchyard_shares_total counts them.
	Submitted  uint64            `json:"submitted"`
	Accepted   uint64            `json:"accepted"`
	Rejected   uint64            `json:"rejected"`
	RejectedBy map[string]uint64 `json:"rejected_by,omitempty"` // by reason
	// Lost shares were valid and answered true, but no pool could take
	// them (no_upstream).
	Lost          uint64            `json:"lost"`
	LostBy        map[string]uint64 `json:"lost_by,omitempty"` // by reason
	LastShare     time.Time         `json:"last_share,omitzero"`
	ConnectedSecs float64           `json:"connected_seconds"`
	Lane          int               `json:"lane"`
	Extranonce1   string            `json:"extranonce1,omitempty"`
	// Group, Problems (ProblemNoShares, …) and Reconnects (within the
	// reconnect window) are set by a MinerIndex, in MinerPage rows only.
	Group      string   `json:"group,omitempty"`
	Problems   []string `json:"problems,omitempty"`
	Reconnects int      `json:"reconnects,omitempty"`
}

// MinerRows snapshots every connected miner, reading each on its own event
// loop. It waits at most a second for busy loops.
func (s *Server) MinerRows() []MinerRow {
	s.loopsMu.Lock()
	loops := make([]*loop, 0, len(s.loops))
	for _, lp := range s.loops {
		loops = append(loops, lp)
	}
	s.loopsMu.Unlock()
	ch := make(chan []MinerRow, len(loops))
	now := time.Now()
	asked := 0
	for _, lp := range loops {
		lp := lp
		err := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			rows := make([]MinerRow, 0, len(lp.miners))
			for m := range lp.miners {
				rows = append(rows, m.row(now))
			}
			ch <- rows
			return nil
		}))
		if err == nil {
			asked++
		}
	}
	var all []MinerRow
	timeout := time.After(time.Second)
	for i := 0; i < asked; i++ {
		select {
		case rows := <-ch:
			all = append(all, rows...)
		case <-timeout:
			i = asked
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Worker != all[j].Worker {
			return all[i].Worker < all[j].Worker
		}
		return all[i].Remote < all[j].Remote
	})
	return all
}

// row describes the miner; hashrate is the accepted difficulty per second
// since it connected times 2^32.
func (m *miner) row(now time.Time) MinerRow {
	up := now.Sub(m.connected).Seconds()
	r := MinerRow{
		Worker:        m.workerName(),
		Remote:        m.remote,
		Agent:         m.userAgent,
		Difficulty:    m.diff,
		Submitted:     m.accepted + m.rejected,
		Accepted:      m.accepted - m.books.lost,
		Rejected:      m.rejected,
		RejectedBy:    byReason(m.books.rejectedBy),
		Lost:          m.books.lost,
		LostBy:        byReason(m.books.lostBy),
		LastShare:     m.lastShare,
		ConnectedSecs: math.Round(up*10) / 10,
	}
	if up > 0 {
		r.HashrateHs = m.diffSum * 4294967296 / up
	}
	if m.lane != nil {
		r.Lane = m.lane.idx
		r.Extranonce1 = hexString(m.en1)
	}
	return r
}

// minerBooks counts a miner's rejected and lost shares by reason. The maps
// are made on the first such share: a healthy miner carries none.
type minerBooks struct {
	rejectedBy map[stratum.Reason]uint64
	lostBy     map[stratum.Reason]uint64
	lost       uint64
}

func (b *minerBooks) reject(r stratum.Reason) {
	if b.rejectedBy == nil {
		b.rejectedBy = map[stratum.Reason]uint64{}
	}
	b.rejectedBy[r]++
}

func (b *minerBooks) lose(r stratum.Reason) {
	if b.lostBy == nil {
		b.lostBy = map[stratum.Reason]uint64{}
	}
	b.lostBy[r]++
	b.lost++
}

func byReason(by map[stratum.Reason]uint64) map[string]uint64 {
	if len(by) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(by))
	for r, n := range by {
		out[r.String()] = n
	}
	return out
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}
