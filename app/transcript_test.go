package app_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/stratum"
)

// TestFirmwareTranscripts replays what real ASIC firmwares send (one file
// per firmware in stratum/testdata/firmware) line by line, in their own key
// order and spacing, and checks every answer. Submit lines are templates:
// their job id, extranonce2, ntime and nonce are replaced by a share really
// found for the current job (the line is rebuilt around them), keeping the
// firmware's worker name and whether it sends version bits.
func TestFirmwareTranscripts(t *testing.T) {
	files, err := filepath.Glob("../stratum/testdata/firmware/*.jsonl")
	if err != nil || len(files) < 4 {
		t.Fatalf("firmware transcripts: %v %v", files, err)
	}
	r := newRig(t, 1, nil, func(c *config.Config) { c.Server.Extranonce1Size = 2 })
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".jsonl"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c := dialClient(t, r.app.MinerAddr())
			c.t = t
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				line := sc.Text()
				var m stratum.Message
				if err := m.Decode([]byte(line)); err != nil {
					t.Fatalf("transcript line %q: %v", line, err)
				}
				method := string(m.Method)
				if method == stratum.MethodSubmit {
					line = c.fillSubmit(t, &m)
				}
				c.send(line)
				ans := c.answerID(string(m.ID))
				c.checkAnswer(t, method, &m, ans)
			}
			// After subscribe and authorize: set_difficulty came before the
			// first notify.
			if i, j := index(c.pending, stratum.MethodSetDifficulty), index(c.pending, stratum.MethodNotify); i < 0 || j < 0 || i > j {
				t.Errorf("notifications %v: want set_difficulty before the first notify", c.pending)
			}
		})
	}
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// answerID reads until the answer to the raw id arrives.
func (c *client) answerID(id string) *stratum.Message {
	c.t.Helper()
	for {
		line, err := c.readLine(5 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for answer to id %s: %v", id, err)
		}
		m := &stratum.Message{}
		if err := m.Decode([]byte(line)); err != nil {
			c.t.Fatalf("switchyard sent a bad line %q: %v", line, err)
		}
		if m.IsResponse() && string(m.ID) == id {
			return m
		}
		c.note(m)
	}
}

// checkAnswer checks switchyard's answer to one transcript request.
func (c *client) checkAnswer(t *testing.T, method string, req, ans *stratum.Message) {
	t.Helper()
	switch method {
	case stratum.MethodSubscribe:
		en1, n, err := stratum.ParseSubscribeResult(ans.Result)
		if err != nil || len(en1) != 2 || n != 2 {
			t.Fatalf("subscribe answer %s: en1 %x size %d %v (want 2-byte prefix, extranonce2 size 2)", ans.Result, en1, n, err)
		}
		c.en1, c.en2Size = en1, n
	case stratum.MethodConfigure:
		rolling, mask, err := stratum.ParseConfigureResult(ans.Result)
		if err != nil || !rolling || mask != 0x1fffe000 {
			t.Fatalf("configure answer %s: rolling %v mask %08x (want the intersection 1fffe000)", ans.Result, rolling, mask)
		}
		c.mask = mask
	case stratum.MethodAuthorize, stratum.MethodSuggestDifficulty, stratum.MethodExtranonceSubscribe:
		if !stratum.IsTrue(ans.Result) {
			t.Fatalf("%s answered %s / %s", method, ans.Result, ans.Error)
		}
	case stratum.MethodSubmit:
		if !stratum.IsTrue(ans.Result) {
			t.Fatalf("submit answered %s / %s", ans.Result, ans.Error)
		}
	default:
		if code, _ := stratum.ErrorParam(ans.Error); code != stratum.CodeOther {
			t.Fatalf("unknown method %s answered %s / %s", method, ans.Result, ans.Error)
		}
	}
}

// fillSubmit rewrites a transcript submit with a real share for the
// current job.
func (c *client) fillSubmit(t *testing.T, m *stratum.Message) string {
	t.Helper()
	c.waitJobs(1)
	job := c.jobs[len(c.jobs)-1]
	var bits uint32
	hasVersion := len(m.Params) > 5
	if hasVersion {
		var err error
		if bits, err = stratum.Uint32Hex(m.Params[5]); err != nil {
			t.Fatal(err)
		}
	}
	en2 := make([]byte, c.en2Size)
	en2[len(en2)-1] = byte(len(c.jobs))
	s := c.grind(job, en2, bits, 0)
	if !hasVersion {
		s = c.grindNoVersion(job, en2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[%s, %q, %q, "%08x", "%08x"`, m.Params[0], s.jobID, hex.EncodeToString(s.en2), s.ntime, s.nonce)
	if hasVersion {
		fmt.Fprintf(&b, `, "%08x"`, s.version)
	}
	b.WriteString("]")
	return fmt.Sprintf(`{"params": %s, "id": %s, "method": "mining.submit"}`, b.String(), m.ID)
}

// grindNoVersion finds a share without version rolling.
func (c *client) grindNoVersion(n *stratum.Notify, en2 []byte) share {
	c.t.Helper()
	job, err := stratum.NewJob(n)
	if err != nil {
		c.t.Fatal(err)
	}
	var res stratum.Result
	for nonce := uint32(0); nonce < 1<<24; nonce++ {
		sh := stratum.Share{Extranonce1: c.en1, Extranonce2: en2, NTime: n.NTime, Nonce: nonce}
		if job.Check(&sh, stratum.CheckParams{Extranonce2Size: c.en2Size, VersionMask: c.mask, Difficulty: c.diff}, &res) == nil {
			return share{jobID: n.JobID, en2: en2, ntime: n.NTime, nonce: nonce}
		}
	}
	c.t.Fatal("no share found")
	return share{}
}
