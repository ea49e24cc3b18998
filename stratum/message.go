package stratum

import (
	"errors"
)

// MaxParams is the most params a message may carry. Real messages carry at
// most 9 (mining.notify); more is treated as malformed rather than buffered.
const MaxParams = 16

// maxDepth bounds nesting inside a message so a hostile line cannot recurse
// without limit.
const maxDepth = 16

// Errors returned by Message.Decode and the param parsers.
var (
	ErrMalformed     = errors.New("stratum: malformed message")
	ErrTooManyParams = errors.New("stratum: too many params")
	ErrBadParams     = errors.New("stratum: bad params")
)

// Message is one decoded JSON-RPC line: a request (ID set), a notification
// (ID null or absent) or a response (no method). Every slice aliases the
// decoded line and is valid only as long as the line is. Decode allocates
// nothing.
type Message struct {
	ID     []byte   // raw JSON id (number, string or null); nil when absent
	Method []byte   // method name, unquoted; nil for a response
	Params [][]byte // raw JSON values of the params array
	Result []byte   // raw JSON result; nil when absent
	Error  []byte   // raw JSON error; nil when absent or null

	params [MaxParams][]byte
}

// IsResponse reports whether m is an answer to a request of ours.
func (m *Message) IsResponse() bool { return m.Method == nil }

// IDOrNull returns m's raw id, or "null" when it had none, ready to echo.
func (m *Message) IDOrNull() []byte {
	if len(m.ID) == 0 {
		return nullJSON
	}
	return m.ID
}

var nullJSON = []byte("null")

// Decode parses line into m. Unknown keys are ignored (firmwares add
// "jsonrpc" and "worker"); the id must be a number, a string or null; the
// method must be a string without escapes; params must be an array or null.
func (m *Message) Decode(line []byte) error {
	*m = Message{}
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return ErrMalformed
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return ErrMalformed // empty object: neither request nor response
	}
	hasMethod, hasResult := false, false
	for {
		if i >= len(line) || line[i] != '"' {
			return ErrMalformed
		}
		kend, err := skipString(line, i)
		if err != nil {
			return err
		}
		key := line[i+1 : kend-1]
		i = skipSpace(line, kend)
		if i >= len(line) || line[i] != ':' {
			return ErrMalformed
		}
		i = skipSpace(line, i+1)
		vend, err := skipValue(line, i, 0)
		if err != nil {
			return err
		}
		val := line[i:vend]
		switch string(key) {
		case "id":
			switch val[0] {
			case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
				m.ID = val
			default:
				return ErrMalformed
			}
		case "method":
			if val[0] != '"' || hasEscape(val) || len(val) < 3 {
				return ErrMalformed
			}
			m.Method = val[1 : len(val)-1]
			hasMethod = true
		case "params":
			if err := m.splitParams(val); err != nil {
				return err
			}
		case "result":
			m.Result = val
			hasResult = true
		case "error":
			if !isNull(val) {
				m.Error = val
			}
			hasResult = true
		}
		i = skipSpace(line, vend)
		if i >= len(line) {
			return ErrMalformed
		}
		if line[i] == '}' {
			if skipSpace(line, i+1) != len(line) {
				return ErrMalformed
			}
			break
		}
		if line[i] != ',' {
			return ErrMalformed
		}
		i = skipSpace(line, i+1)
	}
	if !hasMethod && !hasResult {
		return ErrMalformed
	}
	return nil
}

// splitParams splits a raw JSON array into m.Params.
func (m *Message) splitParams(val []byte) error {
	if isNull(val) {
		return nil
	}
	if len(val) == 0 || val[0] != '[' {
		return ErrBadParams
	}
	n := 0
	i := skipSpace(val, 1)
	if val[i] == ']' {
		m.Params = m.params[:0]
		return nil
	}
	for {
		end, err := skipValue(val, i, 1)
		if err != nil {
			return err
		}
		if n == MaxParams {
			return ErrTooManyParams
		}
		m.params[n] = val[i:end]
		n++
		i = skipSpace(val, end)
		if val[i] == ']' {
			break
		}
		i = skipSpace(val, i+1) // ',' (skipValue already checked the array shape)
	}
	m.Params = m.params[:n]
	return nil
}

// Param returns the i-th raw param, or nil when there are fewer.
func (m *Message) Param(i int) []byte {
	if i < len(m.Params) {
		return m.Params[i]
	}
	return nil
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

func hasEscape(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the JSON string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, ErrMalformed
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex4(b[j+1:j+5]) {
					return 0, ErrMalformed
				}
				j += 4
			default:
				return 0, ErrMalformed
			}
		case c < 0x20:
			return 0, ErrMalformed
		}
	}
	return 0, ErrMalformed
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if unhex(c) < 0 {
			return false
		}
	}
	return true
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, ErrMalformed
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, ErrMalformed
		}
		return skipContainer(b, i, depth+1)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	}
	return 0, ErrMalformed
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, ErrMalformed
	}
	return i + len(lit), nil
}

// skipNumber accepts the JSON number grammar.
func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return 0, ErrMalformed
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, ErrMalformed
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, ErrMalformed
		}
	}
	return i, nil
}

// skipContainer skips an object or array starting at b[i].
func skipContainer(b []byte, i, depth int) (int, error) {
	obj := b[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' {
				return 0, ErrMalformed
			}
			end, err := skipString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, ErrMalformed
			}
			i = skipSpace(b, i+1)
		}
		end, err := skipValue(b, i, depth)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, ErrMalformed
		}
		if b[i] == closer {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, ErrMalformed
		}
		i = skipSpace(b, i+1)
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
