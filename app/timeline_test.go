package app

import (
	"fmt"
	"testing"
	"time"

	"switchyard/upstream"
)

func TestTimeline(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tl := NewTimeline(3)
	tl.Record(upstream.SwitchEvent{Seq: 1, At: t0, To: "primary", Reason: "startup"})
	tl.Record(upstream.SwitchEvent{Seq: 2, At: t0.Add(time.Minute), From: "primary", To: "backup", Reason: "submit_timeout", Dark: 3 * time.Second})
	tl.Record(upstream.SwitchEvent{Seq: 2, Lane: 1, Took: 3400 * time.Millisecond})
	tl.Record(upstream.SwitchEvent{Seq: 2, Lane: 0, Took: 3100 * time.Millisecond})
	tl.Record(upstream.SwitchEvent{Seq: 99, Lane: 0, Took: time.Second}) // an event no longer kept: ignored

	ev := tl.Events()
	if len(ev) != 2 || ev[0].To != "backup" || ev[1].Reason != "startup" {
		t.Fatalf("events %+v, want the failover then the startup", ev)
	}
	e := ev[0]
	if e.From != "primary" || e.DarkSeconds != 3 || e.SwitchSeconds == nil || *e.SwitchSeconds != 3.4 || e.Lanes != 2 {
		t.Errorf("failover %+v: want dark 3 s, switch 3.4 s (slowest lane), 2 lanes", e)
	}
	if ev[1].SwitchSeconds != nil {
		t.Errorf("startup has a switch time %v", *ev[1].SwitchSeconds)
	}
	*e.SwitchSeconds = 0 // callers get copies
	if s := *tl.Events()[0].SwitchSeconds; s != 3.4 {
		t.Errorf("Events shares its switch times: %v", s)
	}

	// Bounded: the oldest go first.
	for i := 3; i <= 6; i++ {
		tl.Record(upstream.SwitchEvent{Seq: uint64(i), At: t0.Add(time.Duration(i) * time.Minute), From: "a", To: fmt.Sprint(i)})
	}
	ev = tl.Events()
	if len(ev) != 3 || ev[0].To != "6" || ev[2].To != "4" {
		t.Errorf("after 6 switches with room for 3: %+v", ev)
	}
}
