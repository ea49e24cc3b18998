package stratum

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMessageDecode(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		id      string
		method  string
		params  []string
		result  string
		errRaw  string
		wantErr error
	}{
		{name: "submit", line: `{"id":4,"method":"mining.submit","params":["w.1","1f","00000001","5f5e1000","deadbeef"]}`,
			id: "4", method: MethodSubmit, params: []string{`"w.1"`, `"1f"`, `"00000001"`, `"5f5e1000"`, `"deadbeef"`}},
		{name: "string id and spaces", line: ` { "id" : "abc" , "method" : "mining.subscribe" , "params" : [ ] } `,
			id: `"abc"`, method: MethodSubscribe, params: []string{}},
		{name: "null id notification", line: `{"id":null,"method":"mining.set_difficulty","params":[0.5]}`,
			id: "null", method: MethodSetDifficulty, params: []string{"0.5"}},
		{name: "bosminer subscribe", line: `{"id":1,"method":"mining.subscribe","params":["bosminer/1.0",null]}`,
			id: "1", method: MethodSubscribe, params: []string{`"bosminer/1.0"`, "null"}},
		{name: "jsonrpc and worker keys ignored", line: `{"jsonrpc":"2.0","worker":"x","id":2,"method":"mining.authorize","params":["u","p"]}`,
			id: "2", method: MethodAuthorize, params: []string{`"u"`, `"p"`}},
		{name: "response true", line: `{"id":7,"result":true,"error":null}`, id: "7", result: "true"},
		{name: "response error", line: `{"id":7,"result":null,"error":[23,"Low difficulty share",null]}`,
			id: "7", result: "null", errRaw: `[23,"Low difficulty share",null]`},
		{name: "nested params", line: `{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}`,
			id: "3", method: MethodConfigure, params: []string{`["version-rolling"]`, `{"version-rolling.mask":"ffffffff"}`}},
		{name: "escaped strings", line: `{"id":1,"method":"client.show_message","params":["a\"b\\c\u00e9"]}`,
			id: "1", method: MethodShowMessage, params: []string{`"a\"b\\c\u00e9"`}},
		{name: "params null", line: `{"id":1,"method":"mining.extranonce.subscribe","params":null}`, id: "1", method: MethodExtranonceSubscribe},

		{name: "not json", line: `hello`, wantErr: ErrMalformed},
		{name: "empty object", line: `{}`, wantErr: ErrMalformed},
		{name: "truncated", line: `{"id":1,"method":"mining.submit","params":["a"`, wantErr: ErrMalformed},
		{name: "trailing garbage", line: `{"id":1,"result":true}x`, wantErr: ErrMalformed},
		{name: "object id", line: `{"id":{},"method":"x"}`, wantErr: ErrMalformed},
		{name: "bool id", line: `{"id":true,"method":"x"}`, wantErr: ErrMalformed},
		{name: "number method", line: `{"id":1,"method":5}`, wantErr: ErrMalformed},
		{name: "params object", line: `{"id":1,"method":"x","params":{"a":1}}`, wantErr: ErrBadParams},
		{name: "too many params", line: `{"id":1,"method":"x","params":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}`, wantErr: ErrTooManyParams},
		{name: "deep nesting", line: `{"id":1,"method":"x","params":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`, wantErr: ErrMalformed},
		{name: "bad number", line: `{"id":01,"method":"x"}`, wantErr: ErrMalformed},
		{name: "control char in string", line: "{\"id\":1,\"method\":\"a\x01\"}", wantErr: ErrMalformed},
		{name: "bad escape", line: `{"id":1,"method":"x","params":["\q"]}`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := m.Decode([]byte(tt.line))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(m.ID) != tt.id || string(m.Method) != tt.method {
				t.Errorf("id %q method %q, want %q %q", m.ID, m.Method, tt.id, tt.method)
			}
			if tt.params != nil || m.Params != nil {
				if len(m.Params) != len(tt.params) {
					t.Fatalf("params %q, want %q", m.Params, tt.params)
				}
				for i := range tt.params {
					if string(m.Params[i]) != tt.params[i] {
						t.Errorf("param %d = %s, want %s", i, m.Params[i], tt.params[i])
					}
				}
			}
			if string(m.Result) != tt.result || string(m.Error) != tt.errRaw {
				t.Errorf("result %s error %s, want %s %s", m.Result, m.Error, tt.result, tt.errRaw)
			}
			if m.IsResponse() != (tt.method == "") {
				t.Errorf("IsResponse = %v", m.IsResponse())
			}
		})
	}
}

