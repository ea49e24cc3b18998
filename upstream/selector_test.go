package upstream

import (
	"slices"
	"testing"
	"time"
)

func TestSelect(t *testing.T) {
	const fb = 10 * time.Second
	t0 := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	pol := Policy{FailbackAfter: fb, Standby: 1, StartGrace: 5 * time.Second, MaxStrikes: 4}
	live := func(ago time.Duration) PoolView {
		return PoolView{State: StateLive, LiveSince: t0.Add(-ago), Answering: true}
	}
	unproven := func(ago time.Duration) PoolView { return PoolView{State: StateLive, LiveSince: t0.Add(-ago)} } // latest answer late
	late := PoolView{State: StateSuspect, StillAnswers: true}                                                   // suspect, answering late
	falseAlarm := PoolView{State: StateLive, LiveSince: t0.Add(-100 * time.Millisecond), FalseAlarm: true}
	down := PoolView{State: StateDown}
	shaking := PoolView{State: StateHandshaking}
	suspect := PoolView{State: StateSuspect} // e.g. rejecting: reject ratio above max
	refused := PoolView{State: StateDown, Refused: true}
	removed := PoolView{State: StateLive, LiveSince: t0.Add(-time.Hour), Removed: true}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name   string
		s      Situation
		pol    *Policy
		active int
		move   Move
		run    []bool
	}{
		{name: "startup on the best live pool",
			s:      Situation{Pools: []PoolView{live(0), live(0), down}, Active: -1, Now: t0, Start: t0},
			active: 0, move: MoveStartup, run: []bool{true, true, false}},
		{name: "startup waits for a better pool still handshaking",
			s:      Situation{Pools: []PoolView{shaking, live(0)}, Active: -1, Now: at(time.Second), Start: t0},
			active: -1, move: MoveNone, run: []bool{true, true}},
		{name: "startup takes the backup once the grace is over",
			s:      Situation{Pools: []PoolView{shaking, live(0)}, Active: -1, Now: at(5 * time.Second), Start: t0},
			active: 1, move: MoveStartup, run: []bool{true, true}},
		{name: "startup does not wait for a pool refused for good",
			s:      Situation{Pools: []PoolView{refused, live(0)}, Active: -1, Now: at(time.Second), Start: t0},
			active: 1, move: MoveStartup, run: []bool{true, true}},
		{name: "a pool too small for the miners is refused: not waited for, not taken",
			s:      Situation{Pools: []PoolView{refused, refused, live(0)}, Active: -1, Now: at(time.Millisecond), Start: t0},
			active: 2, move: MoveStartup, run: []bool{true, true, true}},
		{name: "stay on a live active pool",
			s:      Situation{Pools: []PoolView{live(time.Hour), live(time.Hour)}, Active: 0, Now: t0, Start: t0.Add(-time.Hour)},
			active: 0, move: MoveNone, run: []bool{true, true}},
		{name: "failover to the next live pool",
			s:      Situation{Pools: []PoolView{suspect, live(time.Minute), live(time.Minute)}, Active: 0, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true, true}},
		{name: "failover skips a dark backup",
			s:      Situation{Pools: []PoolView{down, down, live(time.Minute)}, Active: 0, Now: t0},
			active: 2, move: MoveFailover, run: []bool{true, true, true}},
		{name: "a rejecting pool (suspect) is left",
			s:      Situation{Pools: []PoolView{{State: StateSuspect}, live(time.Minute)}, Active: 0, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true}},
		{name: "failback waits for failback_after",
			s:      Situation{Pools: []PoolView{live(fb - time.Millisecond), live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "failback after failback_after",
			s:      Situation{Pools: []PoolView{live(fb), live(time.Hour)}, Active: 1, Now: t0},
			active: 0, move: MoveFailback, run: []bool{true, true}},
		{name: "a pool that flapped inside failback_after waits from its last recovery",
			s:      Situation{Pools: []PoolView{live(fb / 2), live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "two strikes: the hold is four times failback_after",
			s:      Situation{Pools: []PoolView{{State: StateLive, LiveSince: t0.Add(-3 * fb), Strikes: 2, Answering: true}, live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "two strikes, held four times failback_after: back",
			s:      Situation{Pools: []PoolView{{State: StateLive, LiveSince: t0.Add(-4 * fb), Strikes: 2, Answering: true}, live(time.Hour)}, Active: 1, Now: t0},
			active: 0, move: MoveFailback, run: []bool{true, true}},
		{name: "failback to the best of two better pools",
			s:      Situation{Pools: []PoolView{live(time.Hour), live(time.Hour), live(time.Hour)}, Active: 2, Now: t0},
			active: 0, move: MoveFailback, run: []bool{true, true, false}},
		{name: "all down: told once",
			s:      Situation{Pools: []PoolView{suspect, down}, Active: 0, Now: t0},
			active: -1, move: MoveAllDown, run: []bool{true, true}},
		{name: "all down already: nothing more",
			s:      Situation{Pools: []PoolView{down, down}, Active: -1, AllDown: true, Now: t0},
			active: -1, move: MoveNone, run: []bool{true, true}},
		{name: "nothing live at startup: not all down within the grace",
			s:      Situation{Pools: []PoolView{shaking, down}, Active: -1, Now: at(time.Second), Start: t0},
			active: -1, move: MoveNone, run: []bool{true, true}},
		{name: "nothing live at startup: all down after the grace",
			s:      Situation{Pools: []PoolView{shaking, down}, Active: -1, Now: at(6 * time.Second), Start: t0},
			active: -1, move: MoveAllDown, run: []bool{true, true}},
		{name: "recovered after all down: no wait",
			s:      Situation{Pools: []PoolView{down, live(0)}, Active: -1, AllDown: true, Now: t0},
			active: 1, move: MoveRecovered, run: []bool{true, true}},
		{name: "reload moved the active pool down the ranks: the new first waits its hold",
			s:      Situation{Pools: []PoolView{live(time.Second), live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "reload: the active pool was removed",
			s:      Situation{Pools: []PoolView{down, live(time.Hour)}, Active: -1, HadActive: true, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true}},
		{name: "a removed pool is neither taken nor run",
			s:      Situation{Pools: []PoolView{removed, live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{false, true}},
		{name: "false alarm: back at once, no hold",
			s:      Situation{Pools: []PoolView{falseAlarm, live(time.Hour)}, Active: 1, Now: t0},
			active: 0, move: MoveFalseAlarm, run: []bool{true, true}},
		{name: "false alarm past a better pool still waiting for its hold",
			s:      Situation{Pools: []PoolView{live(time.Second), falseAlarm, live(time.Hour)}, Active: 2, Now: t0},
			active: 1, move: MoveFalseAlarm, run: []bool{true, true, true}},
		{name: "false alarm with strikes: it waits its hold like any failback",
			s:      Situation{Pools: []PoolView{{State: StateLive, LiveSince: t0.Add(-time.Second), FalseAlarm: true, Strikes: 1}, live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "a false alarm ranked below the active pool: nothing to do",
			s:      Situation{Pools: []PoolView{live(time.Hour), falseAlarm}, Active: 0, Now: t0},
			active: 0, move: MoveNone, run: []bool{true, true}},
		{name: "failback waits until the pool has shown it answers in time",
			s:      Situation{Pools: []PoolView{unproven(time.Hour), live(time.Hour)}, Active: 1, Now: t0},
			active: 1, move: MoveNone, run: []bool{true, true}},
		{name: "failover prefers a pool answering in time",
			s:      Situation{Pools: []PoolView{suspect, unproven(time.Hour), live(time.Hour)}, Active: 0, Now: t0},
			active: 2, move: MoveFailover, run: []bool{true, true, true}},
		{name: "failover to a live pool not yet proven when it is the only one",
			s:      Situation{Pools: []PoolView{down, unproven(time.Hour)}, Active: 0, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true}},
		{name: "two slow pools: miners stay on the active one, which still answers",
			s:      Situation{Pools: []PoolView{late, late}, Active: 0, Now: t0},
			active: 0, move: MoveNone, run: []bool{true, true}},
		{name: "a late active pool is left for a live one",
			s:      Situation{Pools: []PoolView{late, live(time.Minute)}, Active: 0, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true}},
		{name: "the active pool dark, the other only late: miners go to it, not to hold",
			s:      Situation{Pools: []PoolView{down, late}, Active: 0, Now: t0},
			active: 1, move: MoveFailover, run: []bool{true, true}},
		{name: "all down, then a pool that answers late: recovered on it",
			s:      Situation{Pools: []PoolView{down, late}, Active: -1, AllDown: true, Now: t0},
			active: 1, move: MoveRecovered, run: []bool{true, true}},
		{name: "suspect and not answering: all down as before",
			s:      Situation{Pools: []PoolView{suspect, suspect}, Active: 0, Now: t0},
			active: -1, move: MoveAllDown, run: []bool{true, true}},
		{name: "standby 0: only pools up to the active one run",
			s:      Situation{Pools: []PoolView{live(time.Hour), live(time.Hour), live(time.Hour)}, Active: 0, Now: t0},
			pol:    &Policy{FailbackAfter: fb, Standby: 0, StartGrace: time.Second, MaxStrikes: 4},
			active: 0, move: MoveNone, run: []bool{true, false, false}},
		{name: "standby 2 after a middle active pool",
			s:      Situation{Pools: []PoolView{down, live(time.Hour), live(time.Hour), live(time.Hour), down}, Active: 1, Now: t0},
			pol:    &Policy{FailbackAfter: fb, Standby: 2, StartGrace: time.Second, MaxStrikes: 4},
			active: 1, move: MoveNone, run: []bool{true, true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol
			if tt.pol != nil {
				p = *tt.pol
			}
			d := Select(tt.s, p)
			if d.Active != tt.active || d.Move != tt.move || !slices.Equal(d.Run, tt.run) {
				t.Fatalf("Select = active %d, %v, run %v; want active %d, %v, run %v", d.Active, d.Move, d.Run, tt.active, tt.move, tt.run)
			}
		})
	}
}

func TestSelectForgivesAfterHold(t *testing.T) {
	const fb = 10 * time.Second
	t0 := time.Now()
	pol := Policy{FailbackAfter: fb, MaxStrikes: 4}
	for _, tt := range []struct {
		strikes  int
		back     time.Duration // since the failback
		forgiven bool
	}{{0, fb - 1, false}, {0, fb, true}, {1, fb, false}, {1, 2 * fb, true}, {9, 16 * fb, true}} {
		a := PoolView{State: StateLive, LiveSince: t0.Add(-time.Hour), Strikes: tt.strikes, FailbackAt: t0.Add(-tt.back), Answering: true}
		d := Select(Situation{Pools: []PoolView{a}, Active: 0, Now: t0}, pol)
		if d.Forgive != tt.forgiven {
			t.Errorf("strikes %d, %v after failback: forgive %v, want %v", tt.strikes, tt.back, d.Forgive, tt.forgiven)
		}
	}
}

func TestStrike(t *testing.T) {
	const fb = 10 * time.Second
	t0 := time.Now()
	pol := Policy{FailbackAfter: fb, MaxStrikes: 2}
	for _, tt := range []struct {
		v    PoolView
		dark time.Duration // after the failback
		want bool
	}{
		{PoolView{}, time.Second, false}, // no failback pending
		{PoolView{FailbackAt: t0}, fb / 2, true},
		{PoolView{FailbackAt: t0}, fb, false},
		{PoolView{FailbackAt: t0, Strikes: 1}, 3 * fb / 2, true},
		{PoolView{FailbackAt: t0, Strikes: 7}, 3 * fb, true}, // hold capped at 4 × fb
		{PoolView{FailbackAt: t0, Strikes: 7}, 4 * fb, false},
	} {
		if got := pol.Strike(tt.v, t0.Add(tt.dark)); got != tt.want {
			t.Errorf("Strike(%+v, +%v) = %v, want %v", tt.v, tt.dark, got, tt.want)
		}
	}
}
