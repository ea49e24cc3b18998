package stratum

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// firmwareLines returns every line of testdata/firmware/*.jsonl.
func firmwareLines(tb testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/firmware/*.jsonl")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no firmware testdata: %v", err)
	}
	var lines [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			lines = append(lines, append([]byte(nil), sc.Bytes()...))
		}
	}
	return lines
}

func TestFirmwareLinesDecode(t *testing.T) {
	for _, line := range firmwareLines(t) {
		var m Message
		if err := m.Decode(line); err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		var err error
		switch string(m.Method) {
		case MethodSubmit:
			var s Submit
			err = s.Decode(m.Params)
		case MethodConfigure:
			_, err = ParseConfigure(m.Params)
		case MethodAuthorize:
			_, _, err = ParseAuthorize(m.Params)
		case MethodSuggestDifficulty:
			_, err = ParseDifficulty(m.Params)
		}
		if err != nil {
			t.Errorf("%s: params: %v", line, err)
		}
	}
}

// FuzzDecode feeds arbitrary lines to the decoder and every param parser:
// no panic, and whatever decodes re-encodes to something that decodes to
// the same values.
func FuzzDecode(f *testing.F) {
	for _, line := range firmwareLines(f) {
		f.Add(line)
	}
	f.Add([]byte(`{"id":1,"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"0a0b0c0d",4],"error":null}`))
	f.Add([]byte(`{"id":null,"method":"mining.notify","params":["1","` + string(bytes.Repeat([]byte("00"), 32)) + `","01","02",[],"20000000","1d00ffff","5f5e1000",true]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		if m.Decode(line) != nil {
			return
		}
		_ = m.IDOrNull()
		switch string(m.Method) {
		case MethodSubmit:
			var s Submit
			if s.Decode(m.Params) == nil {
				out := AppendSubmit(nil, 1, string(s.Worker), string(s.JobID), s.Extranonce2, s.NTime, s.Nonce, s.Version, s.HasVersion)
				var m2 Message
				var s2 Submit
				if err := m2.Decode(out[:len(out)-1]); err != nil {
					t.Fatalf("re-encoded submit %q does not decode: %v", out, err)
				}
				if err := s2.Decode(m2.Params); err != nil || s2.Nonce != s.Nonce || s2.NTime != s.NTime ||
					s2.Version != s.Version || !bytes.Equal(s2.Extranonce2, s.Extranonce2) || !bytes.Equal(s2.JobID, s.JobID) {
					t.Fatalf("submit round trip: %+v vs %+v (%v)", s, s2, err)
				}
			}
		case MethodNotify:
			var n Notify
			if n.Decode(m.Params) == nil {
				out := n.AppendJSON(nil)
				var m2 Message
				var n2 Notify
				if err := m2.Decode(out[:len(out)-1]); err != nil {
					t.Fatalf("re-encoded notify does not decode: %v", err)
				}
				if err := n2.Decode(m2.Params); err != nil || !bytes.Equal(n2.AppendJSON(nil), out) {
					t.Fatalf("notify round trip not a fixed point: %v", err)
				}
			}
		case MethodConfigure:
			if c, err := ParseConfigure(m.Params); err == nil {
				out := AppendConfigureResult(nil, m.IDOrNull(), &c, ConfigureResult{VersionRolling: c.VersionRolling, VersionMask: c.VersionMask & 0x1fffe000})
				var m2 Message
				if err := m2.Decode(out[:len(out)-1]); err != nil {
					t.Fatalf("configure answer %q does not decode: %v", out, err)
				}
			}
		default:
			_, _, _ = ParseAuthorize(m.Params)
			_, _ = ParseDifficulty(m.Params)
			_, _, _ = ParseSetExtranonce(m.Params)
			_, _ = ParseReconnect(m.Params)
			_ = ParseSubscribe(m.Params)
		}
		if m.Result != nil {
			_, _, _ = ParseSubscribeResult(m.Result)
			_, _, _ = ParseConfigureResult(m.Result)
		}
		_, _ = ErrorParam(m.Error)
		// Echoing the id must give valid JSON.
		out := AppendError(nil, m.ID, CodeOther, string(m.Method))
		var m3 Message
		if err := m3.Decode(out[:len(out)-1]); err != nil {
			t.Fatalf("error answer %q does not decode: %v", out, err)
		}
	})
}

// FuzzFramer splits arbitrary input into lines at arbitrary read boundaries
// and checks the framer never returns a line over the limit, never loses or
// invents bytes, and gives the same lines however the input was chunked.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nbb\r\nccc\n"), uint8(1))
	f.Add([]byte("{\"id\":1}\n{\"id\":2}"), uint8(3))
	f.Add(bytes.Repeat([]byte("x"), 300), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const max = 64
		whole := frame(data, len(data)+1, max)
		step := int(chunk)%16 + 1
		parts := frame(data, step, max)
		if len(whole) != len(parts) {
			t.Fatalf("chunking changed framing: %q vs %q", whole, parts)
		}
		for i := range whole {
			if whole[i] != parts[i] {
				t.Fatalf("line %d differs: %q vs %q", i, whole[i], parts[i])
			}
			if len(whole[i]) > max {
				t.Fatalf("line over the limit: %d bytes", len(whole[i]))
			}
		}
	})
}

// frame feeds data to NextLine step bytes at a time, like a socket would,
// and returns the lines, with "ERR" for a too-long line (which ends framing).
func frame(data []byte, step, max int) []string {
	var lines []string
	var buf []byte
	for off := 0; off < len(data); off += step {
		end := min(off+step, len(data))
		buf = append(buf, data[off:end]...)
		for {
			line, n, err := NextLine(buf, max)
			if err != nil {
				return append(lines, "ERR")
			}
			if n == 0 {
				break
			}
			lines = append(lines, string(line))
			buf = buf[n:]
		}
		if len(buf) > max+1 {
			panic("framer let the buffer grow past the limit")
		}
	}
	return lines
}
