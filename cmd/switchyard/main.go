// Command switchyard is a Stratum v1 mining proxy with pool failover.
//
//	switchyard -config switchyard.toml     run the proxy (also: switchyard run -config …)
//	switchyard check -config FILE          validate a config, print every problem
//	switchyard demo [-duration 60s]        simulated pools and miners, with a blackout
//	switchyard version                     (also: switchyard --version)
//	switchyard help                        list the commands (also: -h, --help)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"switchyard/app"
	"switchyard/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `switchyard: a Stratum v1 mining proxy with pool failover

Usage:
  switchyard [run] -config FILE   run the proxy
  switchyard check -config FILE   validate a config file and print every problem
  switchyard demo [flags]         run a self-contained demo: two simulated pools,
                                  a simulated miner fleet, a blackout and a failback
  switchyard version              print the version (also: --version)
  switchyard help                 this list (also: -h, --help)

Run "switchyard <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			cmd = "help"
		case "-version", "--version":
			cmd = "version"
		}
	}
	switch cmd {
	case "run":
		return runProxy(args, stderr)
	case "check":
		return check(args, stdout, stderr)
	case "demo":
		return demo(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "switchyard", version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func runProxy(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (TOML); see config.example.toml")
	hf := addHandoverFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "\nswitchyard: -config is required (or try: switchyard demo)")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	raiseFileLimit(log)
	if addr := os.Getenv(pprofEnv); addr != "" {
		if err := servePprof(addr, log); err != nil {
			log.Error().Err(err).Msg("profiler not started")
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, handedOver, err := startApp(ctx, hf, *path, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start failed")
		return 1
	}
	log.Info().Str("version", version).Str("miners", a.MinerAddr()).Int("pools", len(cfg.Pools)).Msg("switchyard running")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-handedOver:
			running = false
		case <-hup:
			reload(a, *path, log)
		}
	}
	log.Info().Msg("shutting down: closing miners, draining forwarded shares")
	err = a.Stop()
	t := a.Totals()
	// Miners' side (every share a miner sent: accepted, rejected, or lost
	// because no pool could take it), then the pools' side (every forwarded
	// share: the pool's verdict, or lost waiting for it).
	log.Info().Float64("accepted", t.Accepted).Float64("rejected", t.Rejected).
		Float64("lost", t.Lost).Interface("lost_by", t.MinerLostBy).
		Float64("forwarded", t.Forwarded).Float64("pool_accepted", t.PoolAccepted).Float64("pool_rejected", t.PoolRejected).
		Float64("pool_lost", t.PoolLost).Interface("pool_lost_by", t.PoolLostBy).Msg("final share accounting")
	if err != nil {
		log.Error().Err(err).Msg("stopped with error")
		return 1
	}
	return 0
}

// reload re-reads the config on SIGHUP. An invalid file is refused and the
// running configuration stays.
func reload(a *app.App, path string, log zerolog.Logger) {
	cfg, err := config.Load(path)
	if err != nil {
		log.Error().Err(err).Str("config", path).Msg("reload refused: keeping the running configuration")
		return
	}
	restart, err := a.Reload(cfg)
	if err != nil {
		log.Error().Err(err).Msg("reload refused: keeping the running configuration")
		return
	}
	setLevel(cfg.Log)
	names := make([]string, len(cfg.Pools))
	for i, p := range cfg.Pools {
		names[i] = p.Name
	}
	log.Info().Strs("pools", names).Msg("configuration reloaded")
	if len(restart) > 0 {
		log.Warn().Strs("need_restart", restart).Msg("reload ignored these changed keys: they take effect at the next restart")
	}
}

// consoleTimeFormat is the time of console log lines: the date, and
// milliseconds to line events up across a failover.
const consoleTimeFormat = "2006-01-02 15:04:05.000"

// newLogger builds the process logger from [log]. The level is zerolog's
// global level, so that SIGHUP can change it.
func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	setLevel(c)
	if c.Format == config.LogFormatJSON {
		return zerolog.New(w).With().Timestamp().Logger()
	}
	noColor := true
	if f, ok := w.(*os.File); ok {
		noColor = !isatty.IsTerminal(f.Fd())
	}
	cw := zerolog.ConsoleWriter{Out: w, TimeFormat: consoleTimeFormat, NoColor: noColor}
	return zerolog.New(cw).With().Timestamp().Logger()
}

func setLevel(c config.Log) {
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		lvl = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(lvl)
}

// raiseFileLimit lifts the soft open-files limit to the hard limit: every
// miner is a file descriptor.
func raiseFileLimit(log zerolog.Logger) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn().Err(err).Msg("cannot read RLIMIT_NOFILE")
		return
	}
	old := rl.Cur
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn().Err(err).Uint64("soft", old).Uint64("hard", rl.Max).Msg("cannot raise RLIMIT_NOFILE")
			return
		}
	}
	log.Info().Uint64("was", old).Uint64("now", rl.Cur).Uint64("hard", rl.Max).
		Msg("open files limit (each miner uses one)")
}
