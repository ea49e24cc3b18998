package app_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
)

// TestLaneOpensDuringPublishes: miners that open new lanes (a lane holds
// 256 miners at extranonce1_size = 1) while the pools publish jobs as fast
// as they can. The miner side once took its lane lock and then the pool
// manager's lock to open a lane, while a pool session took them the other
// way round to publish a job: the event loop froze, and with it its miners
// and every failover. Every miner must get mining; a watchdog fails the
// test with every goroutine's stack if nothing moves for 20 s.
func TestLaneOpensDuringPublishes(t *testing.T) {
	t.Parallel() // its own pools and switchyard; waits on events, not on timings
	const lanes = 6
	r := newRig(t, 2, nil, func(c *config.Config) { c.Server.Extranonce1Size = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { // jobs back to back on both pools, bounded
		defer close(done)
		for i := 0; i < 200000 && ctx.Err() == nil; i++ {
			r.pools[i%2].PushJob(i%50 == 0)
			if i%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() { cancel(); <-done }()
	miners := 256*(lanes-1) + 1
	f, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: miners, Idle: true, RampUp: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last, lastAt := int64(-1), time.Now()
	for {
		ready := f.Stats().Ready
		if ready == int64(miners) {
			break
		}
		if ready != last {
			last, lastAt = ready, time.Now()
		}
		if time.Since(lastAt) > 20*time.Second {
			buf := make([]byte, 4<<20) // (no call into switchyard here: its locks may be the ones stuck)
			t.Fatalf("stuck at %d of %d miners ready; goroutines:\n%s", ready, miners, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := r.app.Proxy.LaneCount(); n < lanes {
		t.Fatalf("%d lanes opened, want %d", n, lanes)
	}
}
