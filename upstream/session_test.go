package upstream

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/stratum"
)

func TestHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mask     uint32 // Options.VersionMask
		pool     string // how the pool answers mining.configure
		wantMask uint32
	}{
		{"no configure sent", 0, "", 0},
		{"configure agreed", DefaultVersionMask, "agree", DefaultVersionMask},
		{"configure narrower mask", DefaultVersionMask, "narrow", 0x00ffe000},
		{"configure error", DefaultVersionMask, "error", 0},
		{"configure says false", DefaultVersionMask, "false", 0},
		{"configure unanswered", DefaultVersionMask, "silent", 0},
		{"configure answered after authorize", DefaultVersionMask, "late", DefaultVersionMask},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			o.VersionMask = tt.mask
			if tt.pool == "silent" {
				o.SubmitTimeout = shortTimeout
			}
			s, rec, _ := startSession(t, testPool(fp.url()), o)
			pc := fp.accept()

			var cfg req
			if tt.mask != 0 {
				cfg = pc.expect(stratum.MethodConfigure)
				if got, want := string(cfg.Params[1]), `{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}`; got != want {
					t.Errorf("configure params %s, want %s", got, want)
				}
				switch tt.pool {
				case "agree":
					pc.reply(cfg, `{"version-rolling":true,"version-rolling.mask":"1fffe000"}`)
				case "narrow":
					pc.reply(cfg, `{"version-rolling":true,"version-rolling.mask":"00ffe000"}`)
				case "error":
					pc.replyErr(cfg, 20, "Method not found")
				case "false":
					pc.reply(cfg, `{"version-rolling":false}`)
				}
			}
			sub := pc.expect(stratum.MethodSubscribe)
			if got := sub.param(0); got != "switchyard/test" {
				t.Errorf("subscribe user agent %q", got)
			}
			pc.reply(sub, subscribeResult("f000000a", 8))
			auth := pc.expect(stratum.MethodAuthorize)
			if auth.param(0) != "acct.farm1" || auth.param(1) != "x" {
				t.Errorf("authorize params %s", auth.line)
			}
			// set_difficulty and notify before the authorize answer: kept.
			pc.send(setDifficulty("2048"), notifyLine("j1", true))
			pc.reply(auth, "true")
			if tt.pool == "late" {
				time.Sleep(50 * time.Millisecond)
				if st := s.State(); st != StateHandshaking {
					t.Errorf("state %v before the configure answer, want handshaking", st)
				}
				pc.reply(cfg, `{"version-rolling":true,"version-rolling.mask":"1fffe000"}`)
			}

			if ev := rec.nextState(); ev.st != StateConnecting {
				t.Errorf("first state %v", ev.st)
			}
			hsEv := rec.nextState()
			if hsEv.st != StateHandshaking {
				t.Errorf("second state %v", hsEv.st)
			}
			j := rec.job()
			live := rec.nextState()
			if live.st != StateLive || live.reason != "authorized" {
				t.Fatalf("got %v %q, want live authorized", live.st, live.reason)
			}
			if el := live.at.Sub(hsEv.at); tt.pool == "silent" && el < o.SubmitTimeout-slack {
				t.Errorf("live %v after connect, before the configure timeout", el)
			}
			if j.VersionMask != tt.wantMask {
				t.Errorf("job mask %08x, want %08x", j.VersionMask, tt.wantMask)
			}
			if j.Notify.JobID != "j1" || j.Difficulty != 2048 || hex.EncodeToString(j.Extranonce1) != "f000000a" || j.Extranonce2Size != 8 {
				t.Errorf("job %s diff %v en1 %x en2 %d", j.Notify.JobID, j.Difficulty, j.Extranonce1, j.Extranonce2Size)
			}
			if s.Current() != j {
				t.Error("Current() is not the delivered job")
			}
			if en1, n := s.Extranonce(); hex.EncodeToString(en1) != "f000000a" || n != 8 {
				t.Errorf("Extranonce() = %x, %d", en1, n)
			}
		})
	}
}

