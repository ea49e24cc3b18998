package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"switchyard/sim"
)

type minerOptions struct {
	connect, source, user, password, ledger, logLevel string
	firmware                                          string
	n                                                 int
	rate, suggest                                     float64
	idle, rolling, enSub, jsonOut                     bool
	duration, report, ramp, retry, handshake, grace   time.Duration
	warmup                                            time.Duration
}

func minerFlags(o *minerOptions) *flag.FlagSet {
	fs := newFlagSet("miners", "Runs a fleet of simulated miners. It prints a status line every -report\nand a summary at the end (-duration, SIGINT or SIGTERM). With -firmware the miners\nbehave as that firmware does: its handshake, the extranonce2 sizes it accepts and\nsubmits, when a new difficulty, extranonce or version mask applies, which notifies\nabandon the work in hand, and how it answers mining.ping and client.get_version.")
	fs.StringVar(&o.connect, "connect", "127.0.0.1:3333", "`address` of the pool or proxy")
	fs.IntVar(&o.n, "n", 1, "`number` of miners, one TCP connection each")
	fs.StringVar(&o.source, "source", "", "comma-separated local `IPs` to dial from, round robin (e.g. 127.0.0.1,127.0.0.2: about 28k connections per IP); empty: any")
	fs.StringVar(&o.firmware, "firmware", "", "behave as this `firmware`: "+strings.Join(sim.Firmwares(), ", ")+
		"\n(cgminer also stands for bmminer, btminer and Avalon; esp-miner is Bitaxe's; braiins is Braiins OS);\nempty: stratumsim's own miners")
	fs.StringVar(&o.user, "user", sim.DefaultUser, "worker name `prefix`: miners authorize as prefix.0, prefix.1, …")
	fs.StringVar(&o.password, "password", "x", "mining.authorize `password`")
	fs.Float64Var(&o.rate, "rate", 0, "at most `n` shares per second per miner; 0: every share found (mind the CPU)")
	fs.BoolVar(&o.idle, "idle", false, "connect, subscribe, authorize, then only read")
	fs.BoolVar(&o.rolling, "version-rolling", false, "negotiate version rolling (mask 1fffe000) and roll the version bits")
	fs.BoolVar(&o.enSub, "extranonce-subscribe", false, "send mining.extranonce.subscribe")
	fs.Float64Var(&o.suggest, "suggest-diff", 0, "send mining.suggest_difficulty with this `difficulty`; 0: don't")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long; 0: run until SIGINT/SIGTERM")
	fs.DurationVar(&o.report, "report", time.Second, "print a status line every `interval`; 0: none")
	fs.DurationVar(&o.ramp, "ramp", 0, "spread the first connects over this long")
	fs.DurationVar(&o.warmup, "warmup", 0, "leave answers in the first `duration` out of the latency figures (connect storms skew them)")
	fs.DurationVar(&o.retry, "retry", sim.DefaultRetryDelay, "pause before redialling after a disconnect (±50%)")
	fs.DurationVar(&o.handshake, "handshake-timeout", sim.DefaultHandshakeTimeout, "disconnect when subscribe+authorize take longer")
	fs.DurationVar(&o.grace, "close-grace", sim.DefaultCloseGrace, "at the end, wait this long for answers to shares in flight")
	fs.StringVar(&o.ledger, "ledger", "", "write one JSON line per submit, once answered or lost, to `file`")
	fs.BoolVar(&o.jsonOut, "json", false, "print the final summary as JSON")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log `level` (debug, info, warn, error)")
	return fs
}

func runMiners(ctx context.Context, args []string) error {
	var o minerOptions
	fs := minerFlags(&o)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("miners: unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	firmware, err := sim.ParseFirmware(o.firmware)
	if err != nil {
		return fmt.Errorf("miners: -firmware: %w", err)
	}
	ledger, closeLedger, err := ledgerFile(o.ledger)
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	f, err := sim.StartFleet(context.Background(), sim.FleetConfig{
		Addr:                o.connect,
		Miners:              o.n,
		SourceAddrs:         splitList(o.source),
		User:                o.user,
		Password:            o.password,
		VersionRolling:      o.rolling,
		ExtranonceSubscribe: o.enSub,
		SuggestDifficulty:   o.suggest,
		MaxSharesPerSecond:  o.rate,
		Idle:                o.idle,
		RampUp:              o.ramp,
		RetryDelay:          o.retry,
		HandshakeTimeout:    o.handshake,
		CloseGrace:          o.grace,
		Warmup:              o.warmup,
		Ledger:              ledger,
		Log:                 log,
		Firmware:            firmware,
	})
	if err != nil {
		closeLedger()
		return err
	}
	report(ctx, f, o.report)
	err = f.Close() // the fleet's own context is not ctx: Close drains answers first
	s := f.Stats()
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
	} else {
		printSummary(s)
	}
	return errors.Join(err, closeLedger())
}

// report prints a status line every interval until ctx is done, with the
// accepted rate over the last interval.
func report(ctx context.Context, f *sim.Fleet, every time.Duration) {
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	prev := f.Stats()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := f.Stats()
		rate := float64(s.Accepted-prev.Accepted) / (s.Elapsed - prev.Elapsed).Seconds()
		fmt.Printf("%s | last %s: %.1f accepted/s\n", s, every, rate)
		prev = s
	}
}

func printSummary(s sim.FleetStats) {
	fmt.Printf("summary after %s, %d miners\n", s.Elapsed.Round(time.Millisecond), s.Miners)
	fmt.Printf("  connections  up=%d ready=%d dials=%d dial_errors=%d disconnects=%v reconnects=%d\n",
		s.Up, s.Ready, s.Dials, s.DialErrors, s.Disconnects, s.Reconnects)
	fmt.Printf("  shares       submits=%d accepted=%d rejected=%d %v duplicates=%d lost=%d pending=%d unsubmitted=%v\n",
		s.Submits, s.Accepted, s.RejectedTotal(), s.Rejected, s.Duplicates, s.Lost, s.Pending, s.Unsubmitted)
	fmt.Printf("  rate         %.1f accepted shares/s, accepted difficulty %.6g\n", s.SharesPerSecond, s.AcceptedDifficulty)
	fmt.Printf("  work         %.6g hashes submitted, %.6g accepted\n", s.Work, s.AcceptedWork)
	fmt.Printf("  latency      %s (%d answers)\n", s.Latency, s.Latency.Count)
	fmt.Printf("  jobs=%d clean=%d set_difficulty=%d refused=%d malformed=%d\n", s.Jobs, s.CleanJobs, s.Difficulties, s.Refused, s.Malformed)
}
