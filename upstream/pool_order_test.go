package upstream

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"switchyard/stratum"
)

// TestFirstJobDifficulty plays the orders in which real pools send the first
// mining.notify, mining.set_difficulty and the authorize answer, and checks
// the first job goes out at the difficulty in force when it is delivered.
// ckpool (stratifier.c, update_client) sends notify then difficulty after
// the subscribe answer, before it answers authorize; public-pool
// (StratumV1Client.ts, initStratum) answers authorize, then sends
// set_difficulty, then the job.
func TestFirstJobDifficulty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// play answers the subscribe (sub) and authorize (auth) requests
		// and sends the lines of one order.
		play     func(pc *poolConn, sub func(), auth func())
		wantDiff float64
		grace    bool // live only after diffGrace: no set_difficulty came
	}{
		{"difficulty, notify, authorize answer", func(pc *poolConn, sub, auth func()) {
			sub()
			pc.send(setDifficulty("2048"), notifyLine("j1", true))
			auth()
		}, 2048, false},
		{"notify, difficulty, authorize answer (ckpool)", func(pc *poolConn, sub, auth func()) {
			sub()
			pc.send(notifyLine("j1", true), setDifficulty("2048"))
			auth()
		}, 2048, false},
		{"authorize answer, difficulty, notify (public-pool)", func(pc *poolConn, sub, auth func()) {
			sub()
			auth()
			pc.send(setDifficulty("2048"), notifyLine("j1", true))
		}, 2048, false},
		{"authorize answer, notify, difficulty", func(pc *poolConn, sub, auth func()) {
			sub()
			auth()
			pc.send(notifyLine("j1", true))
			time.Sleep(50 * time.Millisecond) // the session holds the job meanwhile
			pc.send(setDifficulty("2048"))
		}, 2048, false},
		{"notify before the subscribe answer, difficulty after authorize", func(pc *poolConn, sub, auth func()) {
			pc.send(notifyLine("j1", true))
			sub()
			auth()
			pc.send(setDifficulty("2048"))
		}, 2048, false},
		{"two difficulties while the job waits: the later one", func(pc *poolConn, sub, auth func()) {
			sub()
			pc.send(setDifficulty("512"), notifyLine("j1", true), setDifficulty("2048"))
			auth()
		}, 2048, false},
		{"no difficulty at all: 1 after the grace", func(pc *poolConn, sub, auth func()) {
			sub()
			auth()
			pc.send(notifyLine("j1", true))
		}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			s, rec, _ := startSession(t, testPool(fp.url()), o)
			pc := fp.accept()
			subReq := pc.expect(stratum.MethodSubscribe)
			var authReq req
			sub := func() {
				pc.reply(subReq, subscribeResult("f000000a", 8))
				authReq = pc.expect(stratum.MethodAuthorize)
			}
			auth := func() { pc.reply(authReq, "true") }
			tt.play(pc, sub, auth)

			hsEv := rec.waitState(StateHandshaking)
			j := rec.job()
			live := rec.nextState()
			if live.st != StateLive || live.reason != CauseAuthorized.String() {
				t.Fatalf("got %v %q, want live authorized; history:\n%s", live.st, live.reason, rec.history())
			}
			if j.Difficulty != tt.wantDiff {
				t.Fatalf("first job at difficulty %v, want %v; history:\n%s", j.Difficulty, tt.wantDiff, rec.history())
			}
			if g := diffGrace(o.SubmitTimeout); tt.grace && live.at.Sub(hsEv.at) < g-slack {
				t.Errorf("live %v after connecting, before the %v grace for a set_difficulty", live.at.Sub(hsEv.at), g)
			}

			// Once delivered, a job keeps its difficulty: a later
			// set_difficulty is for the jobs after it.
			pc.send(setDifficulty("4096"))
			pc.send(notifyLine("j2", false))
			j2 := rec.job()
			if j2.Difficulty != 4096 || j.Difficulty != tt.wantDiff {
				t.Errorf("j2 difficulty %v (j1 %v), want 4096 (%v)", j2.Difficulty, j.Difficulty, tt.wantDiff)
			}
			if s.Current() != j2 {
				t.Error("Current() is not j2")
			}
		})
	}
}

func TestDiffGrace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ submit, want time.Duration }{
		{3 * time.Second, time.Second},
		{6 * time.Second, time.Second},
		{300 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := diffGrace(tt.submit); got != tt.want {
			t.Errorf("diffGrace(%v) = %v, want %v", tt.submit, got, tt.want)
		}
	}
}