func TestNextLine(t *testing.T) {
	buf := []byte("{\"a\":1}\r\n{\"b\":2}\n{\"c\"")
	var got []string
	used := 0
	for {
		line, n, err := NextLine(buf[used:], 64)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		used += n
		got = append(got, string(line))
	}
	if strings.Join(got, "|") != `{"a":1}|{"b":2}` || string(buf[used:]) != `{"c"` {
		t.Fatalf("got %q, rest %q", got, buf[used:])
	}
	if _, _, err := NextLine(bytes.Repeat([]byte("x"), 65), 64); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("unterminated long line: err = %v", err)
	}
	if _, _, err := NextLine(append(bytes.Repeat([]byte("x"), 70), '\n'), 64); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("terminated long line: err = %v", err)
	}
	if _, n, err := NextLine(bytes.Repeat([]byte("x"), 64), 64); err != nil || n != 0 {
		t.Fatalf("partial line at the limit: n=%d err=%v", n, err)
	}
}

func TestLineReader(t *testing.T) {
	lr := NewLineReader(strings.NewReader("a\r\n\n  \nbb\n"+strings.Repeat("c", 20)+"\n"), 16)
	for _, want := range []string{"a", "bb"} {
		got, err := lr.ReadLine()
		if err != nil || string(got) != want {
			t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
}

func TestSubmitDecode(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		want    Submit
		wantErr bool
	}{
		{name: "five params", params: `["w.1","1f","0000002a","5f5e1000","DEADBEEF"]`,
			want: Submit{Worker: []byte("w.1"), JobID: []byte("1f"), Extranonce2: []byte{0, 0, 0, 42}, NTime: 0x5f5e1000, Nonce: 0xdeadbeef}},
		{name: "six params", params: `["w.1","1f","0000","5f5e1000","00000001","1fffe000"]`,
			want: Submit{Worker: []byte("w.1"), JobID: []byte("1f"), Extranonce2: []byte{0, 0}, NTime: 0x5f5e1000, Nonce: 1, Version: 0x1fffe000, HasVersion: true}},
		{name: "numeric job id", params: `["w",17,"00","00000001","00000001"]`,
			want: Submit{Worker: []byte("w"), JobID: []byte("17"), Extranonce2: []byte{0}, NTime: 1, Nonce: 1}},
		{name: "extra params ignored", params: `["w","1","00","00000001","00000001","00000000","x"]`,
			want: Submit{Worker: []byte("w"), JobID: []byte("1"), Extranonce2: []byte{0}, NTime: 1, Nonce: 1, HasVersion: true}},
		{name: "too few", params: `["w","1","00","00000001"]`, wantErr: true},
		{name: "odd hex en2", params: `["w","1","000","00000001","00000001"]`, wantErr: true},
		{name: "nonce too long", params: `["w","1","00","00000001","1234567890"]`, wantErr: true},
		{name: "nonce as number", params: `["w","1","00","00000001",12345]`, wantErr: true},
		{name: "en2 too long", params: `["w","1","` + strings.Repeat("00", MaxExtranonce2Size+1) + `","00000001","00000001"]`, wantErr: true},
		{name: "empty job id", params: `["w","","00","00000001","00000001"]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := m.Decode([]byte(`{"id":1,"method":"mining.submit","params":` + tt.params + `}`)); err != nil {
				t.Fatal(err)
			}
			var s Submit
			err := s.Decode(m.Params)
			if tt.wantErr {
				if !errors.Is(err, ErrBadParams) {
					t.Fatalf("err = %v, want ErrBadParams", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(s.Worker) != string(tt.want.Worker) || string(s.JobID) != string(tt.want.JobID) ||
				!bytes.Equal(s.Extranonce2, tt.want.Extranonce2) || s.NTime != tt.want.NTime || s.Nonce != tt.want.Nonce ||
				s.Version != tt.want.Version || s.HasVersion != tt.want.HasVersion {
				t.Fatalf("got %+v\nwant %+v", s, tt.want)
			}
			// Round trip through the encoder a proxy uses towards the pool.
			line := AppendSubmit(nil, 9, string(s.Worker), string(s.JobID), s.Extranonce2, s.NTime, s.Nonce, s.Version, s.HasVersion)
			var m2 Message
			var s2 Submit
			if err := m2.Decode(bytes.TrimSuffix(line, []byte("\n"))); err != nil {
				t.Fatalf("re-decode %s: %v", line, err)
			}
			if err := s2.Decode(m2.Params); err != nil || s2.Nonce != s.Nonce || s2.Version != s.Version || !bytes.Equal(s2.Extranonce2, s.Extranonce2) {
				t.Fatalf("round trip %s: %+v %v", line, s2, err)
			}
		})
	}
}

func TestEncoders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"result true", AppendResult(nil, []byte("4"), true), `{"id":4,"result":true,"error":null}`},
		{"result null id", AppendResult(nil, nil, false), `{"id":null,"result":false,"error":null}`},
		{"error", AppendError(nil, []byte(`"x"`), 23, `Low "diff"`), `{"id":"x","result":null,"error":[23,"Low \"diff\"",null]}`},
		{"reject", AppendReject(nil, []byte("5"), ReasonDuplicate), `{"id":5,"result":null,"error":[22,"Duplicate share",null]}`},
		{"set_difficulty int", AppendSetDifficulty(nil, 65536), `{"id":null,"method":"mining.set_difficulty","params":[65536]}`},
		{"set_difficulty frac", AppendSetDifficulty(nil, 0.001), `{"id":null,"method":"mining.set_difficulty","params":[0.001]}`},
		{"set_difficulty huge", AppendSetDifficulty(nil, 1e12), `{"id":null,"method":"mining.set_difficulty","params":[1000000000000]}`},
		{"subscribe result", AppendSubscribeResult(nil, []byte("1"), "ab", []byte{0, 7}, 6),
			`{"id":1,"result":[[["mining.set_difficulty","ab"],["mining.notify","ab"]],"0007",6],"error":null}`},
		{"set_extranonce", AppendSetExtranonce(nil, []byte{1, 2}, 2), `{"id":null,"method":"mining.set_extranonce","params":["0102",2]}`},
		{"set_version_mask", AppendSetVersionMask(nil, 0x1fffe000), `{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`},
		{"reconnect same", AppendReconnect(nil, "", 0, 0), `{"id":null,"method":"client.reconnect","params":[]}`},
		{"reconnect host", AppendReconnect(nil, "10.0.0.1", 3333, 5), `{"id":null,"method":"client.reconnect","params":["10.0.0.1",3333,5]}`},
		{"call", AppendCall(nil, 3, MethodAuthorize, "u", "p"), `{"id":3,"method":"mining.authorize","params":["u","p"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want+"\n" {
				t.Fatalf("got  %s\nwant %s", tt.got, tt.want)
			}
			var m Message
			if err := m.Decode(tt.got[:len(tt.got)-1]); err != nil {
				t.Fatalf("own output does not decode: %v", err)
			}
		})
	}
}

func TestSubscribeResultRoundTrip(t *testing.T) {
	line := AppendSubscribeResult(nil, []byte("1"), "s", []byte{0xde, 0xad, 0xbe, 0xef}, 8)
	var m Message
	if err := m.Decode(line[:len(line)-1]); err != nil {
		t.Fatal(err)
	}
	en1, n, err := ParseSubscribeResult(m.Result)
	if err != nil || !bytes.Equal(en1, []byte{0xde, 0xad, 0xbe, 0xef}) || n != 8 {
		t.Fatalf("got %x %d %v", en1, n, err)
	}
	for _, bad := range []string{`true`, `[[],"zz",4]`, `[[],"00",0]`, `[[],"00",17]`, `[[],"00"]`} {
		if _, _, err := ParseSubscribeResult([]byte(bad)); err == nil {
			t.Errorf("ParseSubscribeResult(%s) accepted", bad)
		}
	}
}

func TestParams(t *testing.T) {
	t.Run("difficulty", func(t *testing.T) {
		for raw, want := range map[string]float64{`1024`: 1024, `"1024"`: 1024, `0.5`: 0.5, `1e3`: 1000} {
			if d, err := ParseDifficulty([][]byte{[]byte(raw)}); err != nil || d != want {
				t.Errorf("%s: %v %v", raw, d, err)
			}
		}
		for _, raw := range []string{`0`, `-1`, `"x"`, `null`, `[]`, `"NaN"`, `"Inf"`} {
			if _, err := ParseDifficulty([][]byte{[]byte(raw)}); err == nil {
				t.Errorf("%s accepted", raw)
			}
		}
	})
	t.Run("authorize", func(t *testing.T) {
		u, p, err := ParseAuthorize([][]byte{[]byte(`"acct.w1"`), []byte(`null`)})
		if err != nil || u != "acct.w1" || p != "" {
			t.Fatalf("%q %q %v", u, p, err)
		}
		if _, _, err := ParseAuthorize([][]byte{[]byte(`""`)}); err == nil {
			t.Fatal("empty user accepted")
		}
		if _, _, err := ParseAuthorize(nil); err == nil {
			t.Fatal("no params accepted")
		}
	})
	t.Run("reconnect", func(t *testing.T) {
		r, err := ParseReconnect([][]byte{[]byte(`"pool.example"`), []byte(`"3333"`), []byte(`5`)})
		if err != nil || r != (Reconnect{"pool.example", 3333, 5}) {
			t.Fatalf("%+v %v", r, err)
		}
		if _, err := ParseReconnect([][]byte{[]byte(`"h"`), []byte(`70000`)}); err == nil {
			t.Fatal("port 70000 accepted")
		}
	})
	t.Run("set_extranonce", func(t *testing.T) {
		en1, n, err := ParseSetExtranonce([][]byte{[]byte(`"0a0b"`), []byte(`4`)})
		if err != nil || !bytes.Equal(en1, []byte{10, 11}) || n != 4 {
			t.Fatalf("%x %d %v", en1, n, err)
		}
		for _, p := range [][2]string{{`"0a"`, `0`}, {`"0a"`, `99`}, {`"zz"`, `4`}, {`"0a"`, `"x"`}} {
			if _, _, err := ParseSetExtranonce([][]byte{[]byte(p[0]), []byte(p[1])}); err == nil {
				t.Errorf("%v accepted", p)
			}
		}
	})
	t.Run("error triple", func(t *testing.T) {
		for raw, want := range map[string]int{`[21,"Job not found",null]`: 21, `{"code":23,"message":"low"}`: 23, `"bad"`: CodeOther} {
			if c, _ := ErrorParam([]byte(raw)); c != want {
				t.Errorf("%s: code %d want %d", raw, c, want)
			}
		}
	})
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name   string
		params string
		want   Configure
		res    ConfigureResult
		answer string
	}{
		{
			name:   "whatsminer full mask",
			params: `[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]`,
			want:   Configure{Extensions: []string{"version-rolling"}, VersionRolling: true, VersionMask: 0xffffffff, VersionMinBitCount: 2},
			res:    ConfigureResult{VersionRolling: true, VersionMask: 0x1fffe000},
			answer: `{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`,
		},
		{
			name:   "all known plus unknown",
			params: `[["minimum-difficulty","subscribe-extranonce","version-rolling","info"],{"minimum-difficulty.value":2048,"version-rolling.mask":"1fffe000"}]`,
			want: Configure{Extensions: []string{"minimum-difficulty", "subscribe-extranonce", "version-rolling", "info"},
				VersionRolling: true, VersionMask: 0x1fffe000, MinimumDifficulty: true, MinDifficulty: 2048, SubscribeExtranonce: true},
			res:    ConfigureResult{VersionRolling: true, VersionMask: 0x1fffe000, MinimumDifficulty: true, SubscribeExtranonce: true},
			answer: `{"id":1,"result":{"minimum-difficulty":true,"subscribe-extranonce":true,"version-rolling":true,"version-rolling.mask":"1fffe000","info":false},"error":null}`,
		},
		{
			name:   "rolling refused",
			params: `[["version-rolling"],{}]`,
			want:   Configure{Extensions: []string{"version-rolling"}, VersionRolling: true, VersionMask: 0xffffffff},
			answer: `{"id":1,"result":{"version-rolling":false},"error":null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := m.Decode([]byte(`{"id":1,"method":"mining.configure","params":` + tt.params + `}`)); err != nil {
				t.Fatal(err)
			}
			c, err := ParseConfigure(m.Params)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Extensions, ",") != strings.Join(tt.want.Extensions, ",") || c.VersionRolling != tt.want.VersionRolling ||
				c.VersionMask != tt.want.VersionMask || c.VersionMinBitCount != tt.want.VersionMinBitCount ||
				c.MinimumDifficulty != tt.want.MinimumDifficulty || c.MinDifficulty != tt.want.MinDifficulty ||
				c.SubscribeExtranonce != tt.want.SubscribeExtranonce {
				t.Fatalf("got %+v\nwant %+v", c, tt.want)
			}
			got := AppendConfigureResult(nil, m.ID, &c, tt.res)
			if string(got) != tt.answer+"\n" {
				t.Fatalf("answer %s\nwant   %s", got, tt.answer)
			}
			var back Message
			if err := back.Decode(got[:len(got)-1]); err != nil {
				t.Fatal(err)
			}
			rolling, mask, err := ParseConfigureResult(back.Result)
			if err != nil || rolling != tt.res.VersionRolling || mask != tt.res.VersionMask {
				t.Fatalf("ParseConfigureResult = %v %x %v", rolling, mask, err)
			}
		})
	}
	if _, err := ParseConfigure([][]byte{[]byte(`"version-rolling"`)}); err == nil {
		t.Error("string instead of list accepted")
	}
	if _, err := ParseConfigure([][]byte{[]byte(`["version-rolling"]`), []byte(`{"version-rolling.mask":"xyz"}`)}); err == nil {
		t.Error("bad mask accepted")
	}
	if NegotiateMask(0xffffffff, 0x1fffe000) != 0x1fffe000 || MaskBits(0x1fffe000) != 16 {
		t.Error("mask maths")
	}
}

func TestNotifyRoundTrip(t *testing.T) {
	line := `{"id":null,"method":"mining.notify","params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",["7b4a3d4c5f1e2c1f9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f00112233"],"00000002","1c2ac4af","504e86b9",false]}`
	var m Message
	if err := m.Decode([]byte(line)); err != nil {
		t.Fatal(err)
	}
	var n Notify
	if err := n.Decode(m.Params); err != nil {
		t.Fatal(err)
	}
	if n.JobID != "bf" || n.Version != 2 || n.NBits != 0x1c2ac4af || n.NTime != 0x504e86b9 || n.Clean || len(n.Branch) != 1 || len(n.Coinb1) != 58 {
		t.Fatalf("decoded %+v", n)
	}
	if got := string(n.AppendJSON(nil)); got != line+"\n" {
		t.Fatalf("re-encoded\n%s\nwant\n%s", got, line)
	}
	bad := []string{
		`["bf","00","01","02",[],"00000002","1c2ac4af","504e86b9",false]`,                                                                                                                                       // short prevhash
		`["bf","` + strings.Repeat("00", 32) + `","0","02",[],"00000002","1c2ac4af","504e86b9",false]`,                                                                                                          // odd coinb1
		`["bf","` + strings.Repeat("00", 32) + `","01","02",["00"],"00000002","1c2ac4af","504e86b9",false]`,                                                                                                     // short branch hash
		`["bf","` + strings.Repeat("00", 32) + `","01","02",[],"00000002","1c2ac4af","504e86b9","maybe"]`,                                                                                                       // clean not bool
		`["bf","` + strings.Repeat("00", 32) + `","01","02",[],"00000002","1c2ac4af"]`,                                                                                                                          // too few
		`["bf","` + strings.Repeat("00", 32) + `","01","02",[` + strings.Repeat(`"`+strings.Repeat("00", 32)+`",`, MaxBranchLen) + `"` + strings.Repeat("00", 32) + `"],"00000002","1c2ac4af","504e86b9",true]`, // branch too deep
	}
	for i, p := range bad {
		var m Message
		if err := m.Decode([]byte(`{"id":null,"method":"mining.notify","params":` + p + `}`)); err != nil {
			continue // malformed at the JSON level is also a refusal
		}
		if err := n.Decode(m.Params); err == nil {
			t.Errorf("bad notify %d accepted", i)
		}
	}
}

// TestDecodeAllocs pins the zero-allocation promise of the submit path.
func TestDecodeAllocs(t *testing.T) {
	line := []byte(`{"id":4,"method":"mining.submit","params":["acct.worker1","1f","00000001","5f5e1000","deadbeef","1fffe000"]}`)
	var m Message
	var s Submit
	out := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		if m.Decode(line) != nil || s.Decode(m.Params) != nil {
			t.Fatal("decode failed")
		}
		out = AppendResult(out[:0], m.ID, true)
		out = AppendReject(out[:0], m.ID, ReasonLowDifficulty)
	})
	if allocs != 0 {
		t.Fatalf("submit decode+answer allocates %.1f times", allocs)
	}
}

// TestNotifyBranchLen pins how deep a merkle branch a notify may carry:
// every length up to MaxBranchLen decodes (one hash per level of the
// block's transaction tree: a block of more than 65,536 transactions needs
// more than MaxParams), one more is refused.
func TestNotifyBranchLen(t *testing.T) {
	tests := []struct {
		name string
		n    int
		ok   bool
	}{
		{"empty", 0, true},
		{"one", 1, true},
		{"as many as MaxParams", MaxParams, true},
		{"one more than MaxParams", MaxParams + 1, true},
		{"at the limit", MaxBranchLen, true},
		{"over the limit", MaxBranchLen + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hashes := make([]string, tt.n)
			for i := range hashes {
				hashes[i] = `"` + strings.Repeat(fmt.Sprintf("%02x", i), 32) + `"`
			}
			line := `{"id":null,"method":"mining.notify","params":["bf","` + strings.Repeat("00", 32) + `","01","02",[` +
				strings.Join(hashes, ",") + `],"00000002","1c2ac4af","504e86b9",true]}`
			var m Message
			if err := m.Decode([]byte(line)); err != nil {
				t.Fatalf("message: %v", err)
			}
			var n Notify
			err := n.Decode(m.Params)
			if !tt.ok {
				if err == nil {
					t.Fatalf("%d hashes accepted", tt.n)
				}
				return
			}
			if err != nil {
				t.Fatalf("%d hashes: %v", tt.n, err)
			}
			if len(n.Branch) != tt.n {
				t.Fatalf("decoded %d hashes, want %d", len(n.Branch), tt.n)
			}
			for i := range n.Branch {
				if n.Branch[i][0] != byte(i) || n.Branch[i][31] != byte(i) {
					t.Fatalf("hash %d decoded as %x", i, n.Branch[i])
				}
			}
			if _, err := NewJob(&n); err != nil {
				t.Fatalf("NewJob: %v", err)
			}
			if got := string(n.AppendJSON(nil)); got != line+"\n" {
				t.Fatalf("re-encoded\n%s\nwant\n%s", got, line)
			}
		})
	}
}
