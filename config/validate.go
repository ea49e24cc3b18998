package config

import (
	"cmp"
	"crypto/x509"
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
	v.metrics(&c.Metrics, c.Server.Listen)
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

func (v *validator) metrics(m *Metrics, serverListen string) {
	if m.Listen != "" {
		if err := checkHostPort(m.Listen, false, "127.0.0.1:9333"); err != nil {
			v.check("metrics.listen", err)
		} else if sameAddr(m.Listen, serverListen) {
			v.add("metrics.listen", "must differ from server.listen (%q) (got %q)", serverListen, m.Listen)
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
