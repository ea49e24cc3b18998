package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    endpoint
		wantErr bool
	}{
		{"stratum+tcp://pool.example.com:3333", endpoint{"pool.example.com", 3333, false}, false},
		{"stratum+ssl://pool.example.com:443", endpoint{"pool.example.com", 443, true}, false},
		{"stratum+tls://10.0.0.1:3334", endpoint{"10.0.0.1", 3334, true}, false},
		{"STRATUM+TCP://h:1", endpoint{"h", 1, false}, false},
		{"stratum+tcp://[::1]:3333", endpoint{"::1", 3333, false}, false},
		{"http://pool:3333", endpoint{}, true},
		{"stratum+tcp://pool", endpoint{}, true},
		{"stratum+tcp://:3333", endpoint{}, true},
		{"stratum+tcp://pool:0", endpoint{}, true},
		{"stratum+tcp://pool:70000", endpoint{}, true},
		{"pool:3333", endpoint{}, true},
		{"", endpoint{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseURL(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseURL(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
	if got := (endpoint{"::1", 3333, false}).addr(); got != "[::1]:3333" {
		t.Errorf("addr %s", got)
	}
}

func TestBadPoolSetupFailsEveryDial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pool Pool
		want string
	}{
		{"bad url", Pool{URL: "http://x:1"}, "scheme must be"},
		{"bad pin", Pool{URL: "stratum+ssl://127.0.0.1:1", TLSPinSHA256: "abcd"}, "tls pin: must be 64 hex"},
		{"missing ca file", Pool{URL: "stratum+ssl://127.0.0.1:1", TLSCAFile: "/nonexistent/ca.pem"}, "tls ca file"},
		{"bad bind", Pool{URL: "stratum+tcp://127.0.0.1:1", Bind: "eth0"}, "not an IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rec, _ := startSession(t, tt.pool, testOptions(t))
			down := rec.waitState(StateDown)
			if !strings.HasPrefix(down.reason, "dial: ") || !strings.Contains(down.reason, tt.want) {
				t.Errorf("down %q, want dial: …%s…", down.reason, tt.want)
			}
			rec.waitState(StateConnecting) // keeps trying, with backoff
		})
	}
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "stratum+tcp://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	_, rec, _ := startSession(t, testPool(url), testOptions(t))
	if ev := rec.waitState(StateDown); ev.reason != "dial: connection refused" {
		t.Errorf("down %q", ev.reason)
	}
}

func TestDialTimeoutCoversSOCKS5(t *testing.T) {
	t.Parallel()
	// A "proxy" that accepts and never answers the greeting.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := newClosers(t)
	cl.add(ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.add(c)
		}
	}()
	o := testOptions(t)
	o.DialTimeout = 300 * time.Millisecond
	p := testPool("stratum+tcp://127.0.0.1:3333")
	p.SOCKS5 = ln.Addr().String()
	_, rec, _ := startSession(t, p, o)
	conn := rec.waitState(StateConnecting)
	down := rec.nextState()
	if down.st != StateDown || down.reason != "dial: socks5: i/o timeout" {
		t.Fatalf("got %v %q", down.st, down.reason)
	}
	if el := down.at.Sub(conn.at); el < o.DialTimeout || el > o.DialTimeout+300*time.Millisecond {
		t.Errorf("gave up after %v, want about %v", el, o.DialTimeout)
	}
}

func TestBind(t *testing.T) {
	t.Parallel()
	fp := newFakePool(t)
	p := testPool(fp.url())
	p.Bind = "127.0.0.2" // all of 127/8 is loopback on Linux
	_, rec, _ := startSession(t, p, testOptions(t))
	pc := fp.accept()
	if got := pc.c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("pool sees the session from %s, want 127.0.0.2", got)
	}
	pc.handshake(hs{})
	rec.waitState(StateLive)
}

// ---- TLS ----

// selfSigned makes a self-signed CA certificate for 127.0.0.1.
func selfSigned(t *testing.T) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake pool"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cert, x := selfSigned(t)
	sum := sha256.Sum256(x.RawSubjectPublicKeyInfo)
	pin := hex.EncodeToString(sum[:])
	var colons []string
	for _, b := range sum {
		colons = append(colons, fmt.Sprintf("%02X", b))
	}
	wrong := sha256.Sum256([]byte("another key"))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		setup func(*Pool)
		down  string // "" = goes live
	}{
		{"default refuses self-signed", func(*Pool) {}, "certificate signed by unknown authority"},
		{"skip verify", func(p *Pool) { p.TLSSkipVerify = true }, ""},
		{"ca file", func(p *Pool) { p.TLSCAFile = caFile }, ""},
		{"pin", func(p *Pool) { p.TLSPinSHA256 = pin }, ""},
		{"pin with colons", func(p *Pool) { p.TLSPinSHA256 = strings.Join(colons, ":") }, ""},
		{"pin with skip verify", func(p *Pool) { p.TLSPinSHA256, p.TLSSkipVerify = pin, true }, ""},
		{"wrong pin", func(p *Pool) { p.TLSPinSHA256 = hex.EncodeToString(wrong[:]) }, "does not match the pin"},
		{"wrong pin with skip verify", func(p *Pool) {
			p.TLSPinSHA256, p.TLSSkipVerify = hex.EncodeToString(wrong[:]), true
		}, "does not match the pin"},
		{"wrong pin with ca file", func(p *Pool) {
			p.TLSPinSHA256, p.TLSCAFile = hex.EncodeToString(wrong[:]), caFile
		}, "does not match the pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := newFakeTLSPool(t, cert)
			p := testPool(fp.tlsURL())
			tt.setup(&p)
			_, rec, _ := startSession(t, p, testOptions(t))
			if tt.down != "" {
				ev := rec.waitState(StateDown)
				if !strings.HasPrefix(ev.reason, "dial: ") || !strings.Contains(ev.reason, tt.down) {
					t.Fatalf("down %q, want …%s", ev.reason, tt.down)
				}
				return
			}
			goLive(t, fp, rec, hs{})
		})
	}
}

