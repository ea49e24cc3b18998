// Package config holds switchyard's configuration: the TOML schema, its
// defaults, and validation that names every problem by key and line.
//
// Load and Parse start from Default, decode the file over it, reject keys the
// schema does not know, and validate the result. They report every problem at
// once, each as a Problem naming file, line, key and what was expected:
//
//	switchyard.toml:14: pool[1].url: scheme must be stratum+tcp, stratum+ssl or stratum+tls (got "http")
//
// config.example.toml at the repository root documents every key.
package config

import "time"

// Config is the whole configuration file. The toml tags are the file's keys.
type Config struct {
	Server     Server     `toml:"server"`
	Difficulty Difficulty `toml:"difficulty"`
	Failover   Failover   `toml:"failover"`
	// Pools are the [[pool]] tables ranked best first: by Priority (lower is
	// better), then by their order in the file. Pool.Index keeps the order in
	// the file, which messages use ("pool[1]").
	Pools []Pool `toml:"pool"`
	// Routes are the [[route]] tables in file order: each serves the miners
	// of some listeners and worker names from its own pools. A file without
	// any has one implicit route, DefaultRoute, over every pool (see
	// RouteSpecs).
	Routes  []Route `toml:"route"`
	Metrics Metrics `toml:"metrics"`
	Log     Log     `toml:"log"`

	// src locates keys in the file the Config was parsed from; nil for a
	// Config built in code.
	src *source
}

// Server is the miner-facing side: the listener and the limits applied to
// every miner connection.
type Server struct {
	// Listen is the miner-facing host:port.
	Listen string `toml:"listen"`
	// ProxyProtocol makes every miner connection start with a PROXY
	// protocol header (v1 or v2), as a load balancer such as HAProxy sends
	// with send-proxy or send-proxy-v2: the miner's own address in it is
	// the one logs, /api/v1/miners and MaxConnectionsPerIP see. A
	// connection without a valid header is closed. Only for a listener
	// that nothing but the load balancer can reach.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// MaxConnections caps miner connections in total; 0 means no limit.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP caps miner connections from one IP; 0 means no limit.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxLineBytes is the longest line a miner may send, in bytes.
	MaxLineBytes int `toml:"max_line_bytes"`
	// AuthTimeout is how long a new connection has to subscribe and authorize.
	AuthTimeout Duration `toml:"auth_timeout"`
	// MaxSubmitsPerSecond caps mining.submit per connection; 0 means no limit.
	MaxSubmitsPerSecond int `toml:"max_submits_per_second"`
	// MaxPendingWriteBytes is how many bytes may wait to be written to one
	// miner; a miner that stops reading beyond this is closed.
	MaxPendingWriteBytes int `toml:"max_pending_write_bytes"`
	// Extranonce1Size is P, the bytes of the per-miner prefix that switchyard
	// hands each miner as its extranonce1 (see DESIGN.md).
	Extranonce1Size int `toml:"extranonce1_size"`
	// MinPoolExtranonce2Size is the smallest pool extranonce2 size
	// switchyard works with. It fixes every miner's extranonce2 size at
	// MinPoolExtranonce2Size - Extranonce1Size for the connection's life, so
	// that any pool at least this size can take over without a reconnect;
	// smaller pools are refused.
	MinPoolExtranonce2Size int `toml:"min_pool_extranonce2_size"`
	// WorkerMode says how miners' worker names reach the pool.
	WorkerMode WorkerMode `toml:"worker_mode"`
	// EventLoops is the number of gnet event loops; 0 means one per CPU.
	EventLoops int `toml:"event_loops"`
}

// DefaultMinPoolExtranonce2Size is the pool extranonce2 size every common
// pool offers (public-pool's is 4; ckpool, NiceHash and most others offer
// 8): with the default 2-byte prefix, miners get 2 bytes of extranonce2.
const DefaultMinPoolExtranonce2Size = 4

// MinerExtranonce2Size is the extranonce2 size every miner is given.
func (s Server) MinerExtranonce2Size() int { return s.MinPoolExtranonce2Size - s.Extranonce1Size }

// WorkerMode is Server.WorkerMode.
type WorkerMode string

// Worker modes.
const (
	// WorkerModeAggregate submits every share under the pool's configured
	// user: the pool sees one worker per pool entry.
	WorkerModeAggregate WorkerMode = "aggregate"
	// WorkerModePerWorker keeps miners' worker names visible at the pool.
	WorkerModePerWorker WorkerMode = "per-worker"
)

// Difficulty configures the share difficulty given to miners (vardiff).
type Difficulty struct {
	// Initial is the difficulty a new miner starts at.
	Initial float64 `toml:"initial"`
	// Min is the lowest difficulty vardiff may set.
	Min float64 `toml:"min"`
	// Max is the highest difficulty vardiff may set.
	Max float64 `toml:"max"`
	// TargetShareInterval is the time between shares vardiff aims at, per miner.
	TargetShareInterval Duration `toml:"target_share_interval"`
	// RetargetInterval is how often, at most, vardiff changes a miner's
	// difficulty.
	RetargetInterval Duration `toml:"retarget_interval"`
}