func TestJobDifficultyExtranonceMask(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.VersionMask = DefaultVersionMask
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{configure: true, mask: "1fffe000", difficulty: "1024"})
	j1 := rec.job()
	if j1.Difficulty != 1024 {
		t.Fatalf("j1 difficulty %v", j1.Difficulty)
	}

	pc.send(setDifficulty("2048"))
	pc.send(notifyLine("j2", false))
	j2 := rec.job()
	if j2.Difficulty != 2048 || j1.Difficulty != 1024 {
		t.Errorf("j2 difficulty %v (j1 %v), want 2048 (1024)", j2.Difficulty, j1.Difficulty)
	}

	pc.send(`{"id":null,"method":"mining.set_extranonce","params":["aabbccdd",6]}`, notifyLine("j3", true))
	j3 := rec.job()
	if hex.EncodeToString(j3.Extranonce1) != "aabbccdd" || j3.Extranonce2Size != 6 {
		t.Errorf("j3 en1 %x size %d", j3.Extranonce1, j3.Extranonce2Size)
	}
	if hex.EncodeToString(j2.Extranonce1) != "f000000a" {
		t.Errorf("j2 changed: en1 %x", j2.Extranonce1)
	}
	if en1, n := s.Extranonce(); hex.EncodeToString(en1) != "aabbccdd" || n != 6 {
		t.Errorf("Extranonce() = %x, %d", en1, n)
	}

	// Impossible set_extranonce values are ignored; so is a broken notify.
	pc.send(`{"id":null,"method":"mining.set_extranonce","params":["zz",4]}`,
		`{"id":null,"method":"mining.set_extranonce","params":["aa",0]}`,
		`{"id":null,"method":"mining.set_extranonce","params":["aa",17]}`,
		`{"id":null,"method":"mining.notify","params":["bad","00",[],"",[],"20000000","1703a30c","6543ae11",true]}`,
		notifyLine("j4", false))
	j4 := rec.job()
	if j4.Notify.JobID != "j4" || hex.EncodeToString(j4.Extranonce1) != "aabbccdd" || j4.Extranonce2Size != 6 {
		t.Errorf("j4 %s en1 %x size %d", j4.Notify.JobID, j4.Extranonce1, j4.Extranonce2Size)
	}

	pc.send(`{"id":null,"method":"mining.set_version_mask","params":["00ff0000"]}`, notifyLine("j5", false))
	if j5 := rec.job(); j5.VersionMask != 0x00ff0000 {
		t.Errorf("j5 mask %08x", j5.VersionMask)
	}
	if j4.VersionMask != DefaultVersionMask {
		t.Errorf("j4 mask changed to %08x", j4.VersionMask)
	}
	if st := s.State(); st != StateLive {
		t.Errorf("state %v after ignored lines, want live", st)
	}
	if s.Current().Notify.JobID != "j5" {
		t.Errorf("Current() = %s", s.Current().Notify.JobID)
	}
}

func TestSubmitAnswers(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	s, rec, _ := startSession(t, testPool(fp.url()), testOptions(t))
	pc := goLive(t, fp, rec, hs{})

	tests := []struct {
		name     string
		worker   string
		version  bool
		answer   string // %s is the id
		accepted bool
		code     int
		msg      string
	}{
		{"accepted", "", false, `{"id":%s,"result":true,"error":null}`, true, 0, ""},
		{"accepted with version and worker", "acct.rig7", true, `{"id":%s,"result":true,"error":null}`, true, 0, ""},
		{"accepted id as string", "", false, `{"id":"%s","result":true,"error":null}`, true, 0, ""},
		{"rejected triple", "", false, `{"id":%s,"result":null,"error":[23,"Low difficulty share",null]}`, false, 23, "Low difficulty share"},
		{"rejected object", "", false, `{"id":%s,"result":false,"error":{"code":21,"message":"Job not found"}}`, false, 21, "Job not found"},
		{"rejected false without error", "", false, `{"id":%s,"result":false,"error":null}`, false, 0, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := testSubmit(uint64(100 + i))
			sub.Worker = tt.worker
			sub.Version, sub.HasVersion = 0x00a00000, tt.version
			mustSubmit(t, s, sub)
			r := pc.expect(stratum.MethodSubmit)
			wantWorker := tt.worker
			if wantWorker == "" {
				wantWorker = "acct.farm1"
			}
			want := []string{wantWorker, "j1", fmt.Sprintf("00000000000000%02x", 100+i), "6543ae11", fmt.Sprintf("%08x", 100+i)}
			if tt.version {
				want = append(want, "00a00000")
			}
			if len(r.Params) != len(want) {
				t.Fatalf("submit %s, want %v", r.line, want)
			}
			for k, w := range want {
				if r.param(k) != w {
					t.Errorf("submit param %d = %q, want %q", k, r.param(k), w)
				}
			}
			pc.send(fmt.Sprintf(tt.answer, r.ID))
			res := rec.result()
			if res.Ticket != sub.Ticket || res.Accepted != tt.accepted || res.Code != tt.code || res.Message != tt.msg {
				t.Errorf("result %+v", res)
			}
			wantReason := stratum.ReasonNone
			if !tt.accepted {
				wantReason = stratum.ReasonPoolRejected
			}
			if res.Reason != wantReason || res.RTT <= 0 || res.Submit != *sub {
				t.Errorf("reason %v rtt %v submit %+v", res.Reason, res.RTT, res.Submit)
			}
		})
	}
}

