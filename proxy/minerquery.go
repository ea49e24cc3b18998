package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Problems a miner can have, the values of MinerRow.Problems.
const (
	// ProblemNoShares: no share for NoShareFactor times the miner's target
	// interval (since it connected, when it never sent one).
	ProblemNoShares = "no_shares"
	// ProblemRejecting: more than MaxRejectRatio of its shares rejected,
	// once it has sent MinSubmits.
	ProblemRejecting = "rejecting"
	// ProblemReconnecting: its worker name came back from the same address
	// on a new connection MaxReconnects times within ReconnectWindow.
	ProblemReconnecting = "reconnecting"
)

// ProblemRules say when a miner is a problem miner. Zero fields take the
// defaults of DefaultProblemRules.
type ProblemRules struct {
	// Target is the share interval vardiff aims at. A miner's own target
	// is the larger of Target and the interval its hashrate gives at its
	// difficulty (a small miner pinned at the difficulty floor shares less
	// often than Target).
	Target          time.Duration
	NoShareFactor   float64 // 3
	MaxRejectRatio  float64 // 0.05
	MinSubmits      uint64  // 20
	ReconnectWindow time.Duration
	MaxReconnects   int // 3
}

// DefaultProblemRules are the rules with every field at its default.
var DefaultProblemRules = ProblemRules{
	Target: 10 * time.Second, NoShareFactor: 3, MaxRejectRatio: 0.05, MinSubmits: 20,
	ReconnectWindow: 10 * time.Minute, MaxReconnects: 3,
}

func (r ProblemRules) withDefaults() ProblemRules {
	d := DefaultProblemRules
	if r.Target <= 0 {
		r.Target = d.Target
	}
	if r.NoShareFactor <= 0 {
		r.NoShareFactor = d.NoShareFactor
	}
	if r.MaxRejectRatio <= 0 {
		r.MaxRejectRatio = d.MaxRejectRatio
	}
	if r.MinSubmits == 0 {
		r.MinSubmits = d.MinSubmits
	}
	if r.ReconnectWindow <= 0 {
		r.ReconnectWindow = d.ReconnectWindow
	}
	if r.MaxReconnects <= 0 {
		r.MaxReconnects = d.MaxReconnects
	}
	return r
}

// Query limits.
const (
	DefaultMinerLimit = 50
	MaxMinerLimit     = 1000
	// MaxMinerGroups is how many groups a MinerPage lists (problems first).
	MaxMinerGroups = 100
	// maxTracked bounds the reconnect tracker's keys.
	maxTracked = 1 << 20
	// snapshotMaxAge is how long a snapshot serves queries: one refresh of
	// several viewers, and the status and miners requests of one refresh,
	// share it.
	snapshotMaxAge = 2 * time.Second
)

// MinerSorts are the sort keys of /api/v1/miners?sort=; a "-" in front
// sorts descending. "problems" (the default) puts problem miners first,
// the most problems first, then by worker name.
var MinerSorts = []string{"problems", "worker", "group", "remote", "agent", "difficulty", "hashrate",
	"accepted", "rejected", "reject_ratio", "lost", "last_share", "connected", "lane"}

// MinerQuery selects a page of miners.
type MinerQuery struct {
	Limit, Offset int
	Sort          string // one of MinerSorts, "-" in front for descending
	Q             string // case-insensitive substring of worker, remote or agent
	Group         string // only this group (when GroupSet)
	GroupSet      bool
	ProblemsOnly  bool
}

// ErrBadQuery wraps every error of ParseMinerQuery.
var ErrBadQuery = errors.New("proxy: bad miners query")

