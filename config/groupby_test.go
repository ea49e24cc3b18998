package config

import (
	"strings"
	"testing"
)

func TestGroupBy(t *testing.T) {
	tests := []struct {
		rule   GroupBy
		worker string
		want   string
	}{
		{"", "rack7.row3.s19", "rack7"},
		{"prefix:1", "rack7.row3.s19", "rack7"},
		{"prefix:2", "rack7.row3.s19", "rack7.row3"},
		{"prefix:3", "rack7.row3.s19", "rack7.row3.s19"},
		{"prefix:5", "rack7.row3", "rack7.row3"},
		{"prefix:1", "lonely", "lonely"},
		{"prefix:1", "", GroupUnnamed},
		{"none", "rack7.row3", ""},
		{"regexp:^acct\\.(r[0-9]+)-", "acct.r12-s19-7", "r12"},
		{"regexp:r[0-9]+", "acct.r12-s19-7", "r12"},
		{"regexp:^(r[0-9]+)", "acct.r12", GroupOther},
		{"regexp:(x)?r1", "r1", "r1"}, // the group did not take part: the whole match
	}
	for _, tt := range tests {
		t.Run(string(tt.rule)+" "+tt.worker, func(t *testing.T) {
			f, err := tt.rule.Func()
			if err != nil {
				t.Fatal(err)
			}
			if got := f(tt.worker); got != tt.want {
				t.Errorf("group of %q = %q, want %q", tt.worker, got, tt.want)
			}
		})
	}
}

func TestGroupByErrors(t *testing.T) {
	tests := []struct {
		toml, want string
	}{
		{`group_by = "prefix:0"`, `metrics.group_by: prefix:N needs N from 1 to 8 (got "prefix:0")`},
		{`group_by = "prefix:x"`, `metrics.group_by: prefix:N needs N from 1 to 8 (got "prefix:x")`},
		{`group_by = "rack"`, `metrics.group_by: want "prefix:N", "regexp:EXPR" or "none" (got "rack")`},
		{`group_by = "regexp:"`, `metrics.group_by: regexp: needs an expression after the colon`},
		{`group_by = "regexp:(rack"`, "metrics.group_by: regexp: error parsing regexp: missing closing ): `(rack`"},
	}
	for _, tt := range tests {
		t.Run(tt.toml, func(t *testing.T) {
			src := "[[pool]]\nname = \"p\"\nurl = \"stratum+tcp://127.0.0.1:3333\"\nuser = \"u\"\n\n[metrics]\n" + tt.toml + "\n"
			_, err := Parse([]byte(src), "t.toml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v\nwant the message %q", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte("[[pool]]\nname = \"p\"\nurl = \"stratum+tcp://127.0.0.1:3333\"\nuser = \"u\"\n\n[metrics]\ngroup_by = \"regexp:^(rack[0-9]+)\"\n"), "t.toml"); err != nil {
		t.Errorf("a valid rule: %v", err)
	}
}
