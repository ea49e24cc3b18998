package sim

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// echoServer answers every byte it reads with the same byte.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func startTestLink(t *testing.T, cfg LinkConfig) *Link {
	t.Helper()
	l, err := StartLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func dialLink(t *testing.T, l *Link) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes b and reads it back, within 10 s.
func roundTrip(t *testing.T, c net.Conn, b []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(b))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("echo changed the bytes")
	}
	return time.Since(start)
}

// TestLinkLatencyKeepsOrder: under heavy jitter every byte arrives, in
// order, never sooner than the latency less the jitter each way.
func TestLinkLatencyKeepsOrder(t *testing.T) {
	t.Parallel()
	l := startTestLink(t, LinkConfig{Target: echoServer(t), Latency: 30 * time.Millisecond, Jitter: 25 * time.Millisecond, Seed: 7})
	c := dialLink(t, l)
	var all []byte
	for i := range 50 {
		msg := []byte{byte(i), byte(i >> 8), '\n'}
		all = append(all, msg...)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(all))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("bytes out of order or changed:\n got %v\nwant %v", got, all)
	}
	if rtt := roundTrip(t, c, []byte("ping\n")); rtt < 2*(30-25)*time.Millisecond {
		t.Errorf("round trip %v, below twice latency-jitter", rtt)
	}
	// The link counts a chunk once its write returned, which can be just
	// after the reader has it.
	want := uint64(len(all) + 5)
	if !testkit.Poll(2*time.Second, func() bool { st := l.Stats(); return st.BytesUp == want && st.BytesDown == want }) {
		t.Errorf("stats %+v, want %d bytes each way", l.Stats(), want)
	}
	if st := l.Stats(); st.Conns != 1 {
		t.Errorf("stats %+v, want 1 connection", st)
	}
}

// TestLinkStallDeliversAfter: what is sent during a stall arrives after
// it, nothing lost.
func TestLinkStallDeliversAfter(t *testing.T) {
	t.Parallel()
	l := startTestLink(t, LinkConfig{Target: echoServer(t)})
	c := dialLink(t, l)
	roundTrip(t, c, []byte("warm\n"))
	const stall = 300 * time.Millisecond
	l.Stall(stall)
	if rtt := roundTrip(t, c, []byte("during the stall\n")); rtt < stall-20*time.Millisecond {
		t.Errorf("answer after %v, inside a %v stall", rtt, stall)
	}
	if st := l.Stats(); st.Stalls != 1 {
		t.Errorf("stalls %d", st.Stalls)
	}
}

// TestLinkBandwidthCap: 64 KiB at 256 KiB/s each way takes at least a
// quarter of a second to come back.
func TestLinkBandwidthCap(t *testing.T) {
	t.Parallel()
	l := startTestLink(t, LinkConfig{Target: echoServer(t), BytesPerSecond: 256 << 10})
	c := dialLink(t, l)
	b := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	if rtt := roundTrip(t, c, b); rtt < 240*time.Millisecond {
		t.Errorf("64 KiB back in %v through 256 KiB/s", rtt)
	}
}

// TestLinkSilence: a silent link passes nothing and keeps the connection
// open; restored, it delivers what waited. Silenced with a close-after, it
// closes its connections.
func TestLinkSilence(t *testing.T) {
	t.Parallel()
	l := startTestLink(t, LinkConfig{Target: echoServer(t)})
	c := dialLink(t, l)
	roundTrip(t, c, []byte("before\n"))
	l.Silence(0)
	if _, err := c.Write([]byte("into the dark\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); n != 0 || !isTimeout(err) {
		t.Fatalf("read %d bytes, %v through a silent link", n, err)
	}
	l.Restore()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("into the dark\n"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "into the dark\n" {
		t.Fatalf("after restore: %q %v", got, err)
	}

	// A connection made while silent reaches the server only once restored.
	l.Silence(0)
	c2 := dialLink(t, l)
	if _, err := c2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := c2.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a connection made while silent was served")
	}
	l.Restore()
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatalf("after restore: %v", err)
	}

	l.Silence(50 * time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read %v: want the connection closed by the silent link", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