// ParseMinerQuery reads limit (default 50, at most 1000), offset, sort,
// q, group and problems (1/true) from an /api/v1/miners query string.
func ParseMinerQuery(v url.Values) (MinerQuery, error) {
	q := MinerQuery{Limit: DefaultMinerLimit, Sort: "problems", Q: v.Get("q")}
	var errs []error
	num := func(key string, dst *int, lo, hi int) {
		s := v.Get(key)
		if s == "" {
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%w: %s must be a whole number from %d to %d (got %q)", ErrBadQuery, key, lo, hi, s))
			return
		}
		*dst = n
	}
	num("limit", &q.Limit, 0, MaxMinerLimit)
	num("offset", &q.Offset, 0, math.MaxInt32)
	if s := v.Get("sort"); s != "" {
		if !slices.Contains(MinerSorts, strings.TrimPrefix(s, "-")) {
			errs = append(errs, fmt.Errorf("%w: sort must be one of %s, with an optional leading - (got %q)",
				ErrBadQuery, strings.Join(MinerSorts, ", "), s))
		}
		q.Sort = s
	}
	if g, ok := v["group"]; ok && len(g) > 0 {
		q.Group, q.GroupSet = g[0], true
	}
	switch p := v.Get("problems"); p {
	case "", "0", "false":
	case "1", "true":
		q.ProblemsOnly = true
	default:
		errs = append(errs, fmt.Errorf("%w: problems must be 1, true, 0 or false (got %q)", ErrBadQuery, p))
	}
	return q, errors.Join(errs...)
}

// MinerGroup sums the miners of one group.
type MinerGroup struct {
	Name       string  `json:"name"`
	Miners     int     `json:"miners"`
	Mining     int     `json:"mining"`
	Problems   int     `json:"problems"`
	HashrateHs float64 `json:"hashrate_hs"`
	Accepted   uint64  `json:"accepted"`
	Rejected   uint64  `json:"rejected"`
}

// MinerPage is the body of /api/v1/miners with a query.
type MinerPage struct {
	// Connected is every miner; Matched those the query selects, of which
	// Rows are Limit from Offset on.
	Connected int    `json:"connected"`
	Matched   int    `json:"matched"`
	Offset    int    `json:"offset"`
	Limit     int    `json:"limit"`
	Sort      string `json:"sort"`
	// Mining miners sent a share within NoShareFactor times their target
	// interval; Problems counts problem miners (of all connected).
	Mining   int `json:"mining"`
	Problems int `json:"problems"`
	// Groups are the largest problem groups first, then by name, at most
	// MaxMinerGroups of GroupCount.
	Groups     []MinerGroup `json:"groups"`
	GroupCount int          `json:"group_count"`
	Rows       []MinerRow   `json:"rows"`
	// SnapshotAt is when the miners were read.
	SnapshotAt time.Time `json:"snapshot_at"`
}

// Census counts the miners for /api/v1/status.
type Census struct {
	Connected int `json:"connected"`
	Mining    int `json:"mining"`
	Idle      int `json:"idle"`
	Problems  int `json:"problems"`
}

// MinerIndex answers miner queries from snapshots of a row source (the
// Server's MinerRows), annotating each row with its group and problems,
// and tracks reconnect loops across Observe calls. It is safe for
// concurrent use.
type MinerIndex struct {
	src func() []MinerRow

	mu      sync.Mutex
	rules   ProblemRules
	groupOf func(string) string
	snap    *minerSnapshot
	tracked map[trackKey]*reconnects
	looping map[trackKey]int // reconnects within the window, where > 0
	obsAt   time.Time
}

// trackKey is a worker name at an address (no port).
type trackKey struct{ worker, host string }

// reconnects is one worker name at one address, as Observe saw it. Times
// are Unix nanoseconds (0: none), so that one worker costs 80 bytes, not
// 240: the index holds one for every worker of a 100,000-miner farm.
type reconnects struct {
	conns int32    // connections at the latest observation
	next  int32    // the ring's next slot
	at    [8]int64 // the latest reconnects, a ring
	seen  int64
}

func (r *reconnects) count(since time.Time) int {
	n, s := 0, since.UnixNano()
	for _, t := range r.at {
		if t != 0 && t > s {
			n++
		}
	}
	return n
}

