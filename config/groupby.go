package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// GroupBy is [metrics] group_by: how the status page and /api/v1/miners
// group miners by their worker name (a rack, a row):
//
//	"prefix:N"     the first N "."-separated fields of the name
//	               ("rack7.row3.s19-042" is "rack7" with prefix:1,
//	               "rack7.row3" with prefix:2); a name with fewer fields
//	               is its own group; N from 1 to 8. "" means "prefix:1".
//	"regexp:EXPR"  the first capture group of EXPR's leftmost match in the
//	               name (the whole match when EXPR has no group); names
//	               that do not match go to the group "(other)"
//	"none"         no grouping: every miner is in the group ""
//
// Miners that have not authorized yet are in the group "(unnamed)".
type GroupBy string

// Group-by limits and the groups that are not a worker name's part.
const (
	MaxGroupByPrefix = 8
	GroupUnnamed     = "(unnamed)"
	GroupOther       = "(other)"
)

// Func parses g into the function that maps a worker name to its group.
func (g GroupBy) Func() (func(worker string) string, error) {
	kind, arg, _ := strings.Cut(string(g), ":")
	switch {
	case g == "":
		return prefixGroup(1), nil
	case g == "none":
		return func(string) string { return "" }, nil
	case kind == "prefix":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > MaxGroupByPrefix {
			return nil, fmt.Errorf("prefix:N needs N from 1 to %d (got %q)", MaxGroupByPrefix, string(g))
		}
		return prefixGroup(n), nil
	case kind == "regexp":
		if arg == "" {
			return nil, fmt.Errorf("regexp: needs an expression after the colon, such as regexp:^(rack[0-9]+)")
		}
		re, err := regexp.Compile(arg)
		if err != nil {
			return nil, fmt.Errorf("regexp: %w", err)
		}
		return regexpGroup(re), nil
	}
	return nil, fmt.Errorf(`want "prefix:N", "regexp:EXPR" or "none" (got %q)`, string(g))
}

func prefixGroup(n int) func(string) string {
	return func(w string) string {
		if w == "" {
			return GroupUnnamed
		}
		end := 0
		for k := 0; k < n; k++ {
			i := strings.IndexByte(w[end:], '.')
			if i < 0 {
				return w
			}
			end += i + 1
		}
		return w[:end-1]
	}
}

func regexpGroup(re *regexp.Regexp) func(string) string {
	return func(w string) string {
		if w == "" {
			return GroupUnnamed
		}
		m := re.FindStringSubmatchIndex(w)
		switch {
		case m == nil:
			return GroupOther
		case len(m) >= 4 && m[2] >= 0:
			return w[m[2]:m[3]]
		}
		return w[m[0]:m[1]]
	}
}
