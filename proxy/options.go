package proxy

import (
	"time"

	"github.com/rs/zerolog"

	"switchyard/metrics"
)

// Options configure a Server. cmd/switchyard fills them from config.
type Options struct {
	Listen string // host:port for miners
	// Listeners, when set, are several host:port for miners, Listen
	// ignored. A connection is told apart by its local address.
	Listeners []string
	// Routes are the routes miners are matched to, each served by its own
	// pool manager (Server.SetRouteUpstream, Server.Sink); none is one
	// route, metrics.DefaultRoute, with PerWorker.
	Routes []RouteOptions
	// ListenerRoute[i], when 0 or more, is the one route every miner of
	// listener i takes; -1 (or missing) leaves it to Route at authorize.
	ListenerRoute []int
	// Route matches a miner to a route (an index into Routes) by its
	// listener (an index into Listeners) and its worker name, at its first
	// mining.authorize; false refuses the worker. nil: ListenerRoute, then
	// the first route.
	Route func(listener int, worker string) (int, bool)
	// SplitEvery is how often the split of a route across pools is looked
	// at and miners moved to hold it; default 5s.
	SplitEvery           time.Duration
	EventLoops           int // 0: one per CPU
	MaxConnections       int // 0: no limit
	MaxConnectionsPerIP  int // 0: no limit
	MaxLineBytes         int
	AuthTimeout          time.Duration // subscribe+authorize deadline
	MaxSubmitsPerSecond  int           // per connection; 0: no limit
	MaxPendingWriteBytes int           // per connection
	PrefixBytes          int           // P: bytes of the per-miner extranonce1 prefix
	PerWorker            bool          // worker_mode = "per-worker"
	DisconnectWhenDown   bool          // when_all_down = "disconnect"
	ProxyProtocol        bool          // server.proxy_protocol: every connection starts with a PROXY v1/v2 header (see proxyproto.go)

	Vardiff Vardiff // may be changed at run time with Server.SetVardiff

	// MinerExtranonce2Size is M, the extranonce2 size every miner gets,
	// fixed for its connection (2..8: cgminer refuses less and never
	// submits with more). Pools need an extranonce2 of at least
	// PrefixBytes + M; default 2.
	MinerExtranonce2Size int

	Log     zerolog.Logger
	Metrics *metrics.Metrics // nil: a private registry
	Workers *metrics.Workers // per-worker series; nil: off
	Version string           // reported to client.get_version and in logs
}

// RouteOptions configure one route.
type RouteOptions struct {
	Name      string // the route label of its metrics
	PerWorker bool   // worker_mode = "per-worker"
}

func (o *Options) setDefaults() {
	if o.SplitEvery <= 0 {
		o.SplitEvery = 5 * time.Second
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 8192
	}
	if o.PrefixBytes <= 0 {
		o.PrefixBytes = 2
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 30 * time.Second
	}
	if o.MaxPendingWriteBytes <= 0 {
		o.MaxPendingWriteBytes = 1 << 20
	}
	o.Vardiff.setDefaults()
	if o.MinerExtranonce2Size <= 0 {
		o.MinerExtranonce2Size = DefaultMinerExtranonce2Size
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// Bounds of the miner extranonce2 size. cgminer-family firmware refuses a
// size below 2 at subscribe, and with more than 8 it hashes but never
// submits a share (its extranonce2 is a 64-bit counter).
const (
	MinMinerExtranonce2Size     = 2
	MaxMinerExtranonce2Size     = 8
	DefaultMinerExtranonce2Size = 2
)

// Vardiff is the difficulty policy for miners.
type Vardiff struct {
	Initial  float64       // a new miner's difficulty
	Min, Max float64       // bounds for vardiff, suggest_difficulty and minimum-difficulty
	Target   time.Duration // aimed time between a miner's shares
	Retarget time.Duration // vardiff looks at most this often
}

func (v *Vardiff) setDefaults() {
	if v.Initial <= 0 {
		v.Initial = 65536
	}
	if v.Min <= 0 {
		v.Min = v.Initial
	}
	if v.Max <= 0 {
		v.Max = 1e12
	}
	if v.Target <= 0 {
		v.Target = 10 * time.Second
	}
	if v.Retarget <= 0 {
		v.Retarget = 60 * time.Second
	}
}
