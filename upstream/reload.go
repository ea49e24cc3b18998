package upstream

// SetPools replaces the ranked pool list at run time (SIGHUP). Pools are
// matched by name: an unchanged pool keeps its sessions and only takes its
// new rank; a pool whose settings changed is retired and started afresh;
// removed pools are retired. When the active pool is retired, miners move
// to the best live pool at once (reason "removed"); a better-ranked pool
// takes them back only after failback_after, as always.
func (m *Manager) SetPools(pools []Pool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := make(map[string]*poolRun, len(m.pools))
	for _, p := range m.pools {
		old[p.pool.Name] = p
	}
	next := make([]*poolRun, 0, len(pools))
	for i, np := range pools {
		p, ok := old[np.Name]
		delete(old, np.Name)
		if ok && p.pool.link() == np.link() {
			p.rank = i
			p.pool = np // a new tier or weight: the split follows (decide)
			next = append(next, p)
			continue
		}
		if ok {
			m.retire(p, "edited")
		}
		next = append(next, &poolRun{pool: np, rank: i, state: StateDown})
		if met := m.opts.Metrics; met != nil {
			met.InitPool(np.Name)
		}
	}
	for _, p := range old {
		// Its series stay: counters of shares already carried remain
		// part of the accounting.
		m.retire(p, "removed")
	}
	m.pools = next
	m.log.Info().Int("pools", len(next)).Msg("pool list reloaded")
	m.decide(because(CauseRemoved))
	m.serve(true) // weights may have changed with the same pools serving
}

// retire stops a pool that left the configuration. Called with m.mu held.
func (m *Manager) retire(p *poolRun, why string) {
	m.log.Info().Str("pool", p.pool.Name).Str("reason", why).Msg("pool retired")
	m.stopPool(p)
	p.removed = true
	p.state = StateDown
	p.darkReason = because(CauseRemoved)
}
