package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
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

// TestListenInUseSaysSo: a port another process listens on is refused with
// the kernel's reason, not the error of a later setup step.
func TestListenInUseSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	s := New(Options{Listen: addr, Log: zerolog.Nop()}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	_, err = s.Ready(ctx)
	if err == nil {
		_ = s.Stop(ctx)
		t.Fatalf("Ready on %s, which is in use: no error", addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Ready error %q: want EADDRINUSE naming %s", err, addr)
	}
	if serr := <-done; serr == nil || serr.Error() != err.Error() {
		t.Fatalf("Serve returned %v, Ready %v: want the same error", serr, err)
	}
}