func TestSubmitTimeout(t *testing.T) {
	t.Parallel()
	t.Run("answers resume", func(t *testing.T) {
		t.Parallel()
		fp := newFakePool(t)
		o := testOptions(t)
		o.SubmitTimeout = shortTimeout
		s, rec, _ := startSession(t, testPool(fp.url()), o)
		pc := goLive(t, fp, rec, hs{})
		mustSubmit(t, s, testSubmit(1))
		sent := time.Now()
		late := pc.expect(stratum.MethodSubmit) // never answered in time
		res := rec.result()
		if res.Ticket != 1 || res.Accepted || res.Reason != stratum.ReasonSubmitTimeout {
			t.Fatalf("result %+v", res)
		}
		if el := time.Since(sent); el < o.SubmitTimeout || el > o.SubmitTimeout+lateOK {
			t.Errorf("timed out after %v, want about %v", el, o.SubmitTimeout)
		}
		if ev := rec.nextState(); ev.st != StateSuspect || ev.reason != "submit_timeout" {
			t.Fatalf("got %v %q, want suspect submit_timeout", ev.st, ev.reason)
		}
		// Still accepting in suspect; a timely answer brings it back.
		mustSubmit(t, s, testSubmit(2))
		pc.reply(pc.expect(stratum.MethodSubmit), "true")
		if res := rec.result(); res.Ticket != 2 || !res.Accepted {
			t.Fatalf("result %+v", res)
		}
		if ev := rec.nextState(); ev.st != StateLive || ev.reason != "submit_answered" {
			t.Fatalf("got %v %q, want live submit_answered", ev.st, ev.reason)
		}
		// The late answer to the first submit makes no second result.
		pc.reply(late, "true")
		rec.noResult(100 * time.Millisecond)
		if st := s.State(); st != StateLive {
			t.Errorf("state %v", st)
		}
	})
	t.Run("silence goes down", func(t *testing.T) {
		t.Parallel()
		fp := newFakePool(t)
		o := testOptions(t)
		o.SubmitTimeout = shortTimeout
		s, rec, _ := startSession(t, testPool(fp.url()), o)
		pc := goLive(t, fp, rec, hs{})
		mustSubmit(t, s, testSubmit(1))
		pc.expect(stratum.MethodSubmit)
		if res := rec.result(); res.Reason != stratum.ReasonSubmitTimeout {
			t.Fatalf("result %+v", res)
		}
		suspect := rec.nextState()
		if suspect.st != StateSuspect {
			t.Fatalf("state %v", suspect.st)
		}
		down := rec.nextState()
		if down.st != StateDown || down.reason != "submit_timeout" {
			t.Fatalf("got %v %q, want down submit_timeout", down.st, down.reason)
		}
		if el := down.at.Sub(suspect.at); el < o.SubmitTimeout-slack || el > o.SubmitTimeout+lateOK {
			t.Errorf("down %v after suspect, want about %v", el, o.SubmitTimeout)
		}
		pc.waitClosed()
		goLive(t, fp, rec, hs{}) // redialed
	})
}

