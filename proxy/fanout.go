package proxy

import (
	"bytes"
	"sync/atomic"
	"time"

	"switchyard/upstream"
)

// The job path: a pool job becomes a lane job (Publish) and is written to
// every mining miner of the lane on each event loop (fanOut), with the
// switch timing and the "no pool is live" handling beside it.

// pendingSwitch times a failover from the first sign of darkness to the new
// pool's job reaching the miners (or, into a split, to the miners' moves).
type pendingSwitch struct {
	pool  string
	since time.Time
	loops atomic.Int32
	done  func(d time.Duration)
}

// await readies the switch to complete after n steps, or completes it now
// when n is 0.
func (sw *pendingSwitch) await(n int32) {
	sw.loops.Store(n)
	if n == 0 {
		sw.done(time.Since(sw.since))
	}
}

// step is one of the steps it awaits.
func (sw *pendingSwitch) step() {
	if sw.loops.Add(-1) == 0 {
		sw.done(time.Since(sw.since))
	}
}

// Publish makes j, from session sess, the current job of lane idx for the
// first route (see route.Publish): the Sink of a server with one route.
func (s *Server) Publish(idx int, sess *upstream.Session, j *upstream.Job, switched bool) {
	s.publish(s.routeList()[0], idx, sess, j, switched)
}

// publish makes j, from session sess, the current job of route r's feed of
// sess's pool on lane idx and sends it to every miner following that feed.
// switched marks the first job after the pool started serving. Older jobs
// of the feed become stale for miners (and the job goes out with
// clean_jobs=true) when the pool says so, on a switch, on a new connection
// or extranonce1, and whenever the previous block hash changes, whatever
// the pool's clean_jobs says. A job that repeats the current one (same id
// and content, as ckpool re-sends it) changes nothing for miners and is
// not sent again; with a new difficulty only, it goes out as a new job.
// Miners of the route left on a pool that stopped serving take it (or
// another serving pool's work) on the way. Called from the pool side, one
// call at a time; never blocks on miners.
func (s *Server) publish(r *route, idx int, sess *upstream.Session, j *upstream.Job, switched bool) {
	l := s.lane(idx)
	pool := sess.Pool().Name
	if ss := r.set.Load(); ss == nil || ss.implicit && (switched || ss.weight(pool) == 0) {
		// A pool side that never names the serving pools (Serve) has the
		// pool that publishes serve alone.
		r.serve([]upstream.Share{{Pool: pool, Weight: 1}}, true)
	}
	f := l.feed(r, pool)
	prev := f.cur.Load()
	if prev != nil && prev.sess == sess && prev.poolJob == j {
		return // already mining exactly this (e.g. recovered before any change)
	}
	sameConn := prev != nil && prev.sess == sess && prev.poolJob.Conn == j.Conn && bytes.Equal(prev.poolJob.Extranonce1, j.Extranonce1)
	repeat := sameConn && !switched && sameWork(prev.poolJob.Notify, j.Notify)
	if repeat && prev.diff == j.Difficulty {
		s.log.Debug().Str("pool", prev.pool).Int("lane", idx).Str("pool_job_id", j.Notify.JobID).Msg("pool re-sent its current job: nothing new for miners")
		return
	}
	stales := !repeat && (j.Notify.Clean || switched || !sameConn || prev.poolJob.Notify.PrevHash != j.Notify.PrevHash)
	gen := f.gen.Load()
	if stales {
		gen++
	}
	// A pool that changes its difficulty credits the work miners hold at
	// the new one (ckpool takes the lower of old and new until its next
	// job; public-pool applies a change at once), while a firmware keeps
	// each queued work item's difficulty: on a lower difficulty, or on
	// the same work re-sent with another, miners are told to drop their
	// work (clean_jobs=true). Their late shares on it still count. The
	// same work goes out with its ntime rolled on, so that it is new work.
	var roll uint32
	if repeat {
		roll = prev.roll + 1
	}
	flush := !stales && (repeat || j.Difficulty < prev.diff)
	// A clean job superseded before every loop sent it (the fan-out skips
	// a job no longer current) hands its clean_jobs=true on to this one:
	// miners must still drop the work it made stale.
	carry := prev != nil && prev.clean && prev.unsent.Load() > 0
	lj, err := l.buildJob(sess, j, stales || flush || carry, gen, roll)
	if err != nil {
		s.log.Error().Err(err).Str("pool", sess.Pool().Name).Int("lane", idx).Int("extranonce2_size", j.Extranonce2Size).
			Int("needed", s.opts.PrefixBytes+s.opts.MinerExtranonce2Size).Msg("job refused")
		return
	}
	lj.stales = stales
	ss := r.set.Load()
	split := ss != nil && len(ss.shares) > 1
	if prev == nil && split {
		s.kickSplit() // a pool joined the split: its miners move now, not at the next tick
	}
	r.allDown.Store(false)
	s.allDownRoutes()
	f.publish(lj)
	s.log.Debug().Str("route", r.name).Str("pool", lj.pool).Int("lane", idx).Str("job_id", lj.idHex).Str("pool_job_id", j.Notify.JobID).
		Bool("clean", lj.clean).Bool("stales", stales).Float64("difficulty", lj.diff).Msg("job")

	var sw *pendingSwitch
	if !split {
		sw = r.takeSwitch(idx, pool)
	} // into a split, the switch completes with the moves (route.balance)
	n := s.loopCount()
	lj.unsent.Store(n)
	if sw != nil {
		sw.await(n)
	}
	fo := &fanout{start: time.Now()}
	s.eachLoop(func(lp *loop) {
		if f.cur.Load() != lj {
			return // a newer job superseded this one before it went out
		}
		sent := lp.fanOut(f, lj)
		if sw != nil {
			sw.step()
		}
		fo.miners.Add(int64(sent))
		if lj.unsent.Add(-1) == 0 {
			if e := s.log.Debug(); e.Enabled() {
				e.Int("lane", idx).Str("job_id", lj.idHex).Int64("miners", fo.miners.Load()).
					Float64("elapsed_s", time.Since(fo.start).Seconds()).Msg("job fanned out")
			}
		}
	})
}

