package app

import (
	"sync"
	"time"

	"switchyard/upstream"
)

// DefaultTimelineLen is how many switches the failover timeline keeps.
const DefaultTimelineLen = 50

// Timeline keeps the latest moves of the miners between pools, as the
// pool manager reports them (upstream.ManagerOptions.OnSwitch), for the
// status page. It holds a bounded number of events and is safe for
// concurrent use.
type Timeline struct {
	mu     sync.Mutex
	events []TimelineEvent // oldest first, at most max
	max    int
}

// TimelineEvent is one switch in /api/v1/status "timeline".
type TimelineEvent struct {
	At time.Time `json:"at"`
	// Route is the route whose miners moved.
	Route string `json:"route"`
	// From and To are pool names; "" is none (To "": no pool was live).
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// DarkSeconds is how long From had been dark when the switch was
	// decided (0 for a failback: From was live).
	DarkSeconds float64 `json:"dark_seconds"`
	// SwitchSeconds is from From going dark (a failback: from the
	// decision) to new work having reached the miners of every lane
	// reported so far, the slowest lane; absent until the first lane.
	SwitchSeconds *float64 `json:"switch_seconds,omitempty"`
	// Lanes counts the lanes whose miners had new work.
	Lanes int `json:"lanes"`

	seq uint64
}

// NewTimeline returns a Timeline keeping the latest n events (n <= 0:
// DefaultTimelineLen).
func NewTimeline(n int) *Timeline {
	if n <= 0 {
		n = DefaultTimelineLen
	}
	return &Timeline{max: n}
}

// Record takes a manager's switch report: an announcement (Took == 0)
// adds an event, a lane's report updates its event's switch time. It
// neither blocks nor calls out, as OnSwitch requires.
func (t *Timeline) Record(ev upstream.SwitchEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Took == 0 {
		if len(t.events) == t.max {
			copy(t.events, t.events[1:])
			t.events = t.events[:t.max-1]
		}
		t.events = append(t.events, TimelineEvent{At: ev.At, Route: ev.Route, From: ev.From, To: ev.To, Reason: ev.Reason,
			DarkSeconds: ev.Dark.Seconds(), seq: ev.Seq})
		return
	}
	for i := len(t.events) - 1; i >= 0; i-- {
		e := &t.events[i]
		if e.seq != ev.Seq || e.Route != ev.Route {
			continue
		}
		if s := ev.Took.Seconds(); e.SwitchSeconds == nil || s > *e.SwitchSeconds {
			e.SwitchSeconds = &s
		}
		e.Lanes++
		return
	}
}

// Events returns the events, newest first.
func (t *Timeline) Events() []TimelineEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TimelineEvent, len(t.events))
	for i, e := range t.events {
		if e.SwitchSeconds != nil {
			s := *e.SwitchSeconds
			e.SwitchSeconds = &s
		}
		out[len(out)-1-i] = e
	}
	return out
}
