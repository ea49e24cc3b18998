package upstream

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"switchyard/internal/testkit"
	"switchyard/stratum"
)

// lockedBuf is a goroutine-safe log sink.
type lockedBuf struct{ testkit.Buffer }

func (l *lockedBuf) count(s string) int { return strings.Count(l.String(), s) }

// TestLateSubmitsLoggedOnce: submits that time out on several health
// ticks while the pool is dark give one warning when the session turns
// suspect, not one per tick.
func TestLateSubmitsLoggedOnce(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.SubmitTimeout = shortTimeout
	logs := &lockedBuf{}
	o.Log = zerolog.New(logs).Level(zerolog.WarnLevel)
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	mustSubmit(t, s, testSubmit(1))
	pc.expect(stratum.MethodSubmit)
	// Later submits expire on later ticks, while the session is suspect.
	for i := uint64(2); i <= 4; i++ {
		time.Sleep(shortTimeout / 5)
		if s.Submit(testSubmit(i)) != nil {
			break // already down: fewer late shares, still one line
		}
	}
	for i := 0; i < 4; i++ {
		if res := rec.result(); res.Accepted {
			t.Fatalf("result %+v", res)
		}
	}
	rec.waitState(StateDown)
	pc.waitClosed()
	if n := logs.count("pool did not answer submits in time"); n != 1 {
		t.Errorf("%d warnings for one dark spell, want 1:\n%s", n, logs.String())
	}
}

func TestLogLateRepeatsAtMostEvery30s(t *testing.T) {
	logs := &lockedBuf{}
	s := &Session{log: zerolog.New(logs), opts: Options{SubmitTimeout: time.Second}}
	t0 := time.Unix(1700000000, 0)
	s.logLate(t0, 1, true)
	for i := 1; i < 100; i++ {
		s.logLate(t0.Add(time.Duration(i)*100*time.Millisecond), 2, false) // ticks while dark
	}
	if n := logs.count("did not answer"); n != 1 {
		t.Fatalf("%d lines within 10s, want 1", n)
	}
	s.logLate(t0.Add(lateLogEvery), 1, false)
	if n := logs.count(`"shares":199`); n != 1 {
		t.Fatalf("the repeat does not carry the count of shares since the last line:\n%s", logs.String())
	}
	s.logLate(t0.Add(lateLogEvery+time.Second), 1, true) // a new dark spell
	if n := logs.count("did not answer"); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, logs.String())
	}
}