// fanOut writes lj to every mining miner following feed f on this loop,
// and moves there (or to another serving feed with work) the miners of
// f's route and lane left on a feed that stopped serving. It returns how
// many miners it reached. The notify line is shared: per miner it is one
// append to the loop's scratch buffer (plus set_difficulty before a
// miner's first job) and one write.
func (lp *loop) fanOut(f *feed, lj *laneJob) int {
	sent := 0
	for m := range lp.miners {
		switch {
		case !m.mining():
		case m.feed == f:
			m.sendJob(lj, false)
			sent++
		case m.route == f.route && m.lane == f.lane && (m.feed == nil || !m.feed.serving.Load()):
			if m.rehome(true) {
				sent++
			}
		}
	}
	return sent
}

// fanout tracks one job's fan-out across the event loops, for the debug
// line that times it.
type fanout struct {
	start  time.Time
	miners atomic.Int64
}

// TimeSwitch arranges for done to be called with the time from since until
// lane idx's next job has been written to all its miners (the first
// route's; see route.TimeSwitch).
func (s *Server) TimeSwitch(idx int, pool string, since time.Time, done func(time.Duration)) {
	s.routeList()[0].TimeSwitch(idx, pool, since, done)
}

// AllDown handles "no pool is live" for the first route (see route.AllDown).
func (s *Server) AllDown() { s.routeList()[0].AllDown() }

// Verdict counts a pool's verdict for the first route (see route.Verdict).
func (s *Server) Verdict(sess *upstream.Session, v *upstream.Verdict) {
	s.routeList()[0].Verdict(sess, v)
}

// allDownRoutes sets the server's all-down flag: every route has no live
// pool.
func (s *Server) allDownRoutes() {
	all := true
	for _, r := range s.routeList() {
		all = all && r.allDown.Load()
	}
	s.allDown.Store(all)
}
