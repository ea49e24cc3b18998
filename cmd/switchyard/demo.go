package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
	"switchyard/sim"
)

// demo runs the real proxy between two simulated pools and a simulated
// miner fleet, all on loopback, blacks out the primary pool mid-run and
// brings it back, printing one status line per second.
func demo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 45*time.Second, "how long to run; 0 runs until interrupted (Ctrl-C)")
	miners := fs.Int("miners", 100, "simulated miners")
	rate := fs.Float64("rate", 0.5, "shares per second per miner (cap)")
	fault := fs.String("fault", "blackhole", "what happens to the primary pool: blackhole, close, reject, slow or flap")
	blackout := fs.Duration("blackout-at", 10*time.Second, "when the primary pool goes dark")
	restore := fs.Duration("restore-at", 22*time.Second, "when the primary pool comes back")
	failback := fs.Duration("failback-after", 8*time.Second, "how long the primary must be healthy before miners return")
	verbose := fs.Bool("v", false, "show switchyard's info logs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mode, err := sim.ParseFaultMode(*fault)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	lvl := zerolog.WarnLevel
	if *verbose {
		lvl = zerolog.InfoLevel
	}
	log := newLogger(config.Log{Level: lvl.String()}, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *duration < 0 {
		fmt.Fprintln(stderr, "demo: -duration must be 0 (until interrupted) or more")
		return 2
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	const diff = 2e-6 // cheap shares (about 8,600 hashes each): the demo runs on any laptop
	var pools [2]*sim.Pool
	for i := range pools {
		p, err := sim.StartPool(sim.PoolConfig{
			Difficulty:      diff,
			Extranonce1Size: 4,
			Extranonce2Size: 8 - 4*i, // the backup offers a smaller extranonce2, as real pools differ
			JobInterval:     5 * time.Second,
			CleanEvery:      3,
			Log:             log,
		})
		if err != nil {
			fmt.Fprintln(stderr, "demo: pool:", err)
			return 1
		}
		defer p.Close()
		pools[i] = p
	}

	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Extranonce1Size = 2
	cfg.Difficulty.Initial, cfg.Difficulty.Min, cfg.Difficulty.Max = diff, diff, 1
	cfg.Difficulty.TargetShareInterval = config.Duration(2 * time.Second)
	cfg.Failover.SubmitTimeout = config.Duration(2 * time.Second)
	cfg.Failover.DialTimeout = config.Duration(2 * time.Second)
	cfg.Failover.FailbackAfter = config.Duration(*failback)
	cfg.Failover.BackoffMax = config.Duration(2 * time.Second)
	cfg.Metrics.Listen = "127.0.0.1:0"
	for i, name := range []string{"primary", "backup"} {
		cfg.Pools = append(cfg.Pools, config.Pool{Index: i, Name: name, URL: "stratum+tcp://" + pools[i].Addr(), User: "demo." + name, Password: "x"})
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "demo: config:", err)
		return 1
	}
	a, err := app.Start(ctx, cfg, log, version)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer a.Stop()
	fmt.Fprintf(stdout, "switchyard %s demo: proxy on %s\n", version, a.MinerAddr())
	fmt.Fprintf(stdout, "status page: http://%s/   (metrics: http://%s/metrics)\n", a.HTTPAddr(), a.HTTPAddr())
	if *duration == 0 {
		fmt.Fprintln(stdout, "running until interrupted (Ctrl-C)")
	}
	fmt.Fprintf(stdout, "pools: primary %s (extranonce2 8 bytes), backup %s (4 bytes); %d miners at up to %.1f shares/s each\n",
		pools[0].Addr(), pools[1].Addr(), *miners, *rate)
	fmt.Fprintf(stdout, "timeline: primary goes %s at %s, comes back at %s, miners return %s after that\n\n",
		mode, *blackout, *restore, *failback)

	// The fleet outlives ctx until its books are read: a miner hanging up
	// because the demo ends is not a connection switchyard dropped.
	fleetCtx, fleetCancel := context.WithCancel(context.Background())
	defer fleetCancel()
	fleet, err := sim.StartFleet(fleetCtx, sim.FleetConfig{
		Addr:               a.MinerAddr(),
		Miners:             *miners,
		User:               "rig",
		VersionRolling:     true,
		MaxSharesPerSecond: *rate,
		RampUp:             time.Second,
		Log:                log,
	})
	if err != nil {
		fmt.Fprintln(stderr, "demo: miners:", err)
		return 1
	}

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev [2]uint64
	active := ""
	blackedOut, restored := false, false
	for {
		select {
		case <-ctx.Done():
			st := fleet.Stats() // before the fleet itself hangs up
			dropped := sumValues(st.Disconnects) - st.Disconnects[sim.CauseClosed]
			fleetCancel()
			_ = fleet.Close()
			fs := fleet.Stats()
			fmt.Fprintf(stdout, "\ndone: %d miners, %d shares submitted, %d accepted, %d rejected, %d unanswered at hang-up; miner connections dropped by switchyard: %d\n",
				fs.Miners, fs.Submits, fs.Accepted, fs.RejectedTotal(), fs.Lost, dropped)
			if dropped > 0 || fs.RejectedTotal() > 0 {
				fmt.Fprintf(stdout, "disconnects by cause %v; rejected by reason %v\n", st.Disconnects, fs.Rejected)
			}
			// switchyard's own books: what it forwarded and what became of it.
			// Shares below the pool's difficulty are answered locally and not
			// forwarded, so the pools count fewer than the miners.
			tot := a.Totals()
			fmt.Fprintf(stdout, "lost by the miners (answered accepted, no pool could take them): %.0f%s\n", tot.Lost, lostReasons(tot.MinerLostBy))
			fmt.Fprintf(stdout, "switchyard: forwarded %.0f shares that met the pool's difficulty: %.0f answered accepted, %.0f rejected; lost at the pools (no answer): %.0f%s\n",
				tot.Forwarded, tot.PoolAccepted, tot.PoolRejected, tot.PoolLost, lostReasons(tot.PoolLostBy))
			primary, backup := pools[0].Stats().Accepted, pools[1].Stats().Accepted
			fmt.Fprintf(stdout, "the pools' own ledgers: primary accepted %d, backup accepted %d", primary, backup)
			if float64(primary+backup) > tot.PoolAccepted {
				fmt.Fprint(stdout, " (a frozen pool that wakes up still credits shares it read late, which switchyard had to count as lost)")
			}
			fmt.Fprintln(stdout)
			return 0
		case now := <-tick.C:
			t := now.Sub(start).Round(time.Second)
			if !blackedOut && t >= *blackout {
				blackedOut = true
				_ = pools[0].SetFault(sim.Fault{Mode: mode, Delay: 5 * time.Second, Period: 3 * time.Second})
				fmt.Fprintf(stdout, "%4s  >>> primary pool goes dark (%s)\n", t, mode)
			}
			if !restored && t >= *restore {
				restored = true
				_ = pools[0].SetFault(sim.Fault{Mode: sim.FaultNormal})
				fmt.Fprintf(stdout, "%4s  >>> primary pool is back\n", t)
			}
			if cur := a.Pools.Active(); cur != active {
				if active != "" {
					fmt.Fprintf(stdout, "%4s  >>> switchyard moved the miners: %s -> %s\n", t, active, orNone(cur))
				}
				active = cur
			}
			fs := fleet.Stats()
			var acc [2]uint64
			for i, p := range pools {
				acc[i] = p.Stats().Accepted
			}
			fmt.Fprintf(stdout, "%4s  miners %3d/%d  on %-7s  primary +%3d/s  backup +%3d/s  miner view: accepted %d rejected %d\n",
				t, fs.Ready, fs.Miners, orNone(active), acc[0]-prev[0], acc[1]-prev[1], fs.Accepted, fs.RejectedTotal())
			prev = acc
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// lostReasons formats lost shares by reason as " (reason n, …)", or "".
func lostReasons(by map[string]float64) string {
	if len(by) == 0 {
		return ""
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f", k, by[k])
	}
	return " (" + b.String() + ")"
}