func TestEOFReconnect(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.BackoffMin = 200 * time.Millisecond
	o.BackoffMax = time.Second
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	for i := uint64(1); i <= 3; i++ {
		mustSubmit(t, s, testSubmit(i))
		pc.expect(stratum.MethodSubmit)
	}
	pc.close()
	down := rec.nextState()
	if down.st != StateDown || down.reason != "eof" {
		t.Fatalf("got %v %q, want down eof", down.st, down.reason)
	}
	seen := map[uint64]bool{}
	for range 3 {
		res := rec.result()
		if res.Accepted || res.Reason != stratum.ReasonUpstreamDown || seen[res.Ticket] {
			t.Errorf("result %+v", res)
		}
		seen[res.Ticket] = true
	}
	if err := s.Submit(testSubmit(9)); !errors.Is(err, ErrNotLive) {
		t.Errorf("Submit while down: %v", err)
	}
	if s.Current() != nil {
		t.Error("Current() not nil while down")
	}
	conn := rec.nextState()
	if conn.st != StateConnecting {
		t.Fatalf("state %v", conn.st)
	}
	if wait := conn.at.Sub(down.at); wait < o.BackoffMin/2 {
		t.Errorf("redialed after %v, want backoff ≥ %v", wait, o.BackoffMin/2)
	}
	goLive(t, fp, rec, hs{jobID: "j9"})
	if j := s.Current(); j == nil || j.Notify.JobID != "j9" {
		t.Errorf("Current() after reconnect = %v", j)
	}
	mustSubmit(t, s, testSubmit(10))
}

func TestSilentPool(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t) // accepts TCP, never answers
	o := testOptions(t)
	o.SubmitTimeout = shortTimeout
	_, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := fp.accept()
	hsEv := rec.waitState(StateHandshaking)
	pc.expect(stratum.MethodSubscribe)
	down := rec.nextState()
	if down.st != StateDown || down.reason != "handshake_timeout: subscribe" {
		t.Fatalf("got %v %q, want down handshake timeout", down.st, down.reason)
	}
	if el := down.at.Sub(hsEv.at); el < o.SubmitTimeout-slack || el > o.SubmitTimeout+lateOK {
		t.Errorf("down after %v, want about %v", el, o.SubmitTimeout)
	}
	pc.waitClosed()
	fp.accept() // and redials
}

func TestHandshakeFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   func(*Options)
		pool   func(pc *poolConn)
		reason string
	}{
		{"authorize refused", nil, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.reply(pc.expect(stratum.MethodAuthorize), "false")
		}, "unauthorized"},
		{"authorize error", nil, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.replyErr(pc.expect(stratum.MethodAuthorize), 24, "Unauthorized worker")
		}, "unauthorized"},
		{"authorize unanswered", func(o *Options) { o.SubmitTimeout = shortTimeout }, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.expect(stratum.MethodAuthorize)
		}, "handshake_timeout: authorize"},
		{"subscribe refused", nil, func(pc *poolConn) {
			pc.replyErr(pc.expect(stratum.MethodSubscribe), 20, "go away")
		}, "subscribe_refused"},
		{"subscribe bad answer", nil, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), `[[],"xyz",4]`)
		}, "subscribe_refused: bad answer"},
		{"extranonce2 too small", func(o *Options) { o.MinExtranonce2Size = 4 }, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 2))
		}, "extranonce2_too_small"},
		{"no first job", func(o *Options) { o.JobTimeout = 300 * time.Millisecond }, func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.reply(pc.expect(stratum.MethodAuthorize), "true")
		}, "job_timeout"},
		{"overlong line", nil, func(pc *poolConn) {
			pc.send(`{"id":null,"method":"client.show_message","params":["` + strings.Repeat("a", stratum.DefaultMaxPoolLineLen) + `"]}`)
		}, "line_too_long"},
		{"garbage lines", nil, func(pc *poolConn) {
			pc.send("hello", "{", `{"id":1}`, "[]", "not json")
		}, "malformed: undecodable line"},
		{"bad notifies", nil, func(pc *poolConn) {
			for range 5 {
				pc.send(`{"id":null,"method":"mining.notify","params":["x"]}`)
			}
		}, "malformed: bad mining.notify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, rec, _ := startSession(t, testPool(fp.url()), o)
			pc := fp.accept()
			tt.pool(pc)
			down := rec.waitState(StateDown)
			if down.reason != tt.reason {
				t.Fatalf("down %q, want %q; history:\n%s", down.reason, tt.reason, rec.history())
			}
			pc.waitClosed()
		})
	}
}

