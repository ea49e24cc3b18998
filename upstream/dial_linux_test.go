package upstream

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blackhole returns a loopback address whose connects hang: a listener
// with backlog 0 that never accepts, its queue already full. Linux drops
// SYNs to a full accept queue, exactly like a dark route.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a loopback accept queue on this kernel: no deterministic blackhole")
	return ""
}

func TestDialTimeoutBlackhole(t *testing.T) {
	t.Parallel()
	addr := blackhole(t)
	o := testOptions(t)
	o.DialTimeout = 300 * time.Millisecond
	_, rec, _ := startSession(t, testPool("stratum+tcp://"+addr), o)
	conn := rec.waitState(StateConnecting)
	down := rec.nextState()
	if down.st != StateDown || down.reason != "dial: i/o timeout" {
		t.Fatalf("got %v %q, want down dial: i/o timeout", down.st, down.reason)
	}
	if el := down.at.Sub(conn.at); el < o.DialTimeout || el > o.DialTimeout+300*time.Millisecond {
		t.Errorf("dial gave up after %v, want about %v", el, o.DialTimeout)
	}
}

func TestInterface(t *testing.T) {
	t.Parallel()
	t.Run("no such device", func(t *testing.T) {
		t.Parallel()
		p := testPool("stratum+tcp://127.0.0.1:1")
		p.Interface = "nosuchdev0"
		_, rec, _ := startSession(t, p, testOptions(t))
		if ev := rec.waitState(StateDown); !strings.Contains(ev.reason, "interface nosuchdev0") {
			t.Errorf("down %q", ev.reason)
		}
	})
	t.Run("loopback", func(t *testing.T) {
		t.Parallel()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.BindToDevice(fd, "lo")
		unix.Close(fd)
		if err != nil {
			t.Skipf("SO_BINDTODEVICE not permitted here (%v)", err)
		}
		fp := newFakePool(t)
		p := testPool(fp.url())
		p.Interface = "lo"
		_, rec, _ := startSession(t, p, testOptions(t))
		goLive(t, fp, rec, hs{})
	})
}

func TestSocketOptions(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	o := testOptions(t)
	o.Keepalive = 7 * time.Second
	o.UserTimeout = 4500 * time.Millisecond
	s := NewSession(testPool(fp.url()), 0, func() Options { setDefaults(&o); return o }(), newRecorder(t))
	raw, _, err := s.dial(context.Background(), s.ep.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rc, err := raw.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	get := func(level, opt int) int {
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	checks := []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 7},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 4500},
	}
	for _, c := range checks {
		if got := get(c.level, c.opt); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
}
