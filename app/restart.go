package app

import (
	"reflect"
	"strings"

	"switchyard/config"
)

// reloadable lists the keys of restart-bound sections that Reload applies
// at once all the same.
var reloadable = map[string]bool{
	"metrics.group_by": true,
}

// restartKeys names, as "section.key", every key of [server], [failover]
// and [metrics] that differs between old and cur: Reload cannot apply
// those to listeners and sessions already running.
func restartKeys(old, cur *config.Config) []string {
	var keys []string
	for _, sec := range []struct {
		name     string
		old, cur any
	}{
		{"server", old.Server, cur.Server},
		{"failover", old.Failover, cur.Failover},
		{"metrics", old.Metrics, cur.Metrics},
	} {
		a, b := reflect.ValueOf(sec.old), reflect.ValueOf(sec.cur)
		for i := 0; i < a.NumField(); i++ {
			f := a.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				name = strings.ToLower(f.Name)
			}
			key := sec.name + "." + name
			if !reloadable[key] && !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}
