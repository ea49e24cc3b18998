package config

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every value and how values fit together. It returns nil,
// or an *Error listing every problem.
func (c *Config) Validate() error { return asError(c.Problems()) }

// Problems returns everything wrong with c's values, in file order, with
// lines when c came from Load or Parse. It is what Validate reports; a
// `switchyard check` command can print it as is.
func (c *Config) Problems() []Problem {
	v := validator{src: c.src}
	v.server(&c.Server)
	v.difficulty(&c.Difficulty)
	v.failover(&c.Failover, len(c.Pools))
	v.pools(c.Pools)
	listeners := v.routes(c)
	v.weights(c)
	v.metrics(&c.Metrics, listeners)
	v.log(&c.Log)
	sortProblems(v.problems)
	return v.problems
}

type validator struct {
	src      *source
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{
		File:    v.src.file(),
		Line:    v.src.line(key),
		Key:     key,
		Message: fmt.Sprintf(format, args...),
	})
}

// check adds err, if any, as the problem with key.
func (v *validator) check(key string, err error) {
	if err != nil {
		v.add(key, "%v", err)
	}
}

func (v *validator) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, "must be from %d to %d (got %d)", lo, hi, n)
	}
}

func (v *validator) noLimit(key string, n int) {
	if n < 0 {
		v.add(key, "must be 0 (no limit) or more (got %d)", n)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.add(key, "must be more than 0s (got %q)", d)
	}
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	list := strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
	v.add(key, "must be %s (got %q)", list, got)
}

// Limits on values.
const (
	MinLineBytes         = 256     // smallest server.max_line_bytes
	MaxLineBytes         = 1 << 20 // largest server.max_line_bytes
	MinPendingWriteBytes = 4096    // smallest server.max_pending_write_bytes: a few notify lines
	MaxExtranonce1Size   = 4       // largest server.extranonce1_size
	// A miner's extranonce2 size: cgminer-family firmware refuses less than
	// 2 bytes at subscribe and never submits a share with more than 8.
	MinMinerExtranonce2Size = 2
	MaxMinerExtranonce2Size = 8
	MaxRejectWindow         = 100000 // largest failover.reject_window
)

func (v *validator) server(s *Server) {
	if s.Listen == "" {
		v.add("server.listen", `required, such as "0.0.0.0:3333"`)
	} else {
		v.check("server.listen", checkHostPort(s.Listen, false, "0.0.0.0:3333"))
	}
	v.noLimit("server.max_connections", s.MaxConnections)
	v.noLimit("server.max_connections_per_ip", s.MaxConnectionsPerIP)
	v.intRange("server.max_line_bytes", s.MaxLineBytes, MinLineBytes, MaxLineBytes)
	v.positive("server.auth_timeout", s.AuthTimeout)
	v.noLimit("server.max_submits_per_second", s.MaxSubmitsPerSecond)
	if s.MaxPendingWriteBytes < MinPendingWriteBytes {
		v.add("server.max_pending_write_bytes", "must be at least %d (got %d)", MinPendingWriteBytes, s.MaxPendingWriteBytes)
	}
	v.intRange("server.extranonce1_size", s.Extranonce1Size, 1, MaxExtranonce1Size)
	if n := s.MinPoolExtranonce2Size; s.Extranonce1Size >= 1 && s.Extranonce1Size <= MaxExtranonce1Size {
		lo, hi := s.Extranonce1Size+MinMinerExtranonce2Size, s.Extranonce1Size+MaxMinerExtranonce2Size
		if n < lo || n > hi {
			v.add("server.min_pool_extranonce2_size", "must be from %d to %d with extranonce1_size = %d: miners get it minus extranonce1_size, and firmware needs 2 to 8 bytes (got %d)",
				lo, hi, s.Extranonce1Size, n)
		}
	}
	v.oneOf("server.worker_mode", string(s.WorkerMode), string(WorkerModeAggregate), string(WorkerModePerWorker))
	if s.EventLoops < 0 {
		v.add("server.event_loops", "must be 0 (one per CPU) or more (got %d)", s.EventLoops)
	}
}