// TestPoolRequests checks what the session answers to requests a pool
// makes: client.get_version its user agent, mining.ping "pong" (as cgminer
// does, util.c send_pong), any other request with an id a JSON-RPC error;
// notifications and client.show_message get no answer.
func TestPoolRequests(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	s, rec, _ := startSession(t, testPool(fp.url()), testOptions(t))
	pc := goLive(t, fp, rec, hs{})
	pc.send(`{"id":null,"method":"client.show_message","params":["maintenance at noon"]}`,
		`{"id":77,"method":"client.get_version","params":[]}`,
		`{"id":78,"method":"mining.ping","params":[]}`,
		`{"id":null,"method":"mining.ping","params":[]}`,
		`{"id":"p9","method":"mining.ping"}`,
		`{"id":79,"method":"client.no_such_thing","params":[1]}`,
		`{"id":null,"method":"client.no_such_thing","params":[]}`,
		`{"method":"client.no_such_thing","params":[]}`,
		`{"id":999,"result":true,"error":null}`)
	want := []string{
		`{"id":77,"result":"switchyard/test","error":null}`,
		`{"id":78,"result":"pong","error":null}`,
		`{"id":"p9","result":"pong","error":null}`,
		fmt.Sprintf(`{"id":79,"result":null,"error":[%d,"Unknown method",null]}`, stratum.CodeOther),
	}
	for _, w := range want {
		if r := pc.next(); r.line != w {
			t.Errorf("answer %s, want %s", r.line, w)
		}
	}
	pc.quiet(100 * time.Millisecond)
	if st := s.State(); st != StateLive {
		t.Errorf("state %v", st)
	}
}

// TestReconnectedReason: the first connection of a session is "connected",
// every later one "reconnected" (what switchyard_pool_reconnects_total
// counts).
func TestReconnectedReason(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	_, rec, _ := startSession(t, testPool(fp.url()), testOptions(t))
	for i, want := range []string{CauseConnected.String(), CauseReconnected.String(), CauseReconnected.String()} {
		pc := fp.accept()
		if ev := rec.waitState(StateHandshaking); ev.reason != want {
			t.Fatalf("connection %d: handshaking %q, want %q", i+1, ev.reason, want)
		}
		pc.close()
		rec.waitState(StateDown)
	}
}

// TestRefusedForGood: a pool that refuses our credentials, or whose
// extranonce2 is too small (at subscribe or later by set_extranonce), is
// down with a reason callers can branch on, and redialed only after the
// longest backoff.
func TestRefusedForGood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pool   func(t *testing.T, fp *fakePool, rec *recorder)
		reason string
	}{
		{"authorize refused", func(t *testing.T, fp *fakePool, rec *recorder) {
			pc := fp.accept()
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.replyErr(pc.expect(stratum.MethodAuthorize), 24, "Unauthorized worker")
		}, CauseUnauthorized.String()},
		{"extranonce2 too small at subscribe", func(t *testing.T, fp *fakePool, rec *recorder) {
			pc := fp.accept()
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 2))
		}, CauseExtranonce2TooSmall.String()},
		{"extranonce2 too small by set_extranonce", func(t *testing.T, fp *fakePool, rec *recorder) {
			pc := goLive(t, fp, rec, hs{})
			pc.send(`{"id":null,"method":"mining.set_extranonce","params":["aabbccdd",3]}`)
		}, CauseExtranonce2TooSmall.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			o.MinExtranonce2Size = 4
			o.BackoffMin = 10 * time.Millisecond
			o.BackoffMax = 400 * time.Millisecond
			_, rec, _ := startSession(t, testPool(fp.url()), o)
			tt.pool(t, fp, rec)
			down := rec.waitState(StateDown)
			if down.reason != tt.reason || !(down.reason == CauseUnauthorized.String() || down.reason == CauseExtranonce2TooSmall.String()) {
				t.Fatalf("down %q, want %q; history:\n%s", down.reason, tt.reason, rec.history())
			}
			next := rec.waitState(StateConnecting)
			if wait := next.at.Sub(down.at); wait < o.BackoffMax/2 {
				t.Errorf("redialed %v after %s, want ≥ %v", wait, down.reason, o.BackoffMax/2)
			}
		})
	}
	for _, c := range Causes() {
		if c.RefusedForGood() != (c == CauseUnauthorized || c == CauseExtranonce2TooSmall) {
			t.Errorf("%v.RefusedForGood() = %v", c, c.RefusedForGood())
		}
	}
}

// TestDeepMerkleBranch: a job whose merkle branch has MaxBranchLen hashes
// (a block of billions of transactions; more than 16 already for 65,537)
// is delivered, not refused as a bad notify.
func TestDeepMerkleBranch(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	_, rec, _ := startSession(t, testPool(fp.url()), testOptions(t))
	pc := goLive(t, fp, rec, hs{})
	rec.job()
	line := notifyLine("deep", false)
	one := `["` + strings.Repeat("ab", 32) + `"]`
	hashes := make([]string, stratum.MaxBranchLen)
	for i := range hashes {
		hashes[i] = fmt.Sprintf(`"%s"`, strings.Repeat(fmt.Sprintf("%02x", i), 32))
	}
	pc.send(strings.Replace(line, one, "["+strings.Join(hashes, ",")+"]", 1))
	j := rec.job()
	if j.Notify.JobID != "deep" || len(j.Notify.Branch) != stratum.MaxBranchLen {
		t.Fatalf("job %s with %d hashes", j.Notify.JobID, len(j.Notify.Branch))
	}
}
