package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEConfigs: operators copy the README's TOML blocks as they are,
// so each must load without a problem.
func TestREADMEConfigs(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := 0
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```toml" {
			continue
		}
		start := i + 1
		var block []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			block = append(block, lines[i])
		}
		found++
		name := "README.md block at line " + strconv.Itoa(start)
		if _, err := Parse([]byte(strings.Join(block, "\n")), name); err != nil {
			t.Error(err) // names the block and the line
		}
	}
	if found == 0 {
		t.Fatal("README.md has no ```toml block; this test looks for the blackout drill's config")
	}
}
