package config

import (
	"bytes"
	"strconv"
	"strings"
)

// source locates keys in the TOML text a Config was parsed from.
//
// NOTE: BurntSushi/toml keeps key positions private, and keyed by the key's
// name, so every [[pool]] table's "url" shares one entry (the last one's). A
// small scan of the text, run only after the decoder has accepted it, maps
// each key path with its array index ("pool[1].url") to its line instead.
type source struct {
	name  string
	lines map[string]int // "server", "server.listen", "pool[1]", "pool[1].url", "route[0].pools[1]" → 1-based line
}

// line returns the line of key, or of the nearest table holding it when the
// key itself is not in the file (left out, or written inside an inline
// table); 0 when neither is.
func (s *source) line(key string) int {
	if s == nil {
		return 0
	}
	for key != "" {
		if l, ok := s.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// file returns the name Load or Parse was given; "" for a nil source.
func (s *source) file() string {
	if s == nil {
		return ""
	}
	return s.name
}

// indexSource scans src, which must be valid TOML, for table headers and
// keys. It understands comments, every string form (including multi-line
// ones), dotted and quoted keys, multi-line arrays and inline tables, which is
// all it takes to tell a key from text that only looks like one.
func indexSource(name string, src []byte) *source {
	s := &source{name: name, lines: make(map[string]int)}
	sc := scanner{src: bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")), line: 1}
	arrays := make(map[string]int) // array-of-tables path → tables seen so far
	table := ""
	for {
		sc.skipBlank()
		if sc.eof() {
			return s
		}
		start, line := sc.pos, sc.line
		if sc.peek() == '[' {
			double := sc.hasPrefix("[[")
			sc.pos++
			if double {
				sc.pos++
			}
			table = resolveTable(sc.key(), double, arrays)
			s.record(table, line)
			sc.skipPast(']')
		} else {
			k := sc.key()
			sc.skipSpace()
			if sc.peek() == '=' {
				sc.pos++
				key := joinKey(table, strings.Join(k, "."))
				s.record(key, line)
				sc.value(s, key)
			}
		}
		if sc.pos == start { // not TOML after all; never loop forever
			sc.next()
		}
	}
}

// resolveTable turns a header's key parts into a path with array indexes,
// counting [[...]] tables per parent element as TOML does.
func resolveTable(parts []string, double bool, arrays map[string]int) string {
	path := ""
	for i, p := range parts {
		path = joinKey(path, p)
		n := arrays[path]
		switch {
		case i == len(parts)-1 && double:
			arrays[path] = n + 1
			path += "[" + strconv.Itoa(n) + "]"
		case n > 0: // a sub-table of the latest element
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func (s *source) record(key string, line int) {
	if _, ok := s.lines[key]; !ok {
		s.lines[key] = line
	}
}

func joinKey(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

// scanner walks TOML text byte by byte, counting lines.
type scanner struct {
	src  []byte
	pos  int
	line int
}

func (sc *scanner) eof() bool { return sc.pos >= len(sc.src) }

func (sc *scanner) peek() byte {
	if sc.eof() {
		return 0
	}
	return sc.src[sc.pos]
}

func (sc *scanner) hasPrefix(p string) bool { return bytes.HasPrefix(sc.src[sc.pos:], []byte(p)) }

func (sc *scanner) next() byte {
	c := sc.src[sc.pos]
	sc.pos++
	if c == '\n' {
		sc.line++
	}
	return c
}

func (sc *scanner) skipSpace() {
	for !sc.eof() && (sc.peek() == ' ' || sc.peek() == '\t') {
		sc.pos++
	}
}

// skipBlank skips whitespace, newlines and comments.
func (sc *scanner) skipBlank() {
	for !sc.eof() {
		switch sc.peek() {
		case ' ', '\t', '\r', '\n':
			sc.next()
		case '#':
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *scanner) skipComment() {
	for !sc.eof() && sc.peek() != '\n' {
		sc.pos++
	}
}

// skipPast skips to just after the next c on this line (a header's "]").
func (sc *scanner) skipPast(c byte) {
	for !sc.eof() && sc.peek() != '\n' {
		if sc.next() == c {
			for sc.peek() == c { // "]]"
				sc.pos++
			}
			return
		}
	}
}

// key reads a dotted key: bare, "basic" or 'literal' parts joined by dots.
func (sc *scanner) key() []string {
	var parts []string
	for {
		sc.skipSpace()
		switch c := sc.peek(); {
		case c == '"' || c == '\'':
			start := sc.pos
			sc.str()
			raw := string(sc.src[start:sc.pos])
			if c == '\'' {
				parts = append(parts, strings.Trim(raw, "'"))
			} else if u, err := strconv.Unquote(raw); err == nil {
				parts = append(parts, u)
			} else {
				parts = append(parts, strings.Trim(raw, `"`))
			}
		default:
			start := sc.pos
			for !sc.eof() && isBare(sc.peek()) {
				sc.pos++
			}
			if sc.pos == start {
				return parts
			}
			parts = append(parts, string(sc.src[start:sc.pos]))
		}
		sc.skipSpace()
		if sc.peek() != '.' {
			return parts
		}
		sc.pos++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips the value of key up to the end of its (last) line: arrays
// and inline tables may span lines, and so may multi-line strings. The
// elements of an array are recorded with their index ("route[0].pools[2]"),
// each at the line it starts on.
func (sc *scanner) value(s *source, key string) {
	var open []byte // the '[' and '{' not yet closed
	elem := 0
	next := false // in the value's own array, the next value is an element
	for !sc.eof() {
		c := sc.peek()
		if next && len(open) == 1 && open[0] == '[' && !strings.ContainsRune(" \t\r\n#,]", rune(c)) {
			s.record(key+"["+strconv.Itoa(elem)+"]", sc.line)
			elem++
			next = false
		}
		switch c {
		case '\n':
			if len(open) == 0 {
				return
			}
			sc.next()
		case '#':
			sc.skipComment()
		case '"', '\'':
			sc.str()
		case '[', '{':
			open = append(open, c)
			next = len(open) == 1 && c == '['
			sc.pos++
		case ']', '}':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
			sc.pos++
		case ',':
			next = next || len(open) == 1
			sc.pos++
		default:
			sc.pos++
		}
	}
}

// str skips a string in any of TOML's four forms.
func (sc *scanner) str() {
	q := sc.peek()
	triple := string([]byte{q, q, q})
	if sc.hasPrefix(triple) {
		sc.pos += 3
		for !sc.eof() {
			if q == '"' && sc.peek() == '\\' {
				sc.next()
				if !sc.eof() {
					sc.next()
				}
				continue
			}
			if sc.hasPrefix(triple) {
				sc.pos += 3
				for i := 0; i < 2 && sc.peek() == q; i++ { // up to two quotes may end the content
					sc.pos++
				}
				return
			}
			sc.next()
		}
		return
	}
	sc.pos++
	for !sc.eof() && sc.peek() != '\n' {
		c := sc.next()
		if c == q {
			return
		}
		if q == '"' && c == '\\' && !sc.eof() && sc.peek() != '\n' {
			sc.pos++
		}
	}
}
