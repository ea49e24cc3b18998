package app

import (
	"slices"
	"testing"
	"time"

	"switchyard/config"
)

// TestRestartKeys: a reload names every changed key that needs a restart,
// as section.key, and none of those it applies.
func TestRestartKeys(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   []string
	}{
		{"nothing", func(c *config.Config) {}, nil},
		{"pools and difficulty reload", func(c *config.Config) {
			c.Pools = append(c.Pools, config.Pool{Name: "x"})
			c.Difficulty.Min = 1
			c.Log.Level = "debug"
		}, nil},
		{"server listen", func(c *config.Config) { c.Server.Listen = "0.0.0.0:4444" }, []string{"server.listen"}},
		{"two sections", func(c *config.Config) {
			c.Failover.FailbackAfter = config.Duration(time.Minute * 5)
			c.Failover.Standby = 3
			c.Metrics.Listen = ""
		}, []string{"failover.failback_after", "failover.standby", "metrics.listen"}},
		{"group_by applies at once", func(c *config.Config) { c.Metrics.GroupBy = "prefix:2" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := config.Default(), config.Default()
			tt.change(cur)
			if got := restartKeys(old, cur); !slices.Equal(got, tt.want) {
				t.Errorf("restartKeys = %v, want %v", got, tt.want)
			}
		})
	}
}
