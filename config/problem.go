package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration: a syntax error, a value of
// the wrong type, an unknown key, or a value that does not validate.
type Problem struct {
	File    string // file name given to Load or Parse; "" for a Config built in code
	Line    int    // 1-based line of the key (or of its table); 0 when unknown
	Key     string // dotted key path with pool indexes, "pool[1].url"; "" for syntax errors
	Message string // what is wrong and what is expected
}

// Error formats p as "file:line: key: message", leaving out what is unknown.
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is what Load, Parse and Validate return when a configuration has
// problems. It lists all of them, in file order; its message has one problem
// per line. Like an errors.Join error it unwraps to every Problem, so
// errors.As also finds the first one.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every Problem as an error.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// asError returns nil for no problems, else an *Error with ps in file order:
// by line, problems without a line last.
func asError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	sortProblems(ps)
	return &Error{Problems: ps}
}

func sortLine(l int) int {
	if l == 0 {
		return math.MaxInt
	}
	return l
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Compare(sortLine(a.Line), sortLine(b.Line))
	})
}
