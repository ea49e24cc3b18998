package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"switchyard/config"
)

// TestHelpListsCommands: -h, --help and help print the command list on
// stdout and succeed; --version prints the version.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errw bytes.Buffer
			if code := run(args, &out, &errw); code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errw.String())
			}
			for _, cmd := range []string{"run", "check", "demo", "version", "help"} {
				if !regexp.MustCompile(`(?m)^\s+switchyard \[?` + cmd + `\b`).MatchString(out.String()) {
					t.Errorf("help does not list %q:\n%s", cmd, out.String())
				}
			}
		})
	}
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errw bytes.Buffer
			if code := run(args, &out, &errw); code != 0 || strings.TrimSpace(out.String()) != "switchyard "+version {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errw.String())
			}
		})
	}
	var out, errw bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errw); code != 2 || !strings.Contains(errw.String(), "switchyard check") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errw.String())
	}
}

// TestConsoleLogTime: console log lines start with the date and the time
// to the millisecond.
func TestConsoleLogTime(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(config.Log{Level: "info", Format: config.LogFormatConsole}, &buf)
	log.Info().Msg("hello")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INF hello`).MatchString(buf.String()) {
		t.Errorf("console line %q lacks date and milliseconds", buf.String())
	}
}
