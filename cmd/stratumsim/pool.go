package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"switchyard/sim"
)

type poolOptions struct {
	listen, control, ledger, users, mask, logLevel string
	profile, handshake                             string
	diff, networkDiff                              float64
	en1, en2, branch, cleanEvery                   int
	jobInterval, report, ping                      time.Duration
	ntimeAhead                                     uint
	vardiff                                        bool
}

func poolFlags(o *poolOptions) *flag.FlagSet {
	fs := newFlagSet("pool", "Runs a simulated pool that behaves like a real one (-profile): its handshake order,\n"+
		"extranonce sizes, vardiff, difficulty-change rule, reject answers and what it credits.\n"+
		"It prints its counters on exit (SIGINT/SIGTERM), logs every fault change, and serves\n"+
		"the fault control API on -control.")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:3334", "`address` to accept miners (or switchyard) on")
	fs.StringVar(&o.profile, "profile", sim.ProfileCkpool, "real `pool` to behave like: "+strings.Join(sim.Profiles(), ", ")+"; -profile= for stratumsim's own (fixed difficulty, [code,msg,null] rejects)")
	fs.StringVar(&o.handshake, "handshake", "profile", "`order` of the first answers and notifications: profile (the pool's own), after-authorize, after-subscribe, notify-first (notify, then set_difficulty after the authorize answer)")
	fs.BoolVar(&o.vardiff, "vardiff", true, "let the profile retarget each connection's difficulty (ckpool: 72 shares or 240 s, ~0.3 shares/s; public-pool: every 60 s; miningcore: 15 s a share); false pins -diff")
	fs.StringVar(&o.control, "control", "", "`address` of the HTTP control API (GET/POST /fault, GET /stats, POST /job, POST /reconnect, POST /difficulty, POST /resend); keep it on loopback; empty: none")
	fs.Float64Var(&o.diff, "diff", sim.DefaultDifficulty, "starting share `difficulty`; below 1 is fine (a share costs about 2^32·diff hashes: 1e-7 ≈ 430); 0: the profile's (ckpool 42, public-pool 16384)")
	fs.Float64Var(&o.networkDiff, "network-diff", 0, "network `difficulty`: shares meeting it are block candidates (counted, stale ones too where the pool submits them); 0: never")
	fs.DurationVar(&o.ping, "ping", 0, "send mining.ping to every connection this often and count the answers; 0: never (none of the profiles does)")
	fs.IntVar(&o.en1, "en1", 0, "extranonce1 size in `bytes` (1..16), unique per connection; 0: the profile's (ckpool 4, public-pool 4, miningcore 4, nicehash 5, stratumsim 4)")
	fs.IntVar(&o.en2, "en2", 0, "extranonce2 size in `bytes` (1..16); 0: the profile's (ckpool 8, public-pool 4, miningcore 4, nicehash 3, stratumsim 8)")
	fs.DurationVar(&o.jobInterval, "job-interval", sim.DefaultJobInterval, "time between jobs")
	fs.IntVar(&o.cleanEvery, "clean-every", sim.DefaultCleanEvery, "every `n`-th job is a new block (clean_jobs=true)")
	fs.IntVar(&o.branch, "branch", sim.DefaultBranchDepth, "merkle branch `length` of every job (0..32)")
	fs.StringVar(&o.mask, "mask", "1fffe000", "version-rolling `mask` (hex) the pool allows; miners get its intersection with theirs")
	fs.StringVar(&o.users, "users", "", "comma-separated `users` mining.authorize accepts, alone or as user.worker (miners -user u authorize as u.0, u.1, …); empty: anyone")
	fs.UintVar(&o.ntimeAhead, "ntime-ahead", 0, "`seconds` a share's ntime may run ahead of its job; 0: 7000")
	fs.StringVar(&o.ledger, "ledger", "", "write one JSON line per submit to `file`")
	fs.DurationVar(&o.report, "report", 0, "print the counters every `interval`; 0: only on exit")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level` (debug, info, warn, error)")
	return fs
}

func runPool(ctx context.Context, args []string) error {
	var o poolOptions
	fs := poolFlags(&o)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("pool: unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	mask, err := strconv.ParseUint(o.mask, 16, 32)
	if err != nil {
		return fmt.Errorf("-mask: %w", err)
	}
	profile, err := sim.ParseProfile(o.profile)
	if err != nil {
		return fmt.Errorf("-profile: %w", err)
	}
	handshake, err := sim.ParseHandshake(o.handshake)
	if err != nil {
		return fmt.Errorf("-handshake: %w", err)
	}
	branch := o.branch
	if branch == 0 {
		branch = -1 // the flag's 0 means none; PoolConfig's 0 means the default
	}
	ledger, closeLedger, err := ledgerFile(o.ledger)
	if err != nil {
		return err
	}
	p, err := sim.StartPool(sim.PoolConfig{
		Addr:              o.listen,
		Profile:           profile,
		Handshake:         handshake,
		Vardiff:           sim.Vardiff{Off: !o.vardiff},
		PingInterval:      o.ping,
		Extranonce1Size:   o.en1,
		Extranonce2Size:   o.en2,
		Difficulty:        o.diff,
		NetworkDifficulty: o.networkDiff,
		VersionMask:       uint32(mask),
		BranchDepth:       branch,
		JobInterval:       o.jobInterval,
		CleanEvery:        o.cleanEvery,
		NTimeMaxAhead:     uint32(o.ntimeAhead),
		Users:             splitList(o.users),
		Ledger:            ledger,
		Log:               log,
	})
	if err != nil {
		closeLedger()
		return err
	}
	var srv *http.Server
	if o.control != "" {
		ln, err := net.Listen("tcp", o.control)
		if err != nil {
			p.Close()
			closeLedger()
			return fmt.Errorf("-control: %w", err)
		}
		srv = &http.Server{Handler: sim.ControlHandler(p), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		log.Info().Str("listen", ln.Addr().String()).Msg("control API")
	}
	name := profile
	if name == "" {
		name = "stratumsim"
	}
	fmt.Printf("pool (%s) listening on %s\n", name, p.Addr())
	if o.report > 0 {
		t := time.NewTicker(o.report)
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				fmt.Println(p.Stats())
			}
		}
	} else {
		<-ctx.Done()
	}
	if srv != nil {
		srv.Close()
	}
	err = p.Close()
	fmt.Println("pool final:", p.Stats())
	return errors.Join(err, closeLedger())
}
