package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/proxy"
	"switchyard/sim"
	"switchyard/stratum"
)

// TestVardiffRampsUp: miners started far below their share rate get their
// difficulty raised towards target_share_interval, within [min, max].
func TestVardiffRampsUp(t *testing.T) {
	const max = 1e-4
	// The pool's difficulty is above max: it caps nothing here.
	r := newRig(t, 1, func(_ int, c *sim.PoolConfig) { c.Difficulty = 1e-3 }, func(c *config.Config) {
		c.Difficulty.Initial, c.Difficulty.Min, c.Difficulty.Max = testDiff, testDiff, max
		c.Difficulty.TargetShareInterval = config.Duration(time.Second)
		c.Difficulty.RetargetInterval = config.Duration(time.Second)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: 4, User: "rig", MaxSharesPerSecond: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	var rows []proxy.MinerRow
	waitFor(t, 20*time.Second, "vardiff to raise every miner's difficulty", func() bool {
		rows = minerRows(t, r.app.HTTPAddr())
		if len(rows) != 4 {
			return false
		}
		for _, row := range rows {
			if row.Difficulty <= 16*testDiff {
				return false
			}
		}
		return true
	})
	for _, row := range rows {
		if row.Difficulty > max {
			t.Errorf("%s: difficulty %g above max %g", row.Worker, row.Difficulty, max)
		}
	}
	if fs := fleet.Stats(); fs.RejectedTotal() != 0 {
		t.Errorf("difficulty changes caused rejects: %v", fs.Rejected)
	}
}

func minerRows(t *testing.T, addr string) []proxy.MinerRow {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/miners")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []proxy.MinerRow
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestSuggestAndMinimumDifficulty: mining.suggest_difficulty (before or
// after authorize) and the minimum-difficulty extension are honoured inside
// [min, max].
func TestSuggestAndMinimumDifficulty(t *testing.T) {
	// The pool's difficulty is above max: it caps nothing here.
	r := newRig(t, 1, func(_ int, c *sim.PoolConfig) { c.Difficulty = 1e-2 }, func(c *config.Config) {
		c.Difficulty.Initial, c.Difficulty.Min, c.Difficulty.Max = 1e-6, 1e-7, 1e-3
	})
	tests := []struct {
		name  string
		setup func(c *client)
		want  float64
	}{
		{"suggest before authorize", func(c *client) {
			c.call(stratum.MethodSubscribe, `[]`)
			c.call(stratum.MethodSuggestDifficulty, `[0.0005]`)
			c.call(stratum.MethodAuthorize, `["rig.1","x"]`)
		}, 0.0005},
		{"suggest above max is clamped", func(c *client) {
			c.call(stratum.MethodSuggestDifficulty, `["5"]`)
			c.call(stratum.MethodSubscribe, `[]`)
			c.call(stratum.MethodAuthorize, `["rig.2","x"]`)
		}, 1e-3},
		{"suggest below min is clamped", func(c *client) {
			c.call(stratum.MethodSubscribe, `[]`)
			c.call(stratum.MethodAuthorize, `["rig.3","x"]`)
			c.waitJobs(1)
			c.call(stratum.MethodSuggestDifficulty, `[1e-12]`)
		}, 1e-7},
		{"suggest after authorize", func(c *client) {
			c.call(stratum.MethodSubscribe, `[]`)
			c.call(stratum.MethodAuthorize, `["rig.4","x"]`)
			c.waitJobs(1)
			c.call(stratum.MethodSuggestDifficulty, `[0.0002]`)
		}, 0.0002},
		{"minimum-difficulty raises the floor", func(c *client) {
			c.call(stratum.MethodConfigure, `[["minimum-difficulty"],{"minimum-difficulty.value":0.0003}]`)
			c.call(stratum.MethodSubscribe, `[]`)
			c.call(stratum.MethodAuthorize, `["rig.5","x"]`)
			c.call(stratum.MethodSuggestDifficulty, `[1e-7]`)
		}, 0.0003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialClient(t, r.app.MinerAddr())
			c.t = t
			tt.setup(c)
			waitFor(t, 5*time.Second, "difficulty", func() bool {
				line, err := c.readLine(200 * time.Millisecond)
				if err == nil {
					var m stratum.Message
					if m.Decode([]byte(line)) == nil {
						c.note(&m)
					}
				}
				return c.diff == tt.want
			})
			if len(c.jobs) == 0 {
				c.waitJobs(1)
			}
		})
	}
}
