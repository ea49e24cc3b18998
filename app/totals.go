package app

// Totals is switchyard's share accounting, summed over pools and reasons.
//
// Every share a miner submits is answered once: Accepted + Rejected + Lost
// equals the submits switchyard read (Lost: valid, answered, but no pool
// could take it). Every forwarded share ends once at its pool:
// Forwarded = PoolAccepted + PoolRejected + PoolLost + in flight.
type Totals struct {
	Accepted     float64 `json:"accepted"`
	Rejected     float64 `json:"rejected"`
	Lost         float64 `json:"lost"`
	Forwarded    float64 `json:"forwarded"`
	PoolAccepted float64 `json:"pool_accepted"`
	PoolRejected float64 `json:"pool_rejected"`
	PoolLost     float64 `json:"pool_lost"`
	// LostBy counts Lost and PoolLost shares by reason.
	LostBy map[string]float64 `json:"lost_by"`
	// MinerLostBy counts Lost (the miners' side) by reason, PoolLostBy
	// PoolLost (forwarded shares left unanswered) by reason.
	MinerLostBy map[string]float64 `json:"miner_lost_by"`
	PoolLostBy  map[string]float64 `json:"pool_lost_by"`
}

// Totals reads the share counters from the registry.
func (a *App) Totals() Totals {
	t := Totals{LostBy: map[string]float64{}, MinerLostBy: map[string]float64{}, PoolLostBy: map[string]float64{}}
	mfs, err := a.Registry.Gather()
	if err != nil {
		return t
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			c := m.GetCounter()
			if c == nil {
				continue
			}
			result, reason := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "result":
					result = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			v := c.GetValue()
			if result == "lost" && v > 0 {
				t.LostBy[reason] += v
			}
			switch mf.GetName() {
			case "switchyard_shares_total":
				switch result {
				case "accepted":
					t.Accepted += v
				case "rejected":
					t.Rejected += v
				case "lost":
					t.Lost += v
					if v > 0 {
						t.MinerLostBy[reason] += v
					}
				}
			case "switchyard_pool_shares_forwarded_total":
				t.Forwarded += v
			case "switchyard_pool_shares_total":
				switch result {
				case "accepted":
					t.PoolAccepted += v
				case "rejected":
					t.PoolRejected += v
				case "lost":
					t.PoolLost += v
					if v > 0 {
						t.PoolLostBy[reason] += v
					}
				}
			}
		}
	}
	return t
}
