package upstream

import "time"

// The failover policy, as a pure function: given what is known of every
// pool and the clock, which pool miners should work for and which pools
// keep sessions. The Manager gathers the input under its lock, calls
// Select, and carries the decision out (sessions, the miner side, logs,
// metrics). Select keeps no state and reads no clock.

// PoolView is what the selector knows of one pool.
type PoolView struct {
	State     State
	LiveSince time.Time // when every lane became live; zero when not live
	Removed   bool      // left the configuration (reload)
	// Refused is set when the pool refused us for good (unauthorized,
	// extranonce2_too_small): nothing to wait for at startup.
	Refused bool
	// Strikes counts failbacks to this pool that ended with it dark again
	// within its hold; each doubles the hold (up to Policy.MaxStrikes).
	Strikes int
	// FailbackAt is when miners last returned to this pool by failback;
	// zero once they have stayed for its hold.
	FailbackAt time.Time
	// Answering is set when the pool has shown it answers in time: its
	// latest answers (to shares, or to the handshake of a pool that has
	// had none) came within its deadline. Failback needs it; failover and
	// startup prefer pools that have it.
	Answering bool
	// StillAnswers is set on a suspect pool that is only late: it is
	// suspect for late shares, not dark, and answered within SubmitTimeout.
	// With no live pool, miners stay on it (or go to it) rather than be
	// held.
	StillAnswers bool
	// FalseAlarm is set on a live pool that miners left while it was
	// suspect, never down, and that answered its late shares within the
	// grace: miners go back at once (MoveFalseAlarm) unless it has strikes.
	FalseAlarm bool
}

// Situation is the selector's input: the pools ranked best first, the pool
// miners work for now and the clock.
type Situation struct {
	Pools []PoolView
	// Active is the index of the pool miners work for, or -1.
	Active int
	// HadActive is set when miners were on a pool that has since left the
	// list (Active is then -1): leaving it is a failover, not a startup.
	HadActive bool
	// AllDown is set while no pool is live and miners were told so.
	AllDown bool
	Now     time.Time
	Start   time.Time // when the Manager started
}

// Policy tunes Select.
type Policy struct {
	FailbackAfter time.Duration // a better pool must be live this long (times 2^strikes) before miners return
	Standby       int           // pools after the active one that keep live sessions
	StartGrace    time.Duration // at startup, how long to wait for better-ranked pools
	MaxStrikes    int           // cap on the doubling of the hold
}

// Move says why Decision.Active changed.
type Move uint8

// Moves.
const (
	MoveNone       Move = iota // miners stay where they are
	MoveStartup                // the first pool miners work for
	MoveFailover               // the active pool is not live (or was removed)
	MoveFailback               // a better pool has been live for its hold
	MoveRecovered              // a pool is live again after all were down
	MoveAllDown                // no pool is live: miners are held or disconnected
	MoveFalseAlarm             // back at once to a better pool that was only late (see PoolView.FalseAlarm)
)

var moveNames = [...]string{"none", "startup", "failover", "failback", "recovered", "all_down", "false_alarm"}

func (m Move) String() string {
	if int(m) < len(moveNames) {
		return moveNames[m]
	}
	return "unknown"
}

// Decision is Select's answer.
type Decision struct {
	// Active is the index of the pool miners should work for, -1 for none.
	Active int
	// Move is why Active changed, MoveNone when it did not.
	Move Move
	// Forgive is set when the active pool held up for its hold after a
	// failback: its strikes and FailbackAt are reset.
	Forgive bool
	// Run[i] tells whether pool i keeps sessions: every pool ranked up to
	// the active one (to see the better ones recover) and Standby after it;
	// all of them while none is active.
	Run []bool
}

// Hold is how long pool v must be live before miners fail back to it:
// FailbackAfter, doubled for every failback after which it went dark again
// within its hold. Some pools look healthy while idle and fail only under
// shares (one that rejects every share still connects, authorizes and
// sends jobs), so going back is the only way to learn they recovered; the
// doubling keeps those retries from becoming a yo-yo.
func (p Policy) Hold(v PoolView) time.Duration {
	return p.FailbackAfter << min(v.Strikes, p.MaxStrikes)
}