func TestUnauthorizedBacksOffLonger(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.BackoffMin = 10 * time.Millisecond
	o.BackoffMax = 400 * time.Millisecond
	_, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := fp.accept()
	pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
	pc.reply(pc.expect(stratum.MethodAuthorize), "false")
	down := rec.waitState(StateDown)
	if down.reason != "unauthorized" {
		t.Fatalf("down %q", down.reason)
	}
	next := rec.waitState(StateConnecting)
	if wait := next.at.Sub(down.at); wait < o.BackoffMax/2 {
		t.Errorf("redialed %v after unauthorized, want ≥ %v", wait, o.BackoffMax/2)
	}
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.JobTimeout = 600 * time.Millisecond // 1.5× and 2× differ by more than lateOK
	_, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	j1 := rec.job()
	ev := rec.nextState()
	if ev.st != StateSuspect || ev.reason != "job_timeout" {
		t.Fatalf("got %v %q, want suspect job_timeout", ev.st, ev.reason)
	}
	if el := ev.at.Sub(j1.Received); el < o.JobTimeout || el > o.JobTimeout+lateOK {
		t.Errorf("suspect %v after the job, want about %v", el, o.JobTimeout)
	}
	pc.send(notifyLine("j2", false))
	j2 := rec.job()
	if j2.Notify.JobID != "j2" {
		t.Fatalf("job %s", j2.Notify.JobID)
	}
	ev = rec.nextState()
	if ev.st != StateLive || ev.reason != "job_received" {
		t.Fatalf("got %v %q, want live job_received", ev.st, ev.reason)
	}
	suspect := rec.nextState()
	down := rec.nextState()
	if suspect.st != StateSuspect || down.st != StateDown || down.reason != "job_timeout" {
		t.Fatalf("got %v then %v %q", suspect.st, down.st, down.reason)
	}
	want := o.JobTimeout + o.JobTimeout/2
	if el := down.at.Sub(j2.Received); el < want || el > want+lateOK {
		t.Errorf("down %v after the last job, want about %v", el, want)
	}
	pc.waitClosed()
}

func TestRejectRatio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reject []bool
		down   bool
	}{
		{"all rejected", []bool{true, true, true, true}, true},
		{"over the ratio", []bool{false, true, true, true}, true},
		{"at the ratio", []bool{true, false, true, false, false, false}, false},
		{"window not full", []bool{true, true, true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakePool(t)
			o := testOptions(t)
			o.RejectWindow, o.MaxRejectRatio = 4, 0.5
			s, rec, _ := startSession(t, testPool(fp.url()), o)
			pc := goLive(t, fp, rec, hs{})
			for i, rej := range tt.reject {
				mustSubmit(t, s, testSubmit(uint64(i)))
				r := pc.expect(stratum.MethodSubmit)
				if rej {
					pc.replyErr(r, 23, "Low difficulty share")
				} else {
					pc.reply(r, "true")
				}
				if res := rec.result(); res.Accepted == rej {
					t.Fatalf("result %+v", res)
				}
			}
			if !tt.down {
				time.Sleep(100 * time.Millisecond)
				if st := s.State(); st != StateLive {
					t.Fatalf("state %v, want live; history:\n%s", st, rec.history())
				}
				return
			}
			ev := rec.nextState()
			if ev.st != StateSuspect || ev.reason != "rejecting" {
				t.Fatalf("got %v %q, want suspect rejecting", ev.st, ev.reason)
			}
			ev = rec.nextState()
			if ev.st != StateDown || ev.reason != "rejecting" {
				t.Fatalf("got %v %q, want down rejecting", ev.st, ev.reason)
			}
			pc.waitClosed()
			goLive(t, fp, rec, hs{}) // a fresh connection starts a fresh window
		})
	}
}

func TestRejectingWaitsForInFlight(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.RejectWindow, o.MaxRejectRatio = 2, 0.4
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	var rs []req
	for i := range 3 {
		mustSubmit(t, s, testSubmit(uint64(i)))
		rs = append(rs, pc.expect(stratum.MethodSubmit))
	}
	pc.replyErr(rs[0], 23, "low")
	pc.replyErr(rs[1], 23, "low")
	if ev := rec.waitState(StateSuspect); ev.reason != "rejecting" {
		t.Fatalf("suspect %q", ev.reason)
	}
	time.Sleep(50 * time.Millisecond)
	if st := s.State(); st != StateSuspect {
		t.Fatalf("state %v with a submit in flight, want suspect", st)
	}
	pc.reply(rs[2], "true")
	var got []Verdict
	for range 3 {
		got = append(got, rec.result())
	}
	if !got[2].Accepted {
		t.Errorf("in-flight submit %+v, want accepted", got[2])
	}
	if ev := rec.nextState(); ev.st != StateDown || ev.reason != "rejecting" {
		t.Fatalf("got %v %q", ev.st, ev.reason)
	}
}

