package app_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
)

// TestStressLanesJobsFailovers: lanes open and close (extranonce1_size =
// 1: 256 miners a lane) as fleets of idle miners connect and leave, while
// both pools publish a job every 20 ms and the active pool fails over and
// back every second. A watchdog fails the test, printing every goroutine,
// when the event loops (a mining fleet's jobs) or the pool manager (its
// status) make no progress for 5 s: the symptom of a lock held across the
// miner and pool sides. STRESS_SECONDS sets the length (default 8).
func TestStressLanesJobsFailovers(t *testing.T) {
	t.Parallel() // its own pools and switchyard; waits on events, not on timings
	seconds := 8
	if s := os.Getenv("STRESS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("STRESS_SECONDS=%q: %v", s, err)
		}
		seconds = n
	}
	r := newRig(t, 2, func(_ int, c *sim.PoolConfig) { c.JobInterval = 20 * time.Millisecond }, func(c *config.Config) {
		c.Server.Extranonce1Size = 1
		c.Failover.FailbackAfter = config.Duration(200 * time.Millisecond)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	active := r.startFleet(8, nil) // mining: their jobs show the loops move

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the primary goes dark and comes back every second
		defer wg.Done()
		for dark := true; ; dark = !dark {
			mode := sim.FaultNormal
			if dark {
				mode = sim.FaultClose
			}
			if err := r.pools[0].SetFault(sim.Fault{Mode: mode}); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-ctx.Done():
				_ = r.pools[0].SetFault(sim.Fault{})
				return
			case <-time.After(time.Second):
			}
		}
	}()
	go func() { // idle fleets come and go: lanes open and close
		defer wg.Done()
		var fleets []*sim.Fleet
		defer func() {
			for _, f := range fleets {
				_ = f.Close()
			}
		}()
		for i := 0; ctx.Err() == nil; i++ {
			f, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: 300, Idle: true, User: "idle" + strconv.Itoa(i)})
			if err != nil {
				t.Error(err)
				return
			}
			fleets = append(fleets, f)
			if len(fleets) > 5 {
				_ = fleets[0].Close()
				fleets = fleets[1:]
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()

	lastJobs, lastMove := active.Stats().Jobs, time.Now()
	for ctx.Err() == nil {
		status := make(chan struct{})
		go func() { r.app.Pools.Status(); close(status) }()
		select {
		case <-status:
		case <-time.After(5 * time.Second):
			dumpAndFail(t, "the pool manager did not answer for 5 s")
		}
		if jobs := active.Stats().Jobs; jobs != lastJobs {
			lastJobs, lastMove = jobs, time.Now()
		} else if time.Since(lastMove) > 5*time.Second {
			dumpAndFail(t, "no job reached the mining miners for 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	r.waitActive("p0", 10*time.Second)
	r.waitMining(active, 0, 8)
	if n := r.app.Proxy.LaneCount(); n < 2 {
		t.Errorf("only %d lanes opened", n)
	}
	r.checkConnectedActive(active)
}

// checkConnectedActive checks that no miner of f was disconnected.
func (r *rig) checkConnectedActive(f *sim.Fleet) {
	r.t.Helper()
	if fs := f.Stats(); sumMap(fs.Disconnects) != 0 {
		r.t.Errorf("mining miners dropped: %v", fs.Disconnects)
	}
}

func dumpAndFail(t *testing.T, why string) {
	buf := make([]byte, 8<<20)
	t.Fatalf("%s; goroutines:\n%s", why, buf[:runtime.Stack(buf, true)])
}
