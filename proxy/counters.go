package proxy

import (
	"errors"

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

// counters holds the server-wide metric children resolved once, so the
// share path does no label lookups. Share and pool counters are each
// route's (route.shares, route.pool).
type counters struct {
	met       *metrics.Metrics
	shareDiff prometheus.Counter
	closed    [numCloseReasons]prometheus.Counter
	protocol  struct {
		malformed, unknownMethod, badParams, noRoute prometheus.Counter
	}
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
	c.met = m
	c.shareDiff = m.ShareDifficulty
	for _, r := range CloseReasons() {
		c.closed[r] = m.ConnectionsClosed.WithLabelValues(r.String())
	}
	c.protocol.malformed = m.ProtocolErrors.WithLabelValues(metrics.ProtocolMalformed)
	c.protocol.unknownMethod = m.ProtocolErrors.WithLabelValues(metrics.ProtocolUnknownMethod)
	c.protocol.badParams = m.ProtocolErrors.WithLabelValues(metrics.ProtocolBadParams)
	c.protocol.noRoute = m.ProtocolErrors.WithLabelValues(metrics.ProtocolNoRoute)
}

func (c *counters) limit(name string) { c.met.LimitHits.WithLabelValues(name).Inc() }

// newPoolCounters resolves a pool's counters in a route's metrics view.
func newPoolCounters(m *metrics.Metrics, name string) *poolCounters {
	pc := &poolCounters{
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
