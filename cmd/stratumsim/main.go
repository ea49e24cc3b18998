// Command stratumsim runs a simulated Stratum v1 pool with switchable
// faults, or a fleet of simulated miners that really hash, for tests,
// benchmarks and outage fire drills. See package switchyard/sim.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

const usage = `stratumsim simulates both ends of a Stratum v1 mining setup.

Usage:
  stratumsim pool   [flags]   a pool: realistic jobs, every share validated, faults on demand
  stratumsim miners [flags]   a fleet of miners that hash, submit and account for every share
  stratumsim soak -switchyard PATH [flags]
                              switchyard between pools failing at random and a fleet:
                              checks every share's account, connections and memory
  stratumsim credit -switchyard PATH [flags]
                              switchyard between pools of a real pool's profile and a fleet
                              of a real firmware, through start, failover and failback:
                              the work the pools credited against the work the miners did
  stratumsim split -switchyard PATH [flags]
                              a route's weighted split (A 70, B 30, C backup) through steady, A dark, A back

Run "stratumsim pool -h", "stratumsim miners -h", "stratumsim soak -h" or "stratumsim credit -h"
for the flags of each.

Fire drill: start a pool with -control, point switchyard (or miners) at it, then
  curl -X POST '127.0.0.1:3390/fault?mode=blackhole'      freeze it
  curl -X POST '127.0.0.1:3390/fault?mode=close'          refuse and drop connections
  curl -X POST '127.0.0.1:3390/fault?mode=flap&period=5s' alternate close and normal
  curl -X POST '127.0.0.1:3390/fault?mode=slow&delay=2s'  delay everything it sends
  curl -X POST '127.0.0.1:3390/fault?mode=reject'         reject every share
  curl -X POST '127.0.0.1:3390/fault?mode=normal'         back to normal
  curl 127.0.0.1:3390/fault ; curl 127.0.0.1:3390/stats
  curl -X POST '127.0.0.1:3390/job?clean=true'            a new block now
  curl -X POST '127.0.0.1:3390/reconnect?host=127.0.0.1&port=3335&wait=0'
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "pool":
		err = runPool(ctx, os.Args[2:])
	case "miners":
		err = runMiners(ctx, os.Args[2:])
	case "soak":
		err = runSoak(ctx, os.Args[2:])
	case "credit":
		err = runCredit(ctx, os.Args[2:])
	case "split":
		err = runSplit(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		printFlags(os.Stdout, "pool", poolFlags(new(poolOptions)))
		printFlags(os.Stdout, "miners", minerFlags(new(minerOptions)))
		printFlags(os.Stdout, "soak", soakFlags(new(soakOptions)))
		printFlags(os.Stdout, "credit", creditFlags(new(creditOptions)))
		return
	default:
		fmt.Fprintf(os.Stderr, "stratumsim: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stratumsim:", err)
		os.Exit(1)
	}
}

func printFlags(w io.Writer, name string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "\nstratumsim %s flags:\n", name)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// newFlagSet returns a flag set whose -h prints a one-line summary, then
// the flags.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("stratumsim "+name, flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: stratumsim %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("-log-level: %w", err)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano // cmd owns zerolog's globals
	fi, _ := os.Stderr.Stat()
	tty := fi != nil && fi.Mode()&os.ModeCharDevice != 0
	out := zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000", NoColor: !tty}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// ledgerFile opens path for a ledger; close flushes it. An empty path
// gives a nil writer and a no-op close.
func ledgerFile(path string) (io.Writer, func() error, error) {
	if path == "" {
		return nil, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("-ledger: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	return w, func() error {
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