type minerSnapshot struct {
	at         time.Time
	rows       []MinerRow
	mining     int
	problems   int
	groups     []MinerGroup // sorted
	groupCount int
}

// NewMinerIndex returns an index over src. groupOf maps a worker name to
// its group (nil: no grouping).
func NewMinerIndex(src func() []MinerRow, rules ProblemRules, groupOf func(string) string) *MinerIndex {
	if groupOf == nil {
		groupOf = func(string) string { return "" }
	}
	return &MinerIndex{src: src, rules: rules.withDefaults(), groupOf: groupOf, tracked: map[trackKey]*reconnects{}}
}

// SetGroupBy changes the grouping rule; the next snapshot uses it.
func (x *MinerIndex) SetGroupBy(groupOf func(string) string) {
	if groupOf == nil {
		groupOf = func(string) string { return "" }
	}
	x.mu.Lock()
	x.groupOf = groupOf
	x.snap = nil
	x.mu.Unlock()
}

// Observe takes a snapshot now and counts reconnects: connections of a
// worker name from one address that started since the previous Observe
// and did not add to its connections. Call it at a steady interval (every
// few seconds); a loop faster than the interval still counts once per
// call.
func (x *MinerIndex) Observe(now time.Time) {
	rows := x.src()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.track(rows, now)
	x.snap = x.build(rows, now)
}

// track updates the reconnect counts; x.mu held.
func (x *MinerIndex) track(rows []MinerRow, now time.Time) {
	type obs struct{ conns, fresh int }
	cur := make(map[trackKey]obs, len(x.tracked))
	prevAt := x.obsAt
	x.obsAt = now
	for i := range rows {
		r := &rows[i]
		if r.Worker == "" {
			continue
		}
		k := keyOf(r)
		o := cur[k]
		o.conns++
		if !prevAt.IsZero() && now.Sub(prevAt).Seconds() > r.ConnectedSecs {
			o.fresh++ // connected since the previous observation
		}
		cur[k] = o
	}
	for k, o := range cur {
		t := x.tracked[k]
		if t == nil {
			if len(x.tracked) >= maxTracked {
				continue
			}
			t = &reconnects{conns: int32(o.conns)}
			x.tracked[k] = t
		} else if back := o.fresh - max(0, o.conns-int(t.conns)); back > 0 {
			for range min(back, len(t.at)) {
				t.at[t.next] = now.UnixNano()
				t.next = (t.next + 1) % int32(len(t.at))
			}
		}
		t.conns, t.seen = int32(o.conns), now.UnixNano()
	}
	since := now.Add(-x.rules.ReconnectWindow)
	x.looping = map[trackKey]int{}
	for k, t := range x.tracked {
		if _, ok := cur[k]; !ok {
			t.conns = 0 // gone: a comeback counts as a reconnect
			if t.seen < since.UnixNano() {
				delete(x.tracked, k)
				continue
			}
		}
		if n := t.count(since); n > 0 {
			x.looping[k] = n
		}
	}
}

func keyOf(r *MinerRow) trackKey {
	host := r.Remote
	if h, _, err := net.SplitHostPort(r.Remote); err == nil {
		host = h
	}
	return trackKey{r.Worker, host}
}

