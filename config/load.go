package config

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes and validates the configuration file at path. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration; name is the file name used in
// messages. Keys the file leaves out keep their Default values. On any
// problem it returns a nil Config and an *Error listing every problem: syntax
// (then nothing else can be checked), values of the wrong type, unknown keys
// and values that do not validate.
//
// Pools come out ranked: sorted by priority, then by order in the file. When
// the file does not set failover.standby, the default is lowered to fit the
// number of pools, so a one-pool file validates.
func Parse(data []byte, name string) (*Config, error) {
	// NOTE: the document is decoded into a generic tree and then assigned
	// field by field (below) rather than by toml.Decode into Config: Decode
	// stops at the first wrongly typed value, matches keys case-insensitively
	// and knows only the last [[pool]]'s lines. Every key that assign does not
	// consume is reported, which is what toml's MetaData.Undecoded offers, but
	// exact.
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, asError([]Problem{syntaxProblem(name, err)})
	}
	c := Default()
	c.src = indexSource(name, data)
	d := decoder{src: c.src, bad: make(map[string]bool)}
	d.table("", doc, reflect.ValueOf(c).Elem())

	if f, ok := doc["failover"].(map[string]any); !ok || f["standby"] == nil {
		c.Failover.Standby = max(0, min(c.Failover.Standby, len(c.Pools)-1))
	}
	slices.SortStableFunc(c.Pools, func(a, b Pool) int { return cmp.Compare(a.Priority, b.Priority) })

	ps := d.problems
	for _, p := range c.Problems() {
		if !d.bad[p.Key] { // already reported as a wrong type; keeps its default
			ps = append(ps, p)
		}
	}
	if err := asError(ps); err != nil {
		return nil, err
	}
	return c, nil
}

func syntaxProblem(name string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problem{File: name, Line: pe.Position.Line, Message: "invalid TOML: " + pe.Message}
	}
	return Problem{File: name, Message: "invalid TOML: " + err.Error()}
}

// decoder assigns a decoded TOML tree to Config, collecting problems.
type decoder struct {
	src      *source
	problems []Problem
	bad      map[string]bool // keys with a problem of their own
}

func (d *decoder) add(key, format string, args ...any) {
	d.problems = append(d.problems, Problem{
		File:    d.src.file(),
		Line:    d.src.line(key),
		Key:     key,
		Message: fmt.Sprintf(format, args...),
	})
	d.bad[key] = true
}

// table assigns the keys of tbl, found at path, to the tagged fields of the
// struct dst.
func (d *decoder) table(path string, tbl map[string]any, dst reflect.Value) {
	names, index := fieldsOf(dst.Type())
	for _, k := range slices.Sorted(maps.Keys(tbl)) {
		key := joinKey(path, k)
		i, ok := index[k]
		if !ok {
			d.unknown(key, k, tbl[k], names)
			continue
		}
		d.value(key, tbl[k], dst.Field(i))
	}
}

