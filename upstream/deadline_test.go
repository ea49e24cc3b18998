package upstream

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/stratum"
)

// fakeClock is Options.Now for tests that move time by hand: the session
// judges answer times and deadlines by it, so what a test asserts does not
// depend on how fast the machine runs.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestAnswerLatencyDeadline(t *testing.T) {
	t.Parallel()
	const floor, ceil = 500 * time.Millisecond, 3 * time.Second
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	repeat := func(d []time.Duration, n int) []time.Duration {
		var out []time.Duration
		for range n {
			out = append(out, d...)
		}
		return out
	}
	tests := []struct {
		name    string
		answers []time.Duration
		want    time.Duration
	}{
		{"nothing known: the ceiling", nil, ceil},
		{"fewer than 8 answers: the ceiling", ms(20, 20, 20, 20, 20, 20, 20), ceil},
		{"a fast pool: the floor", repeat(ms(20, 30, 40, 50), 4), floor},
		{"200 ms answers: four times that", repeat(ms(150, 200), 10), 800 * time.Millisecond},
		{"600 ms ± 200 ms: the ceiling", repeat(ms(400, 500, 600, 700, 800), 13), ceil},
		{"one outlier in 64 does not move it", append(repeat(ms(200), 63), 2*time.Second), 800 * time.Millisecond},
		{"four in 64 do: the pool stalls now and then", append(repeat(ms(200), 60), ms(700, 700, 700, 700)...), 2800 * time.Millisecond},
		{"only the last 64 count", append(repeat(ms(2000), 64), repeat(ms(100), 64)...), floor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l answerLatency
			l.init(floor, ceil)
			for _, d := range tt.answers {
				l.add(d)
			}
			if l.deadline != tt.want {
				t.Errorf("deadline %v after %d answers, want %v (p95 %v)", l.deadline, len(tt.answers), tt.want, l.high)
			}
		})
	}
	t.Run("floor at or above the ceiling turns learning off", func(t *testing.T) {
		var l answerLatency
		l.init(5*time.Second, ceil)
		for range 64 {
			l.add(time.Millisecond)
		}
		if l.deadline != ceil {
			t.Errorf("deadline %v, want %v", l.deadline, ceil)
		}
	})
}

func TestAnswerLatencyAllocs(t *testing.T) {
	var l answerLatency
	l.init(500*time.Millisecond, 3*time.Second)
	d := time.Duration(0)
	if n := testing.AllocsPerRun(1000, func() { d += time.Millisecond; l.add(d % (700 * time.Millisecond)) }); n != 0 {
		t.Errorf("add allocates %v times per answer", n)
	}
}

// answerShares submits n shares one at a time and answers each after rtt(i)
// of the session's clock.
func answerShares(t *testing.T, s *Session, rec *recorder, pc *poolConn, clk *fakeClock, first uint64, n int, rtt func(i int) time.Duration) {
	t.Helper()
	for i := range n {
		mustSubmit(t, s, testSubmit(first+uint64(i)))
		r := pc.expect(stratum.MethodSubmit)
		clk.advance(rtt(i))
		pc.reply(r, "true")
		if res := rec.result(); !res.Accepted || res.RTT != rtt(i) {
			t.Fatalf("share %d: %+v, want accepted after %v", first+uint64(i), res, rtt(i))
		}
	}
}

// noState checks that no state change arrives for a few health ticks.
func noState(t *testing.T, rec *recorder, ticks int, tick time.Duration) {
	t.Helper()
	select {
	case ev := <-rec.states:
		t.Fatalf("unexpected state %v %q; history:\n%s", ev.st, ev.reason, rec.history())
	case <-time.After(time.Duration(ticks) * tick):
	}
}