// ---- SOCKS5 ----

// socks5Server is a tiny SOCKS5 proxy (no auth, CONNECT only) that connects
// only to loopback targets; "localhost" stands for 127.0.0.1.
type socks5Server struct {
	cl      *closers
	ln      net.Listener
	targets chan string // "host:port" as requested, with the address type
	reply   byte        // 0: connect; otherwise refuse with this code
}

func newSOCKS5Server(t *testing.T, reply byte) *socks5Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &socks5Server{cl: newClosers(t), ln: ln, targets: make(chan string, 16), reply: reply}
	srv.cl.add(ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.cl.add(c)
			go srv.serve(c)
		}
	}()
	return srv
}

func (srv *socks5Server) serve(c net.Conn) {
	buf := make([]byte, 262)
	if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 5 {
		return
	}
	if _, err := io.ReadFull(c, buf[:buf[1]]); err != nil {
		return
	}
	c.Write([]byte{5, 0})
	if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[1] != 1 {
		return
	}
	var host, kind string
	switch buf[3] {
	case 1:
		io.ReadFull(c, buf[:4])
		host, kind = net.IP(buf[:4]).String(), "ipv4"
	case 3:
		io.ReadFull(c, buf[:1])
		n := int(buf[0])
		io.ReadFull(c, buf[:n])
		host, kind = string(buf[:n]), "name"
	case 4:
		io.ReadFull(c, buf[:16])
		host, kind = net.IP(buf[:16]).String(), "ipv6"
	}
	io.ReadFull(c, buf[:2])
	port := binary.BigEndian.Uint16(buf[:2])
	srv.targets <- kind + " " + net.JoinHostPort(host, strconv.Itoa(int(port)))
	if srv.reply != 0 {
		c.Write([]byte{5, srv.reply, 0, 1, 0, 0, 0, 0, 0, 0})
		c.Close()
		return
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}) // never leave loopback
		c.Close()
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		c.Close()
		return
	}
	srv.cl.add(up)
	// Bound address as a domain name, to exercise that reply form.
	c.Write([]byte{5, 0, 0, 3, 5, 'p', 'r', 'o', 'x', 'y', 0x1f, 0x90})
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func TestSOCKS5(t *testing.T) {
	t.Parallel()
	t.Run("ip target", func(t *testing.T) {
		t.Parallel()
		fp := newFakePool(t)
		srv := newSOCKS5Server(t, 0)
		p := testPool(fp.url())
		p.SOCKS5 = srv.ln.Addr().String()
		s, rec, _ := startSession(t, p, testOptions(t))
		if got, want := <-srv.targets, "ipv4 "+fp.ln.Addr().String(); got != want {
			t.Errorf("CONNECT %s, want %s", got, want)
		}
		pc := goLive(t, fp, rec, hs{})
		mustSubmit(t, s, testSubmit(1))
		pc.reply(pc.expect("mining.submit"), "true")
		if res := rec.result(); !res.Accepted {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("host name resolved by the proxy", func(t *testing.T) {
		t.Parallel()
		fp := newFakePool(t)
		srv := newSOCKS5Server(t, 0)
		p := testPool(fmt.Sprintf("stratum+tcp://localhost:%d", fp.port()))
		p.SOCKS5 = srv.ln.Addr().String()
		_, rec, _ := startSession(t, p, testOptions(t))
		if got, want := <-srv.targets, fmt.Sprintf("name localhost:%d", fp.port()); got != want {
			t.Errorf("CONNECT %s, want %s", got, want)
		}
		goLive(t, fp, rec, hs{})
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		srv := newSOCKS5Server(t, 5)
		p := testPool("stratum+tcp://127.0.0.1:3333")
		p.SOCKS5 = srv.ln.Addr().String()
		_, rec, _ := startSession(t, p, testOptions(t))
		if ev := rec.waitState(StateDown); ev.reason != "dial: socks5: connection refused" {
			t.Errorf("down %q", ev.reason)
		}
	})
	t.Run("proxy down", func(t *testing.T) {
		t.Parallel()
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		p := testPool("stratum+tcp://127.0.0.1:3333")
		p.SOCKS5 = addr
		_, rec, _ := startSession(t, p, testOptions(t))
		if ev := rec.waitState(StateDown); ev.reason != "dial: socks5 proxy: connection refused" {
			t.Errorf("down %q", ev.reason)
		}
	})
}

func TestShortErr(t *testing.T) {
	t.Parallel()
	op := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  error
		want string
	}{
		{nil, "closed"},
		{op, "connection refused"},
		{fmt.Errorf("socks5 proxy: %w", op), "socks5 proxy: connection refused"},
		{context.DeadlineExceeded, "i/o timeout"},
		{errors.New("plain"), "plain"},
	}
	for _, tt := range tests {
		if got := shortErr(tt.err); got != tt.want {
			t.Errorf("shortErr(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// closers closes what goroutines of a test opened, when the test ends.
type closers struct {
	mu   sync.Mutex
	done bool
	cs   []io.Closer
}

func newClosers(t *testing.T) *closers {
	cl := &closers{}
	t.Cleanup(func() {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		cl.done = true
		for _, c := range cl.cs {
			c.Close()
		}
	})
	return cl
}

func (cl *closers) add(c io.Closer) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done {
		c.Close()
		return
	}
	cl.cs = append(cl.cs, c)
}