// value assigns v, found at key, to dst.
func (d *decoder) value(key string, v any, dst reflect.Value) {
	if tu, ok := dst.Addr().Interface().(encoding.TextUnmarshaler); ok {
		s, ok := v.(string)
		if !ok {
			d.add(key, "expected %s (got %s)", expected(dst.Type()), describe(v))
			return
		}
		if err := tu.UnmarshalText([]byte(s)); err != nil {
			d.add(key, "%v", err)
		}
		return
	}
	switch dst.Kind() {
	case reflect.Struct:
		if t, ok := v.(map[string]any); ok {
			d.table(key, t, dst)
			return
		}
	case reflect.Slice:
		switch dst.Type().Elem().Kind() {
		case reflect.Struct:
			d.tables(key, v, dst)
			return
		case reflect.String:
			d.strings(key, v, dst)
			return
		}
	case reflect.String:
		if s, ok := v.(string); ok {
			dst.SetString(s)
			return
		}
	case reflect.Bool:
		if b, ok := v.(bool); ok {
			dst.SetBool(b)
			return
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n, ok := v.(int64); ok {
			if dst.OverflowInt(n) {
				d.add(key, "%d is too large", n)
				return
			}
			dst.SetInt(n)
			return
		}
	case reflect.Float32, reflect.Float64:
		switch n := v.(type) {
		case float64:
			dst.SetFloat(n)
			return
		case int64:
			dst.SetFloat(float64(n))
			return
		}
	}
	d.add(key, "expected %s (got %s)", expected(dst.Type()), describe(v))
}

// tables assigns an array of tables, [[pool]], to the slice dst. Each
// element's Index field, if it has one, gets its position in the file.
func (d *decoder) tables(key string, v any, dst reflect.Value) {
	var tbls []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		tbls = v
	case []any: // pool = [{...}, {...}]
		for _, e := range v {
			t, ok := e.(map[string]any)
			if !ok {
				d.add(key, "expected [[%s]] tables (got an array holding %s)", key, describe(e))
				return
			}
			tbls = append(tbls, t)
		}
	default:
		d.add(key, "expected [[%s]] tables, with double brackets (got %s)", key, describe(v))
		return
	}
	s := reflect.MakeSlice(dst.Type(), len(tbls), len(tbls))
	for i, t := range tbls {
		e := s.Index(i)
		if f := e.FieldByName("Index"); f.IsValid() && f.CanInt() {
			f.SetInt(int64(i))
		}
		d.table(key+"["+strconv.Itoa(i)+"]", t, e)
	}
	dst.Set(s)
}

// strings assigns an array of strings to the slice dst; a Strings also
// takes a single string. An element that is not a string is reported with
// its index ("route[0].pools[1]") and kept as "", so that the others keep
// their indexes.
func (d *decoder) strings(key string, v any, dst reflect.Value) {
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case string:
		if dst.Type() == stringsType {
			dst.Set(reflect.ValueOf(Strings{v}))
			return
		}
		d.add(key, "expected %s (got %s)", expected(dst.Type()), describe(v))
		return
	case []map[string]any:
		d.add(key, "expected %s (got an array of tables)", expected(dst.Type()))
		return
	default:
		d.add(key, "expected %s (got %s)", expected(dst.Type()), describe(v))
		return
	}
	s := reflect.MakeSlice(dst.Type(), len(list), len(list))
	for i, e := range list {
		str, ok := e.(string)
		if !ok {
			d.add(key+"["+strconv.Itoa(i)+"]", "expected a string (got %s)", describe(e))
			continue
		}
		s.Index(i).SetString(str)
	}
	dst.Set(s)
}

func (d *decoder) unknown(key, name string, v any, known []string) {
	what := "unknown key"
	switch v.(type) {
	case map[string]any, []map[string]any:
		what = "unknown table"
	}
	if s := suggest(name, known); s != "" {
		d.add(key, "%s (did you mean %q?)", what, s)
		return
	}
	d.add(key, "%s; known keys here: %s", what, strings.Join(known, ", "))
}

// fieldsOf returns the TOML names of t's tagged fields, in order, and their
// field indexes.
func fieldsOf(t reflect.Type) ([]string, map[string]int) {
	var names []string
	index := make(map[string]int)
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		names = append(names, tag)
		index[tag] = i
	}
	return names, index
}

var (
	durationType = reflect.TypeFor[Duration]()
	stringsType  = reflect.TypeFor[Strings]()
)

// expected says what a field of type t takes.
func expected(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration string such as "3s"`
	case stringsType:
		return `a string or an array of strings, such as "a" or ["a", "b"]`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct:
		return "a table"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return `an array of strings, such as ["a", "b"]`
		}
		return "an array"
	}
	return t.String()
}

// describe says what a decoded TOML value is, for messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return "string " + strconv.Quote(v)
	case int64:
		return "integer " + strconv.FormatInt(v, 10)
	case float64:
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns the known name closest to name, if it is close enough to
// be a typo: differing only in case or '-' for '_', or by at most two edits.
func suggest(name string, known []string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	best, bestDist := "", 3
	for _, k := range known {
		if norm(k) == norm(name) {
			return k
		}
		if dist := editDistance(norm(k), norm(name)); dist < bestDist && dist < len(k) {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