func TestClientReconnect(t *testing.T) {
	t.Parallel()
	t.Run("same host other port", func(t *testing.T) {
		t.Parallel()
		a, b := newFakePool(t), newFakePool(t)
		_, rec, _ := startSession(t, testPool(a.url()), testOptions(t))
		pc := goLive(t, a, rec, hs{})
		pc.send(fmt.Sprintf(`{"id":null,"method":"client.reconnect","params":["127.0.0.1",%d,0]}`, b.port()))
		if ev := rec.nextState(); ev.st != StateDown || ev.reason != "reconnect" {
			t.Fatalf("got %v %q", ev.st, ev.reason)
		}
		pc.waitClosed()
		goLive(t, b, rec, hs{})
		a.noConn(50 * time.Millisecond)
	})
	t.Run("no params", func(t *testing.T) {
		t.Parallel()
		a := newFakePool(t)
		_, rec, _ := startSession(t, testPool(a.url()), testOptions(t))
		pc := goLive(t, a, rec, hs{})
		pc.send(`{"id":5,"method":"client.reconnect","params":[]}`)
		rec.waitState(StateDown)
		goLive(t, a, rec, hs{})
	})
	t.Run("other host is not followed", func(t *testing.T) {
		t.Parallel()
		a, b := newFakePool(t), newFakePool(t)
		_, rec, _ := startSession(t, testPool(a.url()), testOptions(t))
		pc := goLive(t, a, rec, hs{})
		// "localhost" is another host name than the configured "127.0.0.1".
		pc.send(fmt.Sprintf(`{"id":null,"method":"client.reconnect","params":["localhost",%d,0]}`, b.port()))
		rec.waitState(StateDown)
		goLive(t, a, rec, hs{})
		b.noConn(50 * time.Millisecond)
	})
	t.Run("wait seconds", func(t *testing.T) {
		t.Parallel()
		a := newFakePool(t)
		_, rec, _ := startSession(t, testPool(a.url()), testOptions(t))
		pc := goLive(t, a, rec, hs{})
		pc.send(`{"id":null,"method":"client.reconnect","params":["",0,1]}`)
		down := rec.waitState(StateDown)
		next := rec.waitState(StateConnecting)
		if wait := next.at.Sub(down.at); wait < time.Second {
			t.Errorf("redialed after %v, want ≥ 1s", wait)
		}
		a.accept()
	})
	t.Run("bad params ignored", func(t *testing.T) {
		t.Parallel()
		a := newFakePool(t)
		s, rec, _ := startSession(t, testPool(a.url()), testOptions(t))
		pc := goLive(t, a, rec, hs{})
		pc.send(`{"id":null,"method":"client.reconnect","params":["127.0.0.1",70000,0]}`, notifyLine("j2", false))
		rec.job()
		if j := rec.job(); j.Notify.JobID != "j2" || s.State() != StateLive {
			t.Fatalf("job %s state %v", j.Notify.JobID, s.State())
		}
	})
}

func TestAuthorizeWorkers(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	rec := newRecorder(t)
	s := NewSession(testPool(fp.url()), 3, testOptions(t), rec)
	s.Authorize("acct.w1")
	s.Authorize("acct.w1")
	s.Authorize("")
	s.Authorize("acct.farm1") // the pool user: authorized anyway
	if s.Lane() != 3 || s.Pool().Name != "test" {
		t.Errorf("Lane %d Pool %+v", s.Lane(), s.Pool())
	}
	runSession(t, s)

	expectWorkers := func(pc *poolConn, want ...string) {
		t.Helper()
		got := map[string]bool{}
		for range want {
			r := pc.expect(stratum.MethodAuthorize)
			if r.param(1) != "x" {
				t.Errorf("worker password %q", r.param(1))
			}
			got[r.param(0)] = true
			pc.reply(r, "true")
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("worker %s not authorized; got %v", w, got)
			}
		}
	}
	pc := goLive(t, fp, rec, hs{})
	expectWorkers(pc, "acct.w1")
	pc.quiet(50 * time.Millisecond)
	s.Authorize("acct.w2")
	r := pc.expect(stratum.MethodAuthorize)
	if r.param(0) != "acct.w2" {
		t.Fatalf("authorize %s", r.line)
	}
	pc.replyErr(r, 24, "unknown worker") // logged only
	pc.quiet(50 * time.Millisecond)
	if st := s.State(); st != StateLive {
		t.Fatalf("state %v after a refused worker", st)
	}
	pc.close()
	pc = goLive(t, fp, rec, hs{})
	expectWorkers(pc, "acct.w1", "acct.w2")
	pc.quiet(50 * time.Millisecond)
}

