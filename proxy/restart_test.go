package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestRestartBindsAtOnce: miners the old server closed leave TIME_WAIT
// sockets on the listening port; a new server must still bind it.
func TestRestartBindsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for round := range 2 {
		s := New(Options{Listen: addr, Log: zerolog.Nop()}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		if _, err := s.Ready(ctx); err != nil {
			cancel()
			t.Fatalf("round %d: %v", round, err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for s.Miners() == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		_ = s.Stop(ctx) // the server closes first: TIME_WAIT on its side
		<-done
		c.Close()
		cancel()
	}
}