// Strike reports whether the active pool v, going dark at now, does so
// within its hold after a failback: that counts a strike.
func (p Policy) Strike(v PoolView, now time.Time) bool {
	return !v.FailbackAt.IsZero() && now.Sub(v.FailbackAt) < p.Hold(v)
}

// Select applies the policy:
//
//   - miners stay on a live active pool unless a better-ranked one has been
//     live, and answering in time, for its hold (failback), or was left
//     for a false alarm (PoolView.FalseAlarm, no strikes): back at once;
//   - at startup, a backup is taken only once the start grace has passed or
//     no better-ranked pool may still come (all refused us for good);
//   - when the active pool is not live, miners go to the best live pool,
//     one answering in time if there is one (failover; recovered when all
//     were down); with no live pool, to the best pool that is only late
//     (PoolView.StillAnswers), and they stay on an active pool that is;
//   - with no live pool and none that still answers, miners are told once
//     (all down), but not before the start grace while nothing was ever
//     active.
func Select(s Situation, p Policy) Decision {
	d := Decision{Active: s.Active}
	usable := func(i int) bool { return s.Pools[i].State == StateLive && !s.Pools[i].Removed }
	best, bestAnswering, late := -1, -1, -1
	for i, v := range s.Pools {
		switch {
		case usable(i) && best < 0:
			best = i
			if v.Answering {
				bestAnswering = i
			}
		case usable(i) && v.Answering && bestAnswering < 0:
			bestAnswering = i
		case v.State == StateSuspect && v.StillAnswers && !v.Removed && late < 0:
			late = i
		}
	}
	if bestAnswering >= 0 {
		best = bestAnswering // a live pool answering in time first
	}
	activeOK := s.Active >= 0 && s.Active < len(s.Pools) && !s.Pools[s.Active].Removed
	activeLive := activeOK && s.Pools[s.Active].State == StateLive
	activeLate := activeOK && s.Pools[s.Active].State == StateSuspect && s.Pools[s.Active].StillAnswers
	hadActive := s.Active >= 0 || s.HadActive
	switch {
	case activeLive:
		a := s.Pools[s.Active]
		if !a.FailbackAt.IsZero() && s.Now.Sub(a.FailbackAt) >= p.Hold(a) {
			d.Forgive = true
		}
		first := true // only the best live pool is waited for
		for i := 0; i < s.Active && d.Move == MoveNone; i++ {
			v := s.Pools[i]
			switch {
			case !usable(i):
			case v.FalseAlarm && v.Strikes == 0:
				d.Active, d.Move = i, MoveFalseAlarm
			case first && v.Answering && s.Now.Sub(v.LiveSince) >= p.Hold(v):
				d.Active, d.Move = i, MoveFailback
			default:
				first = false
			}
		}
	case best >= 0 && !hadActive && !s.AllDown && best > 0 && s.Now.Sub(s.Start) < p.StartGrace && betterMayCome(s.Pools, best):
		// At startup, give better-ranked pools a moment to finish their
		// handshake before settling for a backup.
	case best >= 0:
		d.Active = best
		switch {
		case hadActive:
			d.Move = MoveFailover
		case s.AllDown:
			d.Move = MoveRecovered
		default:
			d.Move = MoveStartup
		}
	case activeLate:
		// Slow is not dark: no pool is live, and the active one still
		// answers its shares, late. Holding miners would help no one.
	case late >= 0 && hadActive:
		d.Active, d.Move = late, MoveFailover
	case late >= 0 && s.AllDown:
		d.Active, d.Move = late, MoveRecovered
	case !s.AllDown && (hadActive || s.Now.Sub(s.Start) >= p.StartGrace):
		d.Active, d.Move = -1, MoveAllDown
	}
	d.Run = make([]bool, len(s.Pools))
	limit := len(s.Pools)
	if d.Active >= 0 {
		limit = d.Active + 1 + p.Standby
	}
	for i, v := range s.Pools {
		d.Run[i] = i < limit && !v.Removed
	}
	return d
}

// betterMayCome reports whether a pool ranked better than best may still go
// live: one not removed and not refused for good.
func betterMayCome(pools []PoolView, best int) bool {
	for _, v := range pools[:best] {
		if !v.Removed && !v.Refused {
			return true
		}
	}
	return false
}