// build annotates rows and sums them up; x.mu held.
func (x *MinerIndex) build(rows []MinerRow, now time.Time) *minerSnapshot {
	s := &minerSnapshot{at: now, rows: rows}
	groups := map[string]*MinerGroup{}
	var g *MinerGroup // the previous row's: rows come sorted by worker name
	for i := range rows {
		r := &rows[i]
		r.Group = x.groupOf(r.Worker)
		if len(x.looping) > 0 && r.Worker != "" {
			r.Reconnects = x.looping[keyOf(r)]
		}
		mining := x.judge(r, now)
		if g == nil || g.Name != r.Group {
			if g = groups[r.Group]; g == nil {
				g = &MinerGroup{Name: r.Group}
				groups[r.Group] = g
			}
		}
		g.Miners++
		g.HashrateHs += r.HashrateHs
		g.Accepted += r.Accepted
		g.Rejected += r.Rejected
		if mining {
			g.Mining++
			s.mining++
		}
		if len(r.Problems) > 0 {
			g.Problems++
			s.problems++
		}
	}
	s.groupCount = len(groups)
	s.groups = make([]MinerGroup, 0, len(groups))
	for _, g := range groups {
		s.groups = append(s.groups, *g)
	}
	slices.SortFunc(s.groups, func(a, b MinerGroup) int {
		if c := cmp.Compare(b.Problems, a.Problems); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return s
}

// judge sets r.Problems and reports whether r is mining.
func (x *MinerIndex) judge(r *MinerRow, now time.Time) bool {
	rl := x.rules
	target := rl.Target.Seconds()
	if r.HashrateHs > 0 && r.Difficulty > 0 {
		target = max(target, r.Difficulty*hashesPerDifficulty/r.HashrateHs)
	}
	limit := rl.NoShareFactor * target
	var quiet float64 // seconds without a share
	if r.LastShare.IsZero() {
		quiet = r.ConnectedSecs
	} else {
		quiet = now.Sub(r.LastShare).Seconds()
	}
	mining := !r.LastShare.IsZero() && quiet <= limit
	var probs []string
	if quiet > limit {
		probs = append(probs, ProblemNoShares)
	}
	if r.Submitted >= rl.MinSubmits && float64(r.Rejected) > rl.MaxRejectRatio*float64(r.Submitted) {
		probs = append(probs, ProblemRejecting)
	}
	if r.Reconnects >= rl.MaxReconnects {
		probs = append(probs, ProblemReconnecting)
	}
	r.Problems = probs
	return mining
}

const hashesPerDifficulty = 4294967296

// snapshot returns a snapshot at most snapshotMaxAge old.
func (x *MinerIndex) snapshot(now time.Time) *minerSnapshot {
	x.mu.Lock()
	s := x.snap
	x.mu.Unlock()
	if s != nil && now.Sub(s.at) < snapshotMaxAge && !now.Before(s.at) {
		return s
	}
	rows := x.src()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.snap != nil && x.snap.at.After(now) {
		return x.snap // a newer one came in meanwhile
	}
	x.snap = x.build(rows, now)
	return x.snap
}

// Census counts the connected, mining, idle and problem miners.
func (x *MinerIndex) Census(now time.Time) Census {
	s := x.snapshot(now)
	return Census{Connected: len(s.rows), Mining: s.mining, Idle: len(s.rows) - s.mining, Problems: s.problems}
}

// Query answers q from a snapshot at most two seconds old.
func (x *MinerIndex) Query(q MinerQuery, now time.Time) MinerPage {
	s := x.snapshot(now)
	return s.query(q)
}

func (s *minerSnapshot) query(q MinerQuery) MinerPage {
	p := MinerPage{Connected: len(s.rows), Offset: q.Offset, Limit: q.Limit, Sort: q.Sort,
		Mining: s.mining, Problems: s.problems, GroupCount: s.groupCount, SnapshotAt: s.at}
	if p.Sort == "" {
		p.Sort = "problems"
	}
	p.Groups = s.groups[:min(len(s.groups), MaxMinerGroups)]
	if q.GroupSet {
		// The group asked for is listed even when it is not among the first.
		if i := slices.IndexFunc(s.groups, func(g MinerGroup) bool { return g.Name == q.Group }); i >= MaxMinerGroups {
			p.Groups = append(slices.Clip(p.Groups), s.groups[i])
		}
	}
	sel := make([]*MinerRow, 0, len(s.rows))
	for i := range s.rows {
		r := &s.rows[i]
		if (q.GroupSet && r.Group != q.Group) || (q.ProblemsOnly && len(r.Problems) == 0) {
			continue
		}
		if q.Q != "" && !containsFold(r.Worker, q.Q) && !containsFold(r.Remote, q.Q) && !containsFold(r.Agent, q.Q) {
			continue
		}
		sel = append(sel, r)
	}
	p.Matched = len(sel)
	key, desc := strings.CutPrefix(p.Sort, "-")
	by := minerOrder(key)
	order := func(a, b *MinerRow) int {
		c := by(a, b)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c = strings.Compare(a.Worker, b.Worker); c != 0 {
			return c
		}
		return strings.Compare(a.Remote, b.Remote)
	}
	sel = firstN(sel, q.Offset+q.Limit, order)
	p.Rows = []MinerRow{}
	for i := q.Offset; i < len(sel) && i < q.Offset+q.Limit; i++ {
		p.Rows = append(p.Rows, *sel[i])
	}
	return p
}

// firstN returns the first n rows of sel in order, sorted; sel is
// reordered. A page near the top of a long list costs one pass and a
// small sort rather than a sort of everything.
func firstN(sel []*MinerRow, n int, order func(a, b *MinerRow) int) []*MinerRow {
	if n >= len(sel)/8 {
		slices.SortFunc(sel, order)
		return sel[:min(n, len(sel))]
	}
	if n == 0 {
		return sel[:0]
	}
	// Keep the best n so far in top[:n], sorted; a row enters only when it
	// comes before the worst kept, which soon is rare.
	top := sel[:0:0]
	top = append(top, sel[:n]...)
	slices.SortFunc(top, order)
	for _, r := range sel[n:] {
		if order(r, top[n-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, r, order)
		copy(top[i+1:], top[i:n-1])
		top[i] = r
	}
	return top
}

// minerOrder compares two rows by key.
func minerOrder(key string) func(a, b *MinerRow) int {
	switch key {
	case "worker":
		return func(a, b *MinerRow) int { return strings.Compare(a.Worker, b.Worker) }
	case "group":
		return func(a, b *MinerRow) int { return strings.Compare(a.Group, b.Group) }
	case "remote":
		return func(a, b *MinerRow) int { return strings.Compare(a.Remote, b.Remote) }
	case "agent":
		return func(a, b *MinerRow) int { return strings.Compare(a.Agent, b.Agent) }
	case "difficulty":
		return func(a, b *MinerRow) int { return cmp.Compare(a.Difficulty, b.Difficulty) }
	case "hashrate":
		return func(a, b *MinerRow) int { return cmp.Compare(a.HashrateHs, b.HashrateHs) }
	case "accepted":
		return func(a, b *MinerRow) int { return cmp.Compare(a.Accepted, b.Accepted) }
	case "rejected":
		return func(a, b *MinerRow) int { return cmp.Compare(a.Rejected, b.Rejected) }
	case "reject_ratio":
		return func(a, b *MinerRow) int { return cmp.Compare(rejectRatio(a), rejectRatio(b)) }
	case "lost":
		return func(a, b *MinerRow) int { return cmp.Compare(a.Lost, b.Lost) }
	case "last_share":
		return func(a, b *MinerRow) int { return a.LastShare.Compare(b.LastShare) }
	case "connected":
		return func(a, b *MinerRow) int { return cmp.Compare(a.ConnectedSecs, b.ConnectedSecs) }
	case "lane":
		return func(a, b *MinerRow) int { return cmp.Compare(a.Lane, b.Lane) }
	}
	// problems: most first
	return func(a, b *MinerRow) int { return cmp.Compare(len(b.Problems), len(a.Problems)) }
}

func rejectRatio(r *MinerRow) float64 {
	if r.Submitted == 0 {
		return 0
	}
	return float64(r.Rejected) / float64(r.Submitted)
}

// containsFold reports whether sub is in s, ASCII letters compared without
// case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			a, b := s[i+j], sub[j]
			if a != b && lower(a) != lower(b) {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