func TestStopResolvesPending(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	s, rec, stop := startSession(t, testPool(fp.url()), testOptions(t))
	pc := goLive(t, fp, rec, hs{})
	for i := uint64(1); i <= 5; i++ {
		mustSubmit(t, s, testSubmit(i))
	}
	for range 5 {
		pc.expect(stratum.MethodSubmit)
	}
	stop()
	if ev := rec.nextState(); ev.st != StateDown || ev.reason != "stopped" {
		t.Fatalf("got %v %q", ev.st, ev.reason)
	}
	for range 5 {
		if res := rec.result(); res.Reason != stratum.ReasonUpstreamDown {
			t.Errorf("result %+v", res)
		}
	}
	pc.waitClosed()
	if err := s.Submit(testSubmit(6)); !errors.Is(err, ErrNotLive) {
		t.Errorf("Submit after stop: %v", err)
	}
	if s.State() != StateDown {
		t.Errorf("state %v", s.State())
	}
	// A stopped session stays referenced by the miners' recent jobs for
	// minutes: it must not keep its submit queue (s.mu is held by Run from
	// the "stopped" report until the release).
	s.mu.Lock()
	q, window := s.queue, len(s.rejects.ring)
	s.mu.Unlock()
	if q != nil || window != 0 {
		t.Errorf("stopped session keeps its submit queue (cap %d) or reject window (%d)", cap(q), window)
	}
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	o := testOptions(t)
	o.QueueLen = 2
	s := NewSession(testPool("stratum+tcp://127.0.0.1:1"), 0, o, rec)
	if s.State() != StateDown {
		t.Errorf("new session state %v", s.State())
	}
	if err := s.Submit(testSubmit(1)); !errors.Is(err, ErrNotLive) {
		t.Errorf("not live: %v", err)
	}
	s.state.Store(uint32(StateSuspect)) // as if Run had got there
	mustSubmit(t, s, testSubmit(1))
	mustSubmit(t, s, testSubmit(2))
	if err := s.Submit(testSubmit(3)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("full: %v", err)
	}
	bad := testSubmit(4)
	bad.JobID = ""
	if err := s.Submit(bad); !errors.Is(err, ErrInvalidSubmit) {
		t.Errorf("no job id: %v", err)
	}
	bad = testSubmit(5)
	bad.Extranonce2Len = 17
	if err := s.Submit(bad); !errors.Is(err, ErrInvalidSubmit) {
		t.Errorf("en2 too long: %v", err)
	}
}

func TestSubmitDoesNotAllocate(t *testing.T) {
	s := NewSession(testPool("stratum+tcp://127.0.0.1:1"), 0, Options{}, newRecorder(t))
	s.state.Store(uint32(StateLive))
	sub := testSubmit(1)
	sub.Worker = "acct.rig1"
	allocs := testing.AllocsPerRun(1000, func() {
		if err := s.Submit(sub); err != nil {
			t.Fatal(err)
		}
		<-s.queue
	})
	if allocs != 0 {
		t.Errorf("Submit: %v allocs/op, want 0", allocs)
	}
}

// TestShareRoundTripDoesNotAllocate covers the session's side of a share
// after Submit: register and encode it (writer), decode and match the
// pool's answer, report the Verdict (reader).
func TestShareRoundTripDoesNotAllocate(t *testing.T) {
	s := NewSession(testPool("stratum+tcp://127.0.0.1:1"), 0, Options{}, nopHandler{})
	c := &conn{s: s, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.state.Store(uint32(StateLive))
	sub := testSubmit(1)
	sub.Worker = "acct.rig1"
	buf := make([]byte, 0, 1024)
	line := make([]byte, 0, 64)
	round := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		buf = c.register(buf[:0], sub)
		line = append(line[:0], `{"id":`...)
		line = strconv.AppendUint(line, s.nextID.Load(), 10)
		line = append(line, `,"result":true,"error":null}`...)
		c.handle(line)
	}
	for range 100 {
		round() // grow the map once
	}
	if allocs := testing.AllocsPerRun(1000, round); allocs != 0 {
		t.Errorf("%v allocs per share, want 0", allocs)
	}
	if len(s.pending) != 0 {
		t.Errorf("%d submits still pending", len(s.pending))
	}
}