// Failover configures pool health detection, hot standby and failback.
type Failover struct {
	// DialTimeout bounds connecting to a pool (TCP, SOCKS5 and TLS).
	DialTimeout Duration `toml:"dial_timeout"`
	// SubmitTimeout is how long a pool may take to answer a forwarded share
	// before the share is lost and the pool dark; it is also the ceiling of
	// the learned submit deadline.
	SubmitTimeout Duration `toml:"submit_timeout"`
	// SubmitTimeoutMin is the floor of the learned submit deadline: a pool
	// is suspect (and miners leave it) once a share is unanswered for 4 ×
	// the 95th percentile of its recent answer times, within
	// [SubmitTimeoutMin, SubmitTimeout]. At or above SubmitTimeout it turns
	// the learning off.
	SubmitTimeoutMin Duration `toml:"submit_timeout_min"`
	// JobTimeout is how long a pool may stay silent (no mining.notify)
	// before it is considered dark.
	JobTimeout Duration `toml:"job_timeout"`
	// Keepalive is the TCP keepalive idle time and interval on pool connections.
	Keepalive Duration `toml:"keepalive"`
	// UserTimeout is TCP_USER_TIMEOUT on pool connections: how long sent data
	// may stay unacknowledged before the kernel drops the connection.
	UserTimeout Duration `toml:"user_timeout"`
	// FailbackAfter is how long a better pool must stay healthy before
	// miners move back to it.
	FailbackAfter Duration `toml:"failback_after"`
	// Standby is how many of the next ranked pools keep a live, authorized
	// session with current jobs, so that a failover costs no dial.
	Standby int `toml:"standby"`
	// WhenAllDown says what happens to miners when no pool is live.
	WhenAllDown WhenAllDown `toml:"when_all_down"`
	// MaxRejectRatio: a pool rejecting more than this fraction of the shares
	// forwarded to it, over the last RejectWindow shares, is not live.
	MaxRejectRatio float64 `toml:"max_reject_ratio"`
	// RejectWindow is how many forwarded shares MaxRejectRatio is measured over.
	RejectWindow int `toml:"reject_window"`
	// BackoffMin is the first delay before redialing a failed pool.
	BackoffMin Duration `toml:"backoff_min"`
	// BackoffMax caps the redial delay, which doubles after each failure.
	BackoffMax Duration `toml:"backoff_max"`
}

// WhenAllDown is Failover.WhenAllDown.
type WhenAllDown string

// What to do with miners when every pool is down.
const (
	// WhenAllDownHold keeps miners connected, without new work, until a pool
	// comes back; they resume at once, without reconnecting.
	WhenAllDownHold WhenAllDown = "hold"
	// WhenAllDownDisconnect closes miner connections, so miners configured
	// with their own backup pools use them.
	WhenAllDownDisconnect WhenAllDown = "disconnect"
)

// Pool is one [[pool]] table: an upstream pool and how to reach it.
type Pool struct {
	// Index is the pool's position among the [[pool]] tables in the file,
	// from 0; messages name the pool by it ("pool[1]"). Not a TOML key.
	Index int `toml:"-"`

	// Name identifies the pool in logs and metric labels; unique.
	Name string `toml:"name"`
	// URL is stratum+tcp://host:port, or stratum+ssl:// or stratum+tls://
	// (both mean TLS). See Endpoint.
	URL string `toml:"url"`
	// User is the pool account (and worker) switchyard authorizes as.
	User string `toml:"user"`
	// Password is sent with mining.authorize; most pools ignore it.
	Password string `toml:"password"`
	// Priority ranks pools, lower first; equal priorities keep file order.
	Priority int `toml:"priority"`
	// Weight is the pool's share of its route's work when the route splits
	// it: within one route, the pools of one priority either all have a
	// weight (the route's hashrate is split between them in proportion,
	// measured on the work each credits) or all have 0 (ranked failover in
	// order, as with a single pool per priority).
	Weight int `toml:"weight"`
	// Bind is the local source IP to dial the pool from ("" lets the kernel
	// choose).
	Bind string `toml:"bind"`
	// Interface is the network interface to dial through (SO_BINDTODEVICE).
	Interface string `toml:"interface"`
	// SOCKS5 is the host:port of a SOCKS5 proxy to dial the pool through.
	SOCKS5 string `toml:"socks5"`
	// TLSSkipVerify accepts any certificate (self-signed pools); TLS only.
	TLSSkipVerify bool `toml:"tls_skip_verify"`
	// TLSCAFile is a PEM file of extra CAs to trust; TLS only.
	TLSCAFile string `toml:"tls_ca_file"`
	// TLSPinSHA256 is the hex SHA-256 of the pool certificate's
	// SubjectPublicKeyInfo; when set, only that key is accepted. TLS only.
	TLSPinSHA256 string `toml:"tls_pin_sha256"`
}

