package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/config"
)

// check validates a config file and prints every problem, one a line, each
// naming its key and line: first what the file says, then what cannot work
// on this host (an interface it lacks, a bind address not its own). It
// prints each pool with its network path, each route with its listeners,
// worker patterns and ranked pools (a split's weights as percentages), and
// the config's warnings. With -probe it then dials every pool as switchyard
// would (see probe). It exits 1 on any problem or any pool that fails its
// probe; warnings alone leave it 0.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate")
	doProbe := fs.Bool("probe", false, "also dial every pool through its own network path (bind, interface, SOCKS5, TLS), subscribe and authorize, and report what each offers")
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
		ls := cfg.Listeners()
		verb, it := "takes", "it"
		if len(ls) > 1 {
			verb, it = "take", "them"
		}
		fmt.Fprintf(stdout, "miners: %s %s PROXY protocol (v1 or v2) connections only: point the load balancer at %s, not the miners\n", strings.Join(ls, ", "), verb, it)
	}
	if !*doProbe {
		for _, p := range cfg.Pools {
			fmt.Fprintf(stdout, "  %s: %s, path: %s\n", p.Name, p.URL, netPath(p))
		}
	}
	printRoutes(stdout, cfg)
	if ws := cfg.Warnings(); len(ws) > 0 {
		for _, w := range ws {
			fmt.Fprintln(stdout, "warning:", w.Error())
		}
		fmt.Fprintf(stdout, "%s: %d warning(s)\n", *path, len(ws))
	}
	if !*doProbe {
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

// printRoutes writes each route: a heading with its name, listeners,
// worker patterns and worker mode, then its pools ranked, one rank a line.
// The pools of a tier with weights share a line, each with its share of
// the work as a percentage; the pools of a tier without weights are tried
// in order, a line each.
//
//	route alpha: listen 0.0.0.0:3334; workers any; worker_mode aggregate
//	  1. alpha-main 70%, alpha-second 30% (split, priority 0)
//	  2. farm-backup (backup)
func printRoutes(w io.Writer, cfg *config.Config) {
	specs := cfg.RouteSpecs()
	for _, s := range specs {
		listen := strings.Join(s.Listen, ", ")
		if s.Index < 0 || len(cfg.Routes[s.Index].Listen) == 0 {
			listen += " (server.listen)"
		}
		workers := "any"
		if len(s.Workers) > 0 {
			q := make([]string, len(s.Workers))
			for i, p := range s.Workers {
				q[i] = strconv.Quote(p)
			}
			workers = strings.Join(q, ", ")
		} else if sharesWithPatterns(specs, s) {
			workers = "any other"
		}
		fmt.Fprintf(w, "route %s: listen %s; workers %s; worker_mode %s\n", s.Name, listen, workers, s.WorkerMode)
		rank := 0
		tiers := s.Tiers()
		for t, tier := range tiers {
			backup := t >= len(tiers)-s.Backups
			switch {
			case backup:
				rank++
				fmt.Fprintf(w, "  %d. %s (backup)\n", rank, tier[0].Name)
			case tier[0].Weight > 0 && len(tier) > 1:
				sum := 0
				for _, p := range tier {
					sum += p.Weight
				}
				parts := make([]string, len(tier))
				for i, p := range tier {
					parts[i] = p.Name + " " + percent(p.Weight, sum)
				}
				rank++
				fmt.Fprintf(w, "  %d. %s (split, priority %d)\n", rank, strings.Join(parts, ", "), tier[0].Priority)
			default:
				for _, p := range tier {
					rank++
					fmt.Fprintf(w, "  %d. %s\n", rank, p.Name)
				}
			}
		}
	}
}

// sharesWithPatterns reports whether a route with worker patterns shares a
// listener with s.
func sharesWithPatterns(specs []config.RouteSpec, s config.RouteSpec) bool {
	for _, o := range specs {
		if len(o.Workers) == 0 {
			continue
		}
		for _, l := range o.Listen {
			if slices.Contains(s.Listen, l) {
				return true
			}
		}
	}
	return false
}

// percent formats part/whole as a percentage with at most one decimal.
func percent(part, whole int) string {
	return strconv.FormatFloat(math.Round(float64(part)*1000/float64(whole))/10, 'f', -1, 64) + "%"
}