// TestDeadlineFastPoolSuspectEarly: a pool that answers in 50 ms is
// suspect once a share is 600 ms late, long before SubmitTimeout; the
// share stays pending, and when the pool answers it after all, the
// verdict counts and the session is live again as a false alarm.
func TestDeadlineFastPoolSuspectEarly(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	clk := newFakeClock()
	o := testOptions(t)
	o.SubmitTimeout, o.SubmitTimeoutMin, o.Now = 3*time.Second, 500*time.Millisecond, clk.now
	o.JobTimeout = time.Hour // the fake clock runs ahead of the jobs
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	if s.Deadline() != o.SubmitTimeout {
		t.Fatalf("deadline %v before any answer, want the ceiling %v", s.Deadline(), o.SubmitTimeout)
	}
	answerShares(t, s, rec, pc, clk, 1, 10, func(int) time.Duration { return 50 * time.Millisecond })
	if s.Deadline() != o.SubmitTimeoutMin || !s.Answering() {
		t.Fatalf("deadline %v answering %v after 10 answers in 50ms, want %v and true", s.Deadline(), s.Answering(), o.SubmitTimeoutMin)
	}
	mustSubmit(t, s, testSubmit(11))
	late := pc.expect(stratum.MethodSubmit)
	clk.advance(400 * time.Millisecond)
	noState(t, rec, 4, s.tick) // within the deadline
	clk.advance(200 * time.Millisecond)
	ev := rec.nextState()
	if ev.st != StateSuspect || !strings.HasPrefix(ev.reason, "submit_timeout: no answer within 500ms") {
		t.Fatalf("got %v %q, want suspect submit_timeout within 500ms", ev.st, ev.reason)
	}
	if s.Answering() {
		t.Error("Answering() while a share is late")
	}
	rec.noResult(4 * s.tick) // not lost: SubmitTimeout has not passed
	clk.advance(time.Second)
	pc.reply(late, "true")
	if res := rec.result(); res.Ticket != 11 || !res.Accepted {
		t.Fatalf("late share: %+v, want accepted", res)
	}
	if ev := rec.nextState(); ev.st != StateLive || ev.reason != "late_answered" {
		t.Fatalf("got %v %q, want live late_answered", ev.st, ev.reason)
	}
	if !s.Answering() {
		t.Error("Answering() false after a false alarm")
	}
}

// TestDeadlineSlowPoolNeverSuspect: a pool behind a 600 ms ± 200 ms link
// learns a deadline at the ceiling and is never suspect while it answers,
// even 2.9 s late.
func TestDeadlineSlowPoolNeverSuspect(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	clk := newFakeClock()
	o := testOptions(t)
	o.SubmitTimeout, o.SubmitTimeoutMin, o.Now = 3*time.Second, 500*time.Millisecond, clk.now
	o.JobTimeout = time.Hour // the fake clock runs ahead of the jobs
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	jitter := []time.Duration{400, 550, 800, 600, 650, 450, 700, 500}
	answerShares(t, s, rec, pc, clk, 1, 24, func(i int) time.Duration { return jitter[i%len(jitter)] * time.Millisecond })
	if s.Deadline() != o.SubmitTimeout {
		t.Fatalf("deadline %v, want the ceiling %v", s.Deadline(), o.SubmitTimeout)
	}
	mustSubmit(t, s, testSubmit(100))
	r := pc.expect(stratum.MethodSubmit)
	clk.advance(2900 * time.Millisecond)
	noState(t, rec, 4, s.tick)
	pc.reply(r, "true")
	if res := rec.result(); !res.Accepted {
		t.Fatalf("%+v", res)
	}
	noState(t, rec, 2, s.tick)
	if s.State() != StateLive {
		t.Fatalf("state %v", s.State())
	}
}

// TestDeadlineLostSharesNotFalseAlarm: when a late share is lost
// (SubmitTimeout passed) before the pool answers again, the return to live
// is an ordinary submit_answered, not a false alarm.
func TestDeadlineLostSharesNotFalseAlarm(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	clk := newFakeClock()
	o := testOptions(t)
	o.SubmitTimeout, o.SubmitTimeoutMin, o.Now = 3*time.Second, 500*time.Millisecond, clk.now
	o.JobTimeout = time.Hour // the fake clock runs ahead of the jobs
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	answerShares(t, s, rec, pc, clk, 1, 10, func(int) time.Duration { return 20 * time.Millisecond })
	mustSubmit(t, s, testSubmit(11))
	pc.expect(stratum.MethodSubmit) // never answered
	clk.advance(time.Second)
	if ev := rec.nextState(); ev.st != StateSuspect {
		t.Fatalf("got %v %q, want suspect", ev.st, ev.reason)
	}
	clk.advance(2 * time.Second)
	if res := rec.result(); res.Ticket != 11 || res.Reason != stratum.ReasonSubmitTimeout {
		t.Fatalf("%+v, want lost submit_timeout", res)
	}
	mustSubmit(t, s, testSubmit(12))
	pc.reply(pc.expect(stratum.MethodSubmit), "true")
	if res := rec.result(); res.Ticket != 12 || !res.Accepted {
		t.Fatalf("%+v", res)
	}
	if ev := rec.nextState(); ev.st != StateLive || ev.reason != "submit_answered" {
		t.Fatalf("got %v %q, want live submit_answered", ev.st, ev.reason)
	}
}