// Route is one [[route]] table: which miners it serves, by the listener
// they connect to and their worker name, and the pools it sends their work
// to. Pools are named by their [[pool]] name; one pool may serve several
// routes (a shared backup).
type Route struct {
	// Index is the route's position among the [[route]] tables in the
	// file, from 0; messages name the route by it ("route[1]"). Not a TOML
	// key.
	Index int `toml:"-"`

	// Name identifies the route in logs and as the "route" metric label;
	// unique, 1 to 32 of a-z 0-9 _ -.
	Name string `toml:"name"`
	// Listen lists the host:port addresses whose miners the route serves;
	// a string is a list of one. Empty: Server.Listen.
	Listen Strings `toml:"listen"`
	// Workers are globs on the worker name a miner sends in
	// mining.authorize: '*' any run of characters, '?' one, anything else
	// itself. Empty: every worker on the route's listeners that no other
	// route's pattern takes.
	Workers []string `toml:"workers"`
	// Pools names the route's pools, at least one. They are ranked by
	// their priority, then in this order.
	Pools []string `toml:"pools"`
	// Backup names pools tried, in this order, after every pool in Pools;
	// a string is a list of one.
	Backup Strings `toml:"backup"`
	// WorkerMode is the route's worker mode; "" means Server.WorkerMode.
	WorkerMode WorkerMode `toml:"worker_mode"`
}

// Strings is a list of strings that a TOML file may also write as one
// string: listen = "0.0.0.0:3334" is listen = ["0.0.0.0:3334"].
type Strings []string

// Metrics configures the HTTP endpoints: /metrics, /healthz, /api/v1/….
type Metrics struct {
	// Listen is the host:port to serve on; "" disables the HTTP server.
	Listen string `toml:"listen"`
	// PerWorker adds per-worker series (shares, difficulty, last share).
	PerWorker bool `toml:"per_worker"`
	// BearerToken, when set, is required as "Authorization: Bearer <token>".
	BearerToken string `toml:"bearer_token"`
	// BasicAuthUser and BasicAuthPassword, when set, are required as HTTP
	// basic authentication.
	BasicAuthUser string `toml:"basic_auth_user"`
	// BasicAuthPassword goes with BasicAuthUser.
	BasicAuthPassword string `toml:"basic_auth_password"`
	// GroupBy is how the status page groups miners by worker name
	// ("prefix:1", "regexp:EXPR", "none"; see GroupBy).
	GroupBy GroupBy `toml:"group_by"`
}

// Log configures logging.
type Log struct {
	// Level is one of trace, debug, info, warn, error.
	Level string `toml:"level"`
	// Format is console (human-readable) or json.
	Format string `toml:"format"`
}

// Log formats.
const (
	LogFormatConsole = "console"
	LogFormatJSON    = "json"
)

// Default returns the configuration used for every key a file leaves out.
// It has no pools, so it does not validate until at least one is added.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:                 "0.0.0.0:3333",
			MaxConnections:         100000,
			MaxConnectionsPerIP:    0,
			MaxLineBytes:           8192,
			AuthTimeout:            Duration(30 * time.Second),
			MaxSubmitsPerSecond:    100,
			MaxPendingWriteBytes:   1 << 20,
			Extranonce1Size:        2,
			MinPoolExtranonce2Size: DefaultMinPoolExtranonce2Size,
			WorkerMode:             WorkerModeAggregate,
			EventLoops:             0,
		},
		Difficulty: Difficulty{
			Initial:             65536,
			Min:                 1024,
			Max:                 1e12,
			TargetShareInterval: Duration(10 * time.Second),
			RetargetInterval:    Duration(60 * time.Second),
		},
		Failover: Failover{
			DialTimeout:      Duration(3 * time.Second),
			SubmitTimeout:    Duration(3 * time.Second),
			SubmitTimeoutMin: Duration(500 * time.Millisecond),
			JobTimeout:       Duration(120 * time.Second),
			Keepalive:        Duration(2 * time.Second),
			UserTimeout:      Duration(4 * time.Second),
			FailbackAfter:    Duration(60 * time.Second),
			Standby:          1,
			WhenAllDown:      WhenAllDownHold,
			MaxRejectRatio:   0.5,
			RejectWindow:     50,
			BackoffMin:       Duration(500 * time.Millisecond),
			BackoffMax:       Duration(30 * time.Second),
		},
		Metrics: Metrics{
			Listen:  "127.0.0.1:9333",
			GroupBy: "prefix:1",
		},
		Log: Log{
			Level:  "info",
			Format: LogFormatConsole,
		},
	}
}
