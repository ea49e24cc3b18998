package proxy

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/metrics"
	"switchyard/stratum"
)

// Limit labels of switchyard_limit_hits_total.
const (
	limitMaxConnections = metrics.LimitMaxConnections
	limitPerIP          = metrics.LimitMaxConnectionsPerIP
	limitAuthTimeout    = metrics.LimitAuthTimeout
	limitSubmitRate     = metrics.LimitMaxSubmitsPerSecond
	limitPendingWrite   = metrics.LimitMaxPendingWriteBytes
	limitLine           = metrics.LimitMaxLineBytes
)

// counters holds metric children resolved once, so the share path does no
// label lookups.
type counters struct {
	met    *metrics.Metrics
	shares struct {
		accepted prometheus.Counter
		rejected [stratum.NumReasons]prometheus.Counter
		lost     [stratum.NumReasons]prometheus.Counter
	}
	shareDiff prometheus.Counter
	closed    [numCloseReasons]prometheus.Counter
	protocol  struct {
		malformed, unknownMethod, badParams prometheus.Counter
	}

	mu    sync.RWMutex
	pools map[string]*poolCounters
}

type poolCounters struct {
	forwarded     prometheus.Counter
	forwardedDiff prometheus.Counter
	credited      prometheus.Counter
	accepted      prometheus.Counter
	rejected      prometheus.Counter
	lost          [stratum.NumReasons]prometheus.Counter
	blocks        prometheus.Counter
}

func (c *counters) init(m *metrics.Metrics) {
	c.met, c.pools = m, map[string]*poolCounters{}
	c.shares.accepted = m.Shares.WithLabelValues("accepted", "")
	for _, r := range stratum.Reasons() {
		c.shares.rejected[r] = m.Shares.WithLabelValues("rejected", r.String())
		c.shares.lost[r] = m.Shares.WithLabelValues("lost", r.String())
	}
	c.shareDiff = m.ShareDifficulty
	for _, r := range CloseReasons() {
		c.closed[r] = m.ConnectionsClosed.WithLabelValues(r.String())
	}
	c.protocol.malformed = m.ProtocolErrors.WithLabelValues(metrics.ProtocolMalformed)
	c.protocol.unknownMethod = m.ProtocolErrors.WithLabelValues(metrics.ProtocolUnknownMethod)
	c.protocol.badParams = m.ProtocolErrors.WithLabelValues(metrics.ProtocolBadParams)
}

func (c *counters) limit(name string) { c.met.LimitHits.WithLabelValues(name).Inc() }

// pool returns the counters of a pool, creating them on first use.
func (c *counters) pool(name string) *poolCounters {
	c.mu.RLock()
	pc := c.pools[name]
	c.mu.RUnlock()
	if pc != nil {
		return pc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if pc = c.pools[name]; pc != nil {
		return pc
	}
	m := c.met
	pc = &poolCounters{
		forwarded:     m.Forwarded.WithLabelValues(name),
		forwardedDiff: m.ForwardedDifficulty.WithLabelValues(name),
		credited:      m.CreditedDifficulty.WithLabelValues(name),
		accepted:      m.PoolVerdicts.WithLabelValues(name, "accepted", ""),
		rejected:      m.PoolVerdicts.WithLabelValues(name, "rejected", stratum.ReasonPoolRejected.String()),
		blocks:        m.BlocksFound.WithLabelValues(name),
	}
	for _, r := range stratum.Reasons() {
		pc.lost[r] = m.PoolVerdicts.WithLabelValues(name, "lost", r.String())
	}
	c.pools[name] = pc
	return pc
}

// reasonOf extracts the Reason of a share rejection.
func reasonOf(err error) stratum.Reason {
	var re *stratum.RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return stratum.ReasonMalformed
}
