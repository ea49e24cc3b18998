package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestDemoPrintsStatusPage: the demo says where its status page is, runs
// for -duration, and reports the miners' and the pools' lost shares apart.
func TestDemoPrintsStatusPage(t *testing.T) {
	var out, errw bytes.Buffer
	if code := run([]string{"demo", "-duration", "1500ms", "-miners", "3"}, &out, &errw); code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out.String(), errw.String())
	}
	s := out.String()
	if !regexp.MustCompile(`(?m)^status page: http://127\.0\.0\.1:\d+/ `).MatchString(s) {
		t.Errorf("no status page URL:\n%s", s)
	}
	for _, want := range []string{"lost by the miners", "lost at the pools"} {
		if !strings.Contains(s, want) {
			t.Errorf("final lines lack %q:\n%s", want, s)
		}
	}
	if code := run([]string{"demo", "-duration", "-1s"}, &out, &errw); code != 2 {
		t.Errorf("negative -duration: exit %d, want 2", code)
	}
}
