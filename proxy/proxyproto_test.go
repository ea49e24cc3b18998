package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"switchyard/metrics"
)

// v2Header builds a PROXY v2 header: cmd (0 LOCAL, 1 PROXY), fam and
// transport bytes, then addresses and TLVs as given.
func v2Header(verCmd, famProto byte, body ...[]byte) []byte {
	var payload []byte
	for _, b := range body {
		payload = append(payload, b...)
	}
	h := append([]byte(nil), proxyV2Sig...)
	h = append(h, verCmd, famProto)
	h = binary.BigEndian.AppendUint16(h, uint16(len(payload)))
	return append(h, payload...)
}

// v2Inet is the v2 body for src → dst over TCP (IPv4 or IPv6).
func v2Inet(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := append(s.Addr().AsSlice(), d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

func tlv(typ byte, v string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{typ}, uint16(len(v)))
	return append(b, v...)
}

// TestParseProxyHeader: valid v1 and v2 headers give the client's address
// and exactly their own length (the miner's first line may follow in the
// same read); every proper prefix of one is "not complete yet"; broken
// headers and connections without one are refused with the right error.
func TestParseProxyHeader(t *testing.T) {
	v4 := v2Header(0x21, 0x11, v2Inet("192.0.2.7:40001", "10.0.0.1:3333"))
	tests := []struct {
		name  string
		in    []byte
		src   string // "" for a local header
		local bool
		ver   int
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 40001 3333\r\n"), "192.0.2.7:40001", false, 1},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 3333\r\n"), "[2001:db8::7]:40001", false, 1},
		{"v1 tcp6 mapped v4", []byte("PROXY TCP6 ::ffff:192.0.2.7 ::ffff:10.0.0.1 1 2\r\n"), "192.0.2.7:1", false, 1},
		{"v1 ports at the bounds", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 0 65535\r\n"), "192.0.2.7:0", false, 1},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", true, 1},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), "", true, 1},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", false, 1},
		{"v2 tcp4", v4, "192.0.2.7:40001", false, 2},
		{"v2 tcp6", v2Header(0x21, 0x21, v2Inet("[2001:db8::7]:5", "[2001:db8::1]:3333")), "[2001:db8::7]:5", false, 2},
		{"v2 tcp4 with TLVs", v2Header(0x21, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2"), tlv(0x05, "unique-id"), tlv(0x04, "")), "192.0.2.7:1", false, 2},
		{"v2 local (health check)", v2Header(0x20, 0x00), "", true, 2},
		{"v2 local with addresses", v2Header(0x20, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2")), "", true, 2},
		{"v2 proxy unspec", v2Header(0x21, 0x00), "", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(append([]byte(nil), tt.in...), `{"id":1}`+"\n"...)
			h, n, err := parseProxyHeader(in)
			if err != nil || n != len(tt.in) {
				t.Fatalf("parse = n %d, %v; want n %d, nil", n, err, len(tt.in))
			}
			if h.version != tt.ver || h.local != tt.local {
				t.Errorf("version %d local %v; want %d %v", h.version, h.local, tt.ver, tt.local)
			}
			if !tt.local && h.src.String() != tt.src {
				t.Errorf("src %s, want %s", h.src, tt.src)
			}
			for k := range len(tt.in) {
				if _, n, err := parseProxyHeader(tt.in[:k]); n != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: n %d, %v; want incomplete", k, n, err)
				}
			}
		})
	}

	bad := []struct {
		name string
		in   []byte
		no   bool // errNoProxyHeader rather than a broken header
	}{
		{"stratum first", []byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n"), true},
		{"http", []byte("GET / HTTP/1.1\r\n"), true},
		{"lower case", []byte("proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n"), true},
		{"v1 no CR", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n"), false},
		{"v1 stray CR", []byte("PROXY TCP4 192.0.2.7\r 10.0.0.1"), false},
		{"v1 udp", []byte("PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n"), false},
		{"v1 missing port", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n"), false},
		{"v1 extra field", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n"), false},
		{"v1 double space", []byte("PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n"), false},
		{"v1 v6 in tcp4", []byte("PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n"), false},
		{"v1 v4 in tcp6", []byte("PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n"), false},
		{"v1 port too big", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n"), false},
		{"v1 leading zero", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n"), false},
		{"v1 signed port", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 +1 2\r\n"), false},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"), false},
		{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100)), false},
		{"v2 version 1", v2Header(0x11, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2")), false},
		{"v2 command 2", v2Header(0x22, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2")), false},
		{"v2 udp", v2Header(0x21, 0x12, v2Inet("192.0.2.7:1", "10.0.0.1:2")), false},
		{"v2 unix", v2Header(0x21, 0x31, make([]byte, 216)), false},
		{"v2 short for tcp4", v2Header(0x21, 0x11, make([]byte, 11)), false},
		{"v2 short for tcp6", v2Header(0x21, 0x21, v2Inet("192.0.2.7:1", "10.0.0.1:2")), false},
		{"v2 cut TLV", v2Header(0x21, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2"), []byte{5, 0}), false},
		{"v2 TLV too long", v2Header(0x21, 0x11, v2Inet("192.0.2.7:1", "10.0.0.1:2"), []byte{5, 0, 9, 'x'}), false},
		{"v2 over the limit", append(proxyV2Sig[:12:12], 0x21, 0x11, 0x10, 0x00), false},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := parseProxyHeader(tt.in)
			var pe *proxyHeaderError
			switch {
			case tt.no && !errors.Is(err, errNoProxyHeader):
				t.Fatalf("n %d, err %v; want errNoProxyHeader", n, err)
			case !tt.no && !errors.As(err, &pe):
				t.Fatalf("n %d, err %v; want a proxyHeaderError", n, err)
			}
		})
	}
}

// FuzzParseProxyHeader: no panic; a header is never longer than its input
// nor than the protocol allows; a valid non-local header names a client.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 10.0.0.1 40001 3333\r\n{}\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 3333\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(0x21, 0x11, v2Inet("192.0.2.7:40001", "10.0.0.1:3333"), tlv(1, "h2")))
	f.Add(v2Header(0x21, 0x21, v2Inet("[2001:db8::7]:5", "[2001:db8::1]:3333")))
	f.Add(v2Header(0x20, 0x00))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyHeader(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n %d", err, n)
			}
			return
		}
		if n > len(b) || n > proxyV2MaxLen || (h.version == 1 && n > proxyV1MaxLen) {
			t.Fatalf("n %d of %d bytes, version %d", n, len(b), h.version)
		}
		if n > 0 && !h.local && !h.src.IsValid() {
			t.Fatalf("header of %d bytes without a client address", n)
		}
	})
}

// startProxyServer runs a Server with PROXY protocol on and no upstream.
func startProxyServer(t *testing.T, opts Options) (*Server, *metrics.Metrics) {
	t.Helper()
	met := metrics.New(prometheus.NewRegistry())
	opts.Listen, opts.ProxyProtocol, opts.Log, opts.Metrics = "127.0.0.1:0", true, zerolog.Nop(), met
	s := New(opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if _, err := s.Ready(rctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return s, met
}

// subscribeLine is a miner's first line.
const subscribeLine = `{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1"]}` + "\n"

// dialProxied connects and writes what, in pieces of step bytes.
func dialProxied(t *testing.T, addr string, what []byte, step int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for len(what) > 0 {
		k := min(step, len(what))
		if _, err := c.Write(what[:k]); err != nil {
			t.Fatal(err)
		}
		what = what[k:]
		if len(what) > 0 {
			time.Sleep(time.Millisecond) // separate reads on the server
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// TestProxyProtocolServer: behind a balancer the miner's address comes from
// the PROXY header, whole or split over many reads, with its first
// Stratum line in the same read or later; MaxConnectionsPerIP counts the
// miners' addresses, not the balancer's; a connection without a valid
// header is closed and counted by reason.
func TestProxyProtocolServer(t *testing.T) {
	s, met := startProxyServer(t, Options{MaxConnectionsPerIP: 1})
	addr, _ := s.Ready(context.Background())

	hdrA := v2Header(0x21, 0x11, v2Inet("192.0.2.7:40001", "127.0.0.1:3333"))
	hdrB := []byte("PROXY TCP4 192.0.2.8 127.0.0.1 40002 3333\r\n")
	for _, c := range []struct {
		name string
		send []byte
		step int
	}{
		{"v2 and subscribe in one write", append(append([]byte(nil), hdrA...), subscribeLine...), 1 << 20},
		{"v1 a byte at a time", append(append([]byte(nil), hdrB...), subscribeLine...), 1},
	} {
		_, r := dialProxied(t, addr, c.send, c.step)
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, `"result"`) {
			t.Fatalf("%s: subscribe answer %q, %v", c.name, line, err)
		}
	}
	remotes := map[string]bool{}
	for _, row := range s.MinerRows() {
		remotes[row.Remote] = true
	}
	if !remotes["192.0.2.7:40001"] || !remotes["192.0.2.8:40002"] || len(remotes) != 2 {
		t.Fatalf("miner addresses %v, want the two from the headers", remotes)
	}

	// A second miner from 192.0.2.7 is over the per-IP limit of 1; both
	// miners share the balancer's address, which is not what counts.
	_, r := dialProxied(t, addr, append(v2Header(0x21, 0x11, v2Inet("192.0.2.7:40003", "127.0.0.1:3333")), subscribeLine...), 1<<20)
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("second miner from 192.0.2.7 answered %q; want closed", line)
	}

	for _, c := range []struct {
		send, reason string
	}{
		{subscribeLine, CloseNoProxyHeader.String()},
		{"PROXY TCP4 192.0.2.9 127.0.0.1 1 2 3\r\n" + subscribeLine, CloseBadProxyHeader.String()},
	} {
		_, r := dialProxied(t, addr, []byte(c.send), 1<<20)
		if line, err := r.ReadString('\n'); err == nil {
			t.Fatalf("%s: answered %q; want closed", c.reason, line)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && testutil.ToFloat64(met.ConnectionsClosed.WithLabelValues(CloseBadProxyHeader.String())) < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	for reason, want := range map[string]float64{CloseNoProxyHeader.String(): 1, CloseBadProxyHeader.String(): 1, limitPerIP: 1} {
		if got := testutil.ToFloat64(met.ConnectionsClosed.WithLabelValues(reason)); got != want {
			t.Errorf("connections closed for %s: %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(met.LimitHits.WithLabelValues(limitPerIP)); got != 1 {
		t.Errorf("per-IP limit hits %v, want 1", got)
	}
	if s.Miners() != 2 {
		t.Errorf("%d miners connected, want the 2 with valid headers", s.Miners())
	}
}
