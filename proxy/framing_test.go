package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestSplitLinesKeepTheirStart: a miner's line that arrives over several
// reads (a TCP segment ending mid-line) is handled whole, however it is
// cut: the bytes of a partial line stay buffered until its newline.
func TestSplitLinesKeepTheirStart(t *testing.T) {
	s := New(Options{Listen: "127.0.0.1:0", Log: zerolog.Nop()}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr, err := s.Ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []int{1 << 20, 50, 7, 1} {
		_, r := dialProxied(t, addr, []byte(subscribeLine), step)
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, `"result":[[`) {
			t.Errorf("subscribe sent %d bytes at a time: answer %q, %v", step, line, err)
		}
	}
}
