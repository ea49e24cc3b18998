package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"switchyard/config"
)

// check validates a config file and prints every problem, one a line, each
// naming its key and line.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate")
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
			for _, p := range ce.Problems {
				fmt.Fprintln(stdout, p.Error())
			}
			fmt.Fprintf(stdout, "%s: %d problem(s)\n", *path, len(ce.Problems))
		} else {
			fmt.Fprintln(stdout, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d pools: ", *path, len(cfg.Pools))
	for i, p := range cfg.Pools {
		if i > 0 {
			fmt.Fprint(stdout, ", ")
		}
		fmt.Fprint(stdout, p.Name)
	}
	fmt.Fprintln(stdout, ")")
	return 0
}