func BenchmarkSubmit(b *testing.B) {
	s := NewSession(testPool("stratum+tcp://127.0.0.1:1"), 0, Options{}, nopHandler{})
	s.state.Store(uint32(StateLive))
	sub := testSubmit(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Submit(sub)
		<-s.queue
	}
}

// BenchmarkRegisterAnswer is the session's side of a share: register and
// encode (writer), then decode and match the answer (reader).
func BenchmarkRegisterAnswer(b *testing.B) {
	s := NewSession(testPool("stratum+tcp://127.0.0.1:1"), 0, Options{}, nopHandler{})
	c := &conn{s: s, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.state.Store(uint32(StateLive))
	sub := testSubmit(1)
	buf := make([]byte, 0, 1024)
	line := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		s.mu.Lock()
		buf = c.register(buf[:0], sub)
		id := s.nextID.Load()
		line = append(line[:0], `{"id":`...)
		line = appendUint(line, id)
		line = append(line, `,"result":true,"error":null}`...)
		c.handle(line)
		s.mu.Unlock()
	}
	if len(s.pending) != 0 {
		b.Fatal("pending not matched")
	}
}

func appendUint(b []byte, x uint64) []byte { return strconv.AppendUint(b, x, 10) }

type nopHandler struct{}

func (nopHandler) SessionState(*Session, State, Why) {}
func (nopHandler) SessionJob(*Session, *Job)         {}
func (nopHandler) SessionVerdict(*Session, *Verdict) {}

// TestQueuedSubmitsLostOnDown fills the queue behind a writer blocked on a
// pool that stopped reading; when the pool hangs up, every accepted
// Submit, written or still queued, gets exactly one Verdict.
func TestQueuedSubmitsLostOnDown(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.QueueLen = 64
	o.SubmitTimeout = 5 * time.Second // only the hang-up may end these
	s, rec, _ := startSession(t, testPool(fp.url()), o)
	pc := goLive(t, fp, rec, hs{})
	pc.c.(*net.TCPConn).SetReadBuffer(4096)
	// Submit until the queue has stayed full for 100ms: the writer is
	// stuck in Write. Under load a starved writer can look stuck too, so
	// go again unless the queue is still full.
	accepted := 0
	deadline := time.Now().Add(waitFor)
	var ticket uint64
	for len(s.queue) < o.QueueLen {
		var fullSince time.Time
		for fullSince.IsZero() || time.Since(fullSince) < 100*time.Millisecond {
			if time.Now().After(deadline) {
				t.Fatal("queue never filled")
			}
			ticket++
			switch err := s.Submit(testSubmit(ticket)); {
			case err == nil:
				accepted++
				fullSince = time.Time{}
			case errors.Is(err, ErrQueueFull):
				if fullSince.IsZero() {
					fullSince = time.Now()
				}
				time.Sleep(100 * time.Microsecond)
			default:
				t.Fatal(err)
			}
		}
	}
	t.Logf("accepted %d before the writer stuck", accepted)
	pc.close()
	rec.waitState(StateDown)
	for i := range accepted {
		if res := rec.result(); res.Reason != stratum.ReasonUpstreamDown {
			t.Fatalf("result %d: %+v", i, res)
		}
	}
	rec.noResult(50 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for tk, n := range rec.perTick {
		if n != 1 {
			t.Errorf("ticket %d: %d results", tk, n)
		}
	}
}

// TestSubmitForEarlierConnection: a share whose job came from an earlier
// connection (another extranonce1) is lost, not sent to the pool.
func TestSubmitForEarlierConnection(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	s, rec, _ := startSession(t, testPool(fp.url()), testOptions(t))
	pc := goLive(t, fp, rec, hs{})
	cur := s.Current()
	if cur == nil || cur.Conn != 1 {
		t.Fatalf("first connection's job: %+v", cur)
	}
	old := testSubmit(7)
	old.Conn = cur.Conn + 1 // not this connection
	mustSubmit(t, s, old)
	if r := rec.result(); r.Ticket != 7 || r.Reason != stratum.ReasonUpstreamDown {
		t.Fatalf("result %+v, want ticket 7 lost upstream_down", r)
	}
	pc.quiet(200 * time.Millisecond)

	ok := testSubmit(8)
	ok.Conn = cur.Conn
	mustSubmit(t, s, ok)
	pc.reply(pc.expect(stratum.MethodSubmit), "true")
	if r := rec.result(); r.Ticket != 8 || !r.Accepted {
		t.Fatalf("result %+v, want ticket 8 accepted", r)
	}
}