func (v *validator) difficulty(d *Difficulty) {
	ok := func(f float64) bool { return f > 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }
	valid := true
	for _, f := range []struct {
		key string
		val float64
	}{{"difficulty.initial", d.Initial}, {"difficulty.min", d.Min}, {"difficulty.max", d.Max}} {
		if !ok(f.val) {
			v.add(f.key, "must be a number more than 0 (got %s)", fmtFloat(f.val))
			valid = false
		}
	}
	if valid {
		if d.Min > d.Max {
			v.add("difficulty.min", "must not be more than max (%s) (got %s)", fmtFloat(d.Max), fmtFloat(d.Min))
		} else if d.Initial < d.Min || d.Initial > d.Max {
			v.add("difficulty.initial", "must be within min and max, [%s, %s] (got %s)", fmtFloat(d.Min), fmtFloat(d.Max), fmtFloat(d.Initial))
		}
	}
	v.positive("difficulty.target_share_interval", d.TargetShareInterval)
	v.positive("difficulty.retarget_interval", d.RetargetInterval)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (v *validator) failover(f *Failover, pools int) {
	v.positive("failover.dial_timeout", f.DialTimeout)
	v.positive("failover.submit_timeout", f.SubmitTimeout)
	// Above submit_timeout it is submit_timeout: a short submit_timeout
	// set alone turns the learning off rather than failing.
	v.positive("failover.submit_timeout_min", f.SubmitTimeoutMin)
	v.positive("failover.job_timeout", f.JobTimeout)
	v.positive("failover.keepalive", f.Keepalive)
	v.positive("failover.user_timeout", f.UserTimeout)
	if f.FailbackAfter < 0 {
		v.add("failover.failback_after", "must be 0s or more (got %q)", f.FailbackAfter)
	}
	if pools > 0 && (f.Standby < 0 || f.Standby > pools-1) {
		v.add("failover.standby", "must be from 0 to %d, one less than the number of pools (got %d)", pools-1, f.Standby)
	} else if f.Standby < 0 {
		v.add("failover.standby", "must be 0 or more (got %d)", f.Standby)
	}
	v.oneOf("failover.when_all_down", string(f.WhenAllDown), string(WhenAllDownHold), string(WhenAllDownDisconnect))
	if !(f.MaxRejectRatio > 0 && f.MaxRejectRatio <= 1) {
		v.add("failover.max_reject_ratio", "must be more than 0 and at most 1 (got %s)", fmtFloat(f.MaxRejectRatio))
	}
	v.intRange("failover.reject_window", f.RejectWindow, 1, MaxRejectWindow)
	v.positive("failover.backoff_min", f.BackoffMin)
	if f.BackoffMax < f.BackoffMin {
		v.add("failover.backoff_max", "must be at least backoff_min (%s) (got %q)", f.BackoffMin, f.BackoffMax)
	}
}

var poolName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// MaxInterfaceName is the longest interface name Linux allows (IFNAMSIZ-1).
const MaxInterfaceName = 15

func (v *validator) pools(pools []Pool) {
	if len(pools) == 0 {
		v.add("pool", "at least one [[pool]] is required")
		return
	}
	// In file order, so that the later of two same names is the one reported.
	byIndex := slices.SortedStableFunc(slices.Values(pools), func(a, b Pool) int { return cmp.Compare(a.Index, b.Index) })
	names := make(map[string]int) // name → Index
	for i := range byIndex {
		p := &byIndex[i]
		key := func(k string) string { return "pool[" + strconv.Itoa(p.Index) + "]." + k }

		switch first, dup := names[p.Name]; {
		case p.Name == "":
			v.add(key("name"), `required: a unique name such as "primary", used in logs and metrics`)
		case !poolName.MatchString(p.Name):
			v.add(key("name"), "must be 1 to 64 of A-Z a-z 0-9 _ . - (got %q)", p.Name)
		case dup:
			v.add(key("name"), "%q is already the name of pool[%d]", p.Name, first)
		default:
			names[p.Name] = p.Index
		}

		ep, err := ParseURL(p.URL)
		v.check(key("url"), err)
		if p.User == "" {
			v.add(key("user"), `required: the pool account, such as "account.farm1"`)
		}
		if p.Weight < 0 {
			v.add(key("weight"), "must be 0 (off) or more (got %d)", p.Weight)
		}
		if p.Bind != "" {
			if _, err := netip.ParseAddr(p.Bind); err != nil {
				v.add(key("bind"), "must be a local IP address, such as \"192.0.2.10\" (got %q)", p.Bind)
			}
		}
		if p.Interface != "" && (len(p.Interface) > MaxInterfaceName || strings.ContainsAny(p.Interface, "/ \t:") || p.Interface == "." || p.Interface == "..") {
			v.add(key("interface"), "must be a network interface name such as \"wwan0\", at most %d characters (got %q)", MaxInterfaceName, p.Interface)
		}
		if p.SOCKS5 != "" {
			v.check(key("socks5"), checkHostPort(p.SOCKS5, true, "127.0.0.1:1080"))
		}
		v.poolTLS(p, ep, err == nil, key)
	}
}

func (v *validator) poolTLS(p *Pool, ep Endpoint, urlOK bool, key func(string) string) {
	if urlOK && !ep.TLS {
		for _, o := range []struct {
			name string
			set  bool
		}{{"tls_skip_verify", p.TLSSkipVerify}, {"tls_ca_file", p.TLSCAFile != ""}, {"tls_pin_sha256", p.TLSPinSHA256 != ""}} {
			if o.set {
				v.add(key(o.name), "only applies to %s:// or %s:// urls (url is %s://)", SchemeSSL, SchemeTLS, ep.Scheme)
			}
		}
		return
	}
	if p.TLSCAFile != "" {
		if p.TLSSkipVerify {
			v.add(key("tls_ca_file"), "has no effect with tls_skip_verify = true; remove one (use tls_pin_sha256 to trust one self-signed key)")
		} else if pem, err := os.ReadFile(p.TLSCAFile); err != nil {
			v.add(key("tls_ca_file"), "cannot read: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.add(key("tls_ca_file"), "no PEM certificate found in %q", p.TLSCAFile)
		}
	}
	if _, err := ParsePin(p.TLSPinSHA256); err != nil {
		v.add(key("tls_pin_sha256"), "%v", err)
	}
}

func (v *validator) metrics(m *Metrics, listeners []listenAt) {
	if m.Listen != "" {
		if err := checkHostPort(m.Listen, false, "127.0.0.1:9333"); err != nil {
			v.check("metrics.listen", err)
		} else {
			for _, l := range listeners {
				if sameAddr(m.Listen, l.addr) {
					v.add("metrics.listen", "must differ from %s (%q) (got %q)", l.key, l.addr, m.Listen)
					break
				}
			}
		}
	}
	basic := m.BasicAuthUser != "" || m.BasicAuthPassword != ""
	switch {
	case m.BearerToken != "" && basic:
		v.add("metrics.bearer_token", "set either bearer_token or basic_auth_user and basic_auth_password, not both")
	case m.BasicAuthUser != "" && m.BasicAuthPassword == "":
		v.add("metrics.basic_auth_password", "required with basic_auth_user")
	case m.BasicAuthUser == "" && m.BasicAuthPassword != "":
		v.add("metrics.basic_auth_user", "required with basic_auth_password")
	}
	if _, err := m.GroupBy.Func(); err != nil {
		v.check("metrics.group_by", err)
	}
}

// sameAddr reports whether listening on a and on b would collide: same
// non-zero port, and the same host or a wildcard on either side.
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

func (v *validator) log(l *Log) {
	v.oneOf("log.level", l.Level, "trace", "debug", "info", "warn", "error")
	v.oneOf("log.format", l.Format, LogFormatConsole, LogFormatJSON)
}

// poolKey is the key of pool[index] ("pool[1]"), or of its key k
// ("pool[1].url").
func poolKey(index int, k string) string {
	if k == "" {
		return "pool[" + strconv.Itoa(index) + "]"
	}
	return "pool[" + strconv.Itoa(index) + "]." + k
}

// routeKey is the key of route[index], or of its key k.
func routeKey(index int, k string) string {
	if k == "" {
		return "route[" + strconv.Itoa(index) + "]"
	}
	return "route[" + strconv.Itoa(index) + "]." + k
}

// listKey is the key of element k of a Strings of n elements at key: key
// itself when it holds one string, as it is then most often written.
func listKey(key string, n, k int) string {
	if n == 1 {
		return key
	}
	return key + "[" + strconv.Itoa(k) + "]"
}

// listenAt is one miner listener and the key that first names it.
type listenAt struct {
	addr, key string
}

var routeName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// routes checks the [[route]] tables and returns the miner listeners:
// server.listen alone without routes; with routes, every route's, in
// order of first appearance.
func (v *validator) routes(c *Config) []listenAt {
	server := listenAt{c.Server.Listen, "server.listen"}
	if len(c.Routes) == 0 {
		return []listenAt{server}
	}
	pools := make(map[string]bool)
	var poolList []string // in file order
	for _, p := range slices.SortedStableFunc(slices.Values(c.Pools), func(a, b Pool) int { return cmp.Compare(a.Index, b.Index) }) {
		if p.Name != "" && !pools[p.Name] {
			pools[p.Name] = true
			poolList = append(poolList, p.Name)
		}
	}
	var listeners []listenAt
	addListener := func(l listenAt) {
		if !slices.ContainsFunc(listeners, func(o listenAt) bool { return o.addr == l.addr }) {
			listeners = append(listeners, l)
		}
	}
	names := make(map[string]int) // name → Index
	for _, r := range c.Routes {
		key := func(k string) string { return routeKey(r.Index, k) }
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			v.add(key("name"), `required: a unique name such as "alpha", the route label in logs and metrics`)
		case !routeName.MatchString(r.Name):
			v.add(key("name"), "must be 1 to 32 of a-z 0-9 _ - (got %q)", r.Name)
		case dup:
			v.add(key("name"), "%q is already the name of route[%d]", r.Name, first)
		default:
			names[r.Name] = r.Index
		}

		if len(r.Listen) == 0 {
			addListener(server)
		}
		for k, l := range r.Listen {
			lk := listKey(key("listen"), len(r.Listen), k)
			if err := checkHostPort(l, false, "0.0.0.0:3334"); err != nil {
				v.check(lk, err)
				continue
			}
			addListener(listenAt{l, lk})
		}

		for k, w := range r.Workers {
			v.check(key("workers["+strconv.Itoa(k)+"]"), checkGlob(w))
		}

		if len(r.Pools) == 0 {
			example := "primary"
			if len(poolList) > 0 {
				example = poolList[0]
			}
			v.add(key("pools"), `required: at least one [[pool]] name, such as [%q]`, example)
		}
		inRoute := make(map[string]string) // pool name → the key naming it
		routePool := func(k, name string) {
			switch first, dup := inRoute[name]; {
			case !pools[name]:
				v.add(k, "no [[pool]] named %q (pools: %s)", name, strings.Join(poolList, ", "))
			case dup:
				v.add(k, "%q is already in this route, as %s", name, first)
			default:
				inRoute[name] = k
			}
		}
		for k, n := range r.Pools {
			routePool(key("pools["+strconv.Itoa(k)+"]"), n)
		}
		for k, n := range r.Backup {
			routePool(listKey(key("backup"), len(r.Backup), k), n)
		}
		if r.WorkerMode != "" {
			v.oneOf(key("worker_mode"), string(r.WorkerMode), string(WorkerModeAggregate), string(WorkerModePerWorker))
		}
	}

	for i, b := range listeners {
		for _, a := range listeners[:i] {
			if sameAddr(a.addr, b.addr) {
				v.add(b.key, "%q and %q (%s) cannot both be bound: the same port, and one of them is every address; write the same address in every route (got %q)",
					b.addr, a.addr, a.key, b.addr)
				break
			}
		}
	}
	v.overlaps(c, listeners)
	return listeners
}

// checkGlob checks a worker pattern (see GlobMatch).
func checkGlob(w string) error {
	switch {
	case w == "":
		return errors.New(`must not be empty: a pattern such as "alpha.*" ('*' any run of characters, '?' one)`)
	case strings.Contains(w, "["):
		return fmt.Errorf(`'[' is not supported: '*' matches any run of characters, '?' one, anything else itself (got %q)`, w)
	}
	return nil
}

// overlaps checks that on every listener at most one route takes a
// worker name: no two routes without workers (two catch-alls), no two
// routes with patterns that one name matches. A route with patterns and
// one without share a listener well: patterns come first.
func (v *validator) overlaps(c *Config, listeners []listenAt) {
	reported := make(map[[2]int]bool) // route pairs, by position in c.Routes
	for _, l := range listeners {
		var on []int
		for i, r := range c.Routes {
			if slices.Contains(c.routeListen(r), l.addr) {
				on = append(on, i)
			}
		}
		catchAll := -1
		for x, i := range on {
			r := c.Routes[i]
			if len(r.Workers) == 0 {
				if catchAll < 0 {
					catchAll = i
				} else if !reported[[2]int{catchAll, i}] {
					reported[[2]int{catchAll, i}] = true
					first := c.Routes[catchAll]
					v.add(routeKey(r.Index, "workers"), "not set, so route[%d] (%s) takes every worker on %s, as route[%d] (%s) already does: set workers on one of them, or give one its own listen",
						r.Index, r.Name, l.addr, first.Index, first.Name)
				}
				continue
			}
			for _, j := range on[:x] {
				q := c.Routes[j]
				if len(q.Workers) == 0 || reported[[2]int{j, i}] {
					continue
				}
				for a, pa := range q.Workers {
					for b, pb := range r.Workers {
						if checkGlob(pa) != nil || checkGlob(pb) != nil {
							continue
						}
						if ex, ok := GlobsOverlap(pa, pb); ok {
							reported[[2]int{j, i}] = true
							v.add(routeKey(q.Index, "workers["+strconv.Itoa(a)+"]"), "%q overlaps route[%d].workers[%d] %q on %s (both match %q)",
								pa, r.Index, b, pb, l.addr, ex)
						}
					}
				}
			}
		}
	}
}

// weights checks that the pools of one priority in a route (without
// routes: among all pools) either all have a weight, to split the work,
// or none has. Backups are not counted: each is a tier of its own.
func (v *validator) weights(c *Config) {
	type tier struct {
		route string // "" without routes; else " in route[i] (name)"
		pools []Pool
	}
	var tiers []tier
	group := func(route string, ps []Pool) {
		var prios []int
		by := make(map[int][]Pool)
		for _, p := range ps {
			if _, ok := by[p.Priority]; !ok {
				prios = append(prios, p.Priority)
			}
			by[p.Priority] = append(by[p.Priority], p)
		}
		for _, pr := range prios {
			tiers = append(tiers, tier{route, by[pr]})
		}
	}
	if len(c.Routes) == 0 {
		group("", c.Pools)
	} else {
		byName := make(map[string]Pool)
		for _, p := range c.Pools {
			if _, dup := byName[p.Name]; !dup {
				byName[p.Name] = p
			}
		}
		for _, r := range c.Routes {
			var ps []Pool
			for _, n := range r.Pools {
				if p, ok := byName[n]; ok && !slices.ContainsFunc(ps, func(o Pool) bool { return o.Index == p.Index }) {
					ps = append(ps, p)
				}
			}
			group(fmt.Sprintf(" in route[%d] (%s)", r.Index, r.Name), ps)
		}
	}
	reported := make(map[int]bool) // pool Index
	for _, t := range tiers {
		var weighted []string
		for _, p := range t.pools {
			if p.Weight > 0 {
				weighted = append(weighted, fmt.Sprintf("%s (%d)", p.Name, p.Weight))
			}
		}
		if len(weighted) == 0 {
			continue
		}
		list := strings.Join(weighted, " and ")
		if len(weighted) > 2 {
			list = strings.Join(weighted[:len(weighted)-1], ", ") + " and " + weighted[len(weighted)-1]
		}
		zero := slices.SortedFunc(slices.Values(t.pools), func(a, b Pool) int { return cmp.Compare(a.Index, b.Index) })
		for _, p := range zero {
			if p.Weight != 0 || reported[p.Index] {
				continue
			}
			reported[p.Index] = true
			v.add(poolKey(p.Index, "weight"), "must be more than 0, like %s of the same priority (%d)%s: the pools of a priority all have a weight (a split) or none has (failover in order) (got 0)",
				list, p.Priority, t.route)
		}
	}
}
