package config

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RouteSpec is one route ready to run: the miners it serves and its pools,
// resolved from a [[route]] table (or, in a file without any, the implicit
// DefaultRoute over every pool).
type RouteSpec struct {
	Name  string
	Index int // position among [[route]] tables; -1 for the implicit default route
	// Listen lists the route's listeners as written (host:port), in order.
	Listen []string
	// Workers are globs on the worker name (see GlobMatch); empty: every
	// worker on the route's listeners that no other route's pattern takes.
	Workers []string
	// Pools are ranked best first: the route's pools by priority, then in
	// the order the route names them, then the backups in their order.
	Pools []Pool
	// Backups is how many of Pools, at the end, are backups.
	Backups    int
	WorkerMode WorkerMode
}

// DefaultRoute is the name of the implicit route of a config without
// [[route]].
const DefaultRoute = "default"

// Tiers splits the route's ranked pools into tiers: each run of pools in
// Pools (before the backups) with the same priority is one tier, and each
// backup is a tier of its own. A tier whose pools have weights splits the
// route's work between them; in a tier without weights the pools are
// tried one after the other.
func (r RouteSpec) Tiers() [][]Pool {
	var tiers [][]Pool
	main := r.Pools[:len(r.Pools)-r.Backups]
	for start := 0; start < len(main); {
		end := start + 1
		for end < len(main) && main[end].Priority == main[start].Priority {
			end++
		}
		tiers = append(tiers, main[start:end:end])
		start = end
	}
	for i := len(main); i < len(r.Pools); i++ {
		tiers = append(tiers, r.Pools[i:i+1:i+1])
	}
	return tiers
}

// RouteSpecs resolves c's routes; c must be valid. With no [[route]] it
// is one route, DefaultRoute: every pool as ranked in c.Pools,
// Server.Listen and Server.WorkerMode.
func (c *Config) RouteSpecs() []RouteSpec {
	if len(c.Routes) == 0 {
		return []RouteSpec{{
			Name:       DefaultRoute,
			Index:      -1,
			Listen:     []string{c.Server.Listen},
			Pools:      slices.Clone(c.Pools),
			WorkerMode: c.Server.WorkerMode,
		}}
	}
	byName := make(map[string]Pool, len(c.Pools))
	for _, p := range c.Pools {
		if _, dup := byName[p.Name]; !dup {
			byName[p.Name] = p
		}
	}
	specs := make([]RouteSpec, 0, len(c.Routes))
	for _, r := range c.Routes {
		s := RouteSpec{
			Name:       r.Name,
			Index:      r.Index,
			Listen:     c.routeListen(r),
			Workers:    slices.Clone(r.Workers),
			WorkerMode: cmp.Or(r.WorkerMode, c.Server.WorkerMode),
		}
		for _, n := range r.Pools {
			if p, ok := byName[n]; ok {
				s.Pools = append(s.Pools, p)
			}
		}
		slices.SortStableFunc(s.Pools, func(a, b Pool) int { return cmp.Compare(a.Priority, b.Priority) })
		for _, n := range r.Backup {
			if p, ok := byName[n]; ok {
				s.Pools = append(s.Pools, p)
				s.Backups++
			}
		}
		specs = append(specs, s)
	}
	return specs
}

// routeListen is r's listeners: its own, or server.listen.
func (c *Config) routeListen(r Route) []string {
	if len(r.Listen) == 0 {
		return []string{c.Server.Listen}
	}
	return slices.Clone([]string(r.Listen))
}