// TestStaleAnswersAreNotRefusals: a pool answering "job not found" or
// "stale" to shares that came late for its job has not stopped paying:
// those answers stay out of the reject window, while a real refusal
// trips it.
func TestStaleAnswersAreNotRefusals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		answer string // %s: the id
		trips  bool
	}{
		{"public-pool job not found", `{"id":%s,"result":null,"error":[21,"Job not found",""]}`, false},
		{"miningcore job not found", `{"result":false,"error":{"code":21,"message":"job not found","data":null},"id":%s}`, false},
		{"ckpool stale", `{"reject-reason":"Stale","result":false,"error":null,"id":%s}`, false},
		{"ckpool invalid job id", `{"reject-reason":"Invalid JobID","result":false,"error":null,"id":%s}`, false},
		{"nicehash job not found", `{"id":%s,"result":false,"error":[2,"Job not found."]}`, false},
		{"stratum stale code", `{"id":%s,"result":null,"error":[21,"Stale share",null]}`, false},
		{"low difficulty", `{"id":%s,"result":null,"error":[23,"Low difficulty share",null]}`, true},
		{"pool rejecting", `{"id":%s,"result":null,"error":[20,"Pool rejecting",null]}`, true},
		{"ckpool above target", `{"reject-reason":"Above target","result":false,"error":null,"id":%s}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			o.MaxRejectRatio, o.RejectWindow = 0.5, 4
			s, rec, _ := startSession(t, testPool(fp.url()), o)
			pc := goLive(t, fp, rec, hs{})
			for i := range 6 {
				mustSubmit(t, s, testSubmit(uint64(i+1)))
				pc.send(fmt.Sprintf(tt.answer, pc.expect(stratum.MethodSubmit).ID))
				if res := rec.result(); res.Accepted {
					t.Fatalf("%+v", res)
				}
			}
			// An answer after them: the earlier ones are booked by now.
			mustSubmit(t, s, testSubmit(7))
			pc.reply(pc.expect(stratum.MethodSubmit), "true")
			rec.result()
			select {
			case ev := <-rec.states:
				if !tt.trips || ev.st != StateSuspect || ev.reason != "rejecting" {
					t.Fatalf("got %v %q", ev.st, ev.reason)
				}
			default:
				if tt.trips {
					t.Fatalf("six refusals in a window of 4 did not trip max_reject_ratio; history:\n%s", rec.history())
				}
			}
		})
	}
}

// TestSlowHandshakeStillAnswering: a pool whose handshake answers come
// after the deadline learned from its shares, but within SubmitTimeout,
// still counts as answering: an idle better-ranked pool gets no share to
// prove itself with, and miners would never fail back to it.
func TestSlowHandshakeStillAnswering(t *testing.T) {
	t.Parallel()
	s := &Session{opts: Options{SubmitTimeout: 3 * time.Second}}
	s.lat.init(500*time.Millisecond, 3*time.Second)
	now := time.Now()
	for range 16 {
		s.noteAnswer(20*time.Millisecond, now, true) // fast shares: the floor
	}
	if s.lat.deadline != 500*time.Millisecond {
		t.Fatalf("learned deadline %v, want the floor", s.lat.deadline)
	}
	s.noteAnswer(900*time.Millisecond, now, false) // a slow authorize after a reconnect
	if !s.Answering() {
		t.Fatal("a handshake answered within submit_timeout counts as not answering")
	}
	s.noteAnswer(900*time.Millisecond, now, true) // a share that late does not
	if s.Answering() {
		t.Fatal("a share answered after the learned deadline counts as answering")
	}
}
