package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"switchyard/config"
)

// check validates a config file and prints every problem, one a line, each
// naming its key and line: first what the file says, then what cannot work
// on this host (an interface it lacks, a bind address not its own). With
// -probe it then dials every pool as switchyard would (see probe). It
// exits 1 on any problem or any pool that fails its probe.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate")
	doProbe := fs.Bool("probe", false, "also dial every pool through its own route (bind, interface, SOCKS5, TLS), subscribe and authorize, and report what each offers")
	timeout := fs.Duration("timeout", defaultProbeTimeout, "with -probe: how long each pool has to connect, subscribe, authorize and send a job")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" && fs.NArg() == 1 {
		*path = fs.Arg(0)
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchyard check: -config FILE is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			printProblems(stdout, *path, ce.Problems)
		} else {
			fmt.Fprintln(stdout, err)
		}
		return 1
	}
	code := 0
	if ps := cfg.HostProblems(nil); len(ps) > 0 {
		printProblems(stdout, *path, ps)
		code = 1
	} else {
		fmt.Fprintf(stdout, "%s: ok (%d pools: ", *path, len(cfg.Pools))
		for i, p := range cfg.Pools {
			if i > 0 {
				fmt.Fprint(stdout, ", ")
			}
			fmt.Fprint(stdout, p.Name)
		}
		fmt.Fprintln(stdout, ")")
	}
	if cfg.Server.ProxyProtocol {
		fmt.Fprintf(stdout, "miners: %s takes PROXY protocol (v1 or v2) connections only: point the load balancer at it, not the miners\n", cfg.Server.Listen)
	}
	if !*doProbe {
		for _, p := range cfg.Pools {
			fmt.Fprintf(stdout, "  %s: %s, route: %s\n", p.Name, p.URL, route(p))
		}
		fmt.Fprintf(stdout, "pools not dialled: switchyard check -probe -config %s connects to each\n", *path)
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Second)
	defer cancel()
	if !printProbes(stdout, probeAll(ctx, cfg, *timeout), cfg.Server) {
		code = 1
	}
	return code
}

func printProblems(w io.Writer, path string, ps []config.Problem) {
	for _, p := range ps {
		fmt.Fprintln(w, p.Error())
	}
	fmt.Fprintf(w, "%s: %d problem(s)\n", path, len(ps))
}