// Listeners returns the distinct listen strings of all routes, in order of
// first appearance: the addresses to bind. Router.Match takes an index
// into it.
func (c *Config) Listeners() []string {
	var out []string
	for _, r := range c.RouteSpecs() {
		for _, l := range r.Listen {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// Warnings returns what in c is allowed but likely a mistake, in file
// order, with lines when c came from Load or Parse: a pool that no route
// names, and a listener whose routes all have worker patterns that leave
// some worker names without a route (those miners are refused at
// mining.authorize). A config without [[route]] has none.
func (c *Config) Warnings() []Problem {
	v := validator{src: c.src}
	if len(c.Routes) == 0 {
		return nil
	}
	named := make(map[string]bool)
	for _, r := range c.Routes {
		for _, n := range r.Pools {
			named[n] = true
		}
		for _, n := range r.Backup {
			named[n] = true
		}
	}
	for _, p := range c.Pools {
		if !named[p.Name] {
			v.add(poolKey(p.Index, ""), "%q is in no route: nothing will mine on it", p.Name)
		}
	}
	specs := c.RouteSpecs()
	for _, l := range c.Listeners() {
		first, catchAll := -1, false
		var patterns []string
		for i, s := range specs {
			if !slices.Contains(s.Listen, l) {
				continue
			}
			if first < 0 {
				first = i
			}
			if len(s.Workers) == 0 {
				catchAll = true
			}
			patterns = append(patterns, s.Workers...)
		}
		if first < 0 || catchAll || globsCoverAll(patterns) {
			continue
		}
		v.add(routeKey(specs[first].Index, "workers"), "%s has no route for a worker matching none of %s: such a miner is refused at mining.authorize; a route on %s without workers takes them",
			l, quoteList(patterns), l)
	}
	sortProblems(v.problems)
	return v.problems
}

// quoteList quotes each string and joins them with ", ".
func quoteList(ss []string) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

// globsCoverAll reports whether every name, the empty one too, matches one
// of patterns. Only a pattern without literals can match a name made of a
// character no pattern names, and such a pattern matches by length alone:
// k '?' and no '*' matches the names of length k, with a '*' those of
// length k or more. So the patterns cover every name exactly when those
// without literals cover every length.
func globsCoverAll(patterns []string) bool {
	minOpen := -1 // fewest '?' of a literal-free pattern with a '*'
	exact := make(map[int]bool)
	for _, p := range patterns {
		if strings.Trim(p, "*?") != "" {
			continue
		}
		k := strings.Count(p, "?")
		if strings.Contains(p, "*") {
			if minOpen < 0 || k < minOpen {
				minOpen = k
			}
		} else {
			exact[k] = true
		}
	}
	if minOpen < 0 {
		return false
	}
	for k := range minOpen {
		if !exact[k] {
			return false
		}
	}
	return true
}

// Router matches a miner to its route: by the listener it connected to (an
// index into Config.Listeners) and its worker name. On each listener the
// routes with worker patterns come first, in route order, then the
// route without patterns (the catch-all), if any. It is immutable and
// safe for concurrent use; Match does not allocate.
type Router struct {
	listeners []listenerRoutes
}

// listenerRoutes is what one listener's miners can match.
type listenerRoutes struct {
	patterns []routeGlob // in route order, then in each route's order
	catchAll int         // route index; -1 for none
}

// routeGlob is one worker pattern of a route, with its literal prefix and
// suffix split off, so that most names that do not match are refused by
// two comparisons.
type routeGlob struct {
	route          int
	prefix, suffix string // up to the first '*' or '?', from after the last
	middle         string // the pattern between them: "" when it has no wildcard
}

func newRouteGlob(route int, w string) routeGlob {
	first, last := strings.IndexAny(w, "*?"), strings.LastIndexAny(w, "*?")
	// NOTE: a literal U+FFFD matches any byte that is not UTF-8 (see
	// GlobMatch), which a comparison of bytes would miss.
	if first < 0 && !strings.ContainsRune(w, utf8.RuneError) {
		return routeGlob{route: route, prefix: w}
	}
	if first < 0 || strings.ContainsRune(w[:first], utf8.RuneError) || strings.ContainsRune(w[last+1:], utf8.RuneError) {
		return routeGlob{route: route, middle: w}
	}
	return routeGlob{route: route, prefix: w[:first], suffix: w[last+1:], middle: w[first : last+1]}
}

// match is GlobMatch(the pattern, w).
func (g *routeGlob) match(w string) bool {
	if len(w) < len(g.prefix)+len(g.suffix) || !strings.HasPrefix(w, g.prefix) || !strings.HasSuffix(w, g.suffix) {
		return false
	}
	mid := w[len(g.prefix) : len(w)-len(g.suffix)]
	switch g.middle {
	case "":
		return mid == ""
	case "*":
		return true
	}
	return GlobMatch(g.middle, mid)
}

// NewRouter builds the router for routes served on listeners, normally
// c.Listeners() and c.RouteSpecs() of a valid config. A route's listen
// string not in listeners is ignored; when two routes on a listener have
// no patterns (which Validate refuses), the first is the catch-all.
func NewRouter(listeners []string, routes []RouteSpec) *Router {
	r := &Router{listeners: make([]listenerRoutes, len(listeners))}
	for i := range r.listeners {
		r.listeners[i].catchAll = -1
	}
	for ri, s := range routes {
		for li, l := range listeners {
			if !slices.Contains(s.Listen, l) {
				continue
			}
			lr := &r.listeners[li]
			if len(s.Workers) == 0 {
				if lr.catchAll < 0 {
					lr.catchAll = ri
				}
				continue
			}
			for _, w := range s.Workers {
				lr.patterns = append(lr.patterns, newRouteGlob(ri, w))
			}
		}
	}
	return r
}

// Match returns the index, into the routes given to NewRouter, of the route
// for a miner on listener (an index into the listeners given to NewRouter)
// authorizing as worker: the first route with a pattern worker matches,
// else the listener's catch-all. ok is false when no route takes it (or
// listener is out of range): the miner is to be refused.
func (r *Router) Match(listener int, worker string) (route int, ok bool) {
	if listener < 0 || listener >= len(r.listeners) {
		return -1, false
	}
	lr := &r.listeners[listener]
	for i := range lr.patterns {
		if g := &lr.patterns[i]; g.match(worker) {
			return g.route, true
		}
	}
	if lr.catchAll >= 0 {
		return lr.catchAll, true
	}
	return -1, false
}

// ListenerFor returns the index of the listener, among bound (the
// addresses the listeners of Config.Listeners were bound to, in that
// order), that a connection with local address local was accepted on: the
// one bound to local's IP and port, else one bound to local's port on
// every address (0.0.0.0 or [::]). A wildcard listener reports the
// connection's own local IP, not the address it was bound to, hence this
// search; an IPv4 miner on a dual-stack [::] listener has an IPv4-mapped
// address, which matches either form.
func ListenerFor(bound []netip.AddrPort, local netip.AddrPort) (int, bool) {
	ip := local.Addr().Unmap()
	wild := -1
	for i, b := range bound {
		if b.Port() != local.Port() {
			continue
		}
		switch a := b.Addr().Unmap(); {
		case a == ip:
			return i, true
		case a.IsUnspecified() && wild < 0:
			wild = i
		}
	}
	return wild, wild >= 0
}

// GlobMatch reports whether name matches pattern: '*' matches any run of
// characters (none too), '?' exactly one character, any other character
// itself; there are no escapes and no classes. Characters are runes: a
// byte that is not UTF-8 counts as one character, U+FFFD.
func GlobMatch(pattern, name string) bool {
	// NOTE: on a mismatch after a '*', only the latest '*' needs to take
	// one more character: any earlier '*' is already matched as far as the
	// text between them allows. This makes the match O(len(pattern) ×
	// len(name)) at worst, without recursion.
	p, n := 0, 0
	star, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				star, starN = p, n
				p++
				continue
			case c == '?':
				p++
				n += runeLen(name[n:])
				continue
			case c < utf8.RuneSelf && name[n] < utf8.RuneSelf:
				if c == name[n] {
					p++
					n++
					continue
				}
			default:
				pr, pw := utf8.DecodeRuneInString(pattern[p:])
				nr, nw := utf8.DecodeRuneInString(name[n:])
				if pr == nr {
					p += pw
					n += nw
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		starN += runeLen(name[starN:])
		p, n = star+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func runeLen(s string) int {
	if s[0] < utf8.RuneSelf {
		return 1
	}
	_, w := utf8.DecodeRuneInString(s)
	return w
}

// exampleRune is the character GlobsOverlap puts where both patterns take
// any character.
const exampleRune = 'x'

// GlobsOverlap reports whether some name matches both patterns (see
// GlobMatch), and gives the shortest such name, preferring one that is not
// empty. It is exact: it searches the product of the two patterns'
// automata, whose states are pairs of positions in a and in b, breadth
// first by the length of the name read so far.
func GlobsOverlap(a, b string) (example string, ok bool) {
	pa, pb := []rune(a), []rune(b)
	na, nb := len(pa), len(pb)
	// A state is (i, j, f): i runes of a and j of b matched, f = 1 once
	// the name has a character.
	id := func(i, j, f int) int { return (i*(nb+1)+j)*2 + f }
	states := (na + 1) * (nb + 1) * 2
	dist := make([]int, states)
	from := make([]int, states)
	char := make([]rune, states) // the character read into the state; -1 for none
	for s := range dist {
		dist[s] = -1
	}
	// 0-1 breadth-first search: a deque of states, those reached without
	// reading a character pushed in front.
	deque := make([]int, 0, 2*states)
	head := states // deque[head:] is the queue; room to push in front
	deque = deque[:states]
	start := id(0, 0, 0)
	dist[start], from[start] = 0, -1
	deque = append(deque, start)
	visit := func(s, t, d int, c rune) {
		if dist[t] >= 0 && dist[t] <= d {
			return
		}
		dist[t], from[t], char[t] = d, s, c
		if c < 0 {
			head--
			deque[head] = t
		} else {
			deque = append(deque, t)
		}
	}
	done := make([]bool, states)
	for head < len(deque) {
		s := deque[head]
		head++
		if done[s] {
			continue
		}
		done[s] = true
		f := s % 2
		i, j := s/2/(nb+1), s/2%(nb+1)
		d := dist[s]
		if i < na && pa[i] == '*' {
			visit(s, id(i+1, j, f), d, -1)
		}
		if j < nb && pb[j] == '*' {
			visit(s, id(i, j+1, f), d, -1)
		}
		if i == na || j == nb {
			continue
		}
		// One character, read by both: a literal must be that literal; a
		// '?' moves on; a '*' stays.
		ca, cb := pa[i], pb[j]
		var c rune
		switch {
		case ca != '*' && ca != '?' && cb != '*' && cb != '?':
			if ca != cb {
				continue
			}
			c = ca
		case ca != '*' && ca != '?':
			c = ca
		case cb != '*' && cb != '?':
			c = cb
		default:
			c = exampleRune
		}
		ni, nj := i+1, j+1
		if ca == '*' {
			ni = i
		}
		if cb == '*' {
			nj = j
		}
		visit(s, id(ni, nj, 1), d+1, c)
	}
	end := id(na, nb, 1)
	if dist[end] < 0 {
		end = id(na, nb, 0)
		if dist[end] < 0 {
			return "", false
		}
	}
	var rs []rune
	for s := end; s != start; s = from[s] {
		if char[s] >= 0 {
			rs = append(rs, char[s])
		}
	}
	slices.Reverse(rs)
	return string(rs), true
}
