package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"switchyard/config"
)

// Pool URL schemes (config's: one parser for both).
const (
	SchemeTCP = config.SchemeTCP // plain TCP
	SchemeSSL = config.SchemeSSL // TLS
	SchemeTLS = config.SchemeTLS // TLS, same as stratum+ssl
)

// endpoint is a parsed pool URL.
type endpoint struct {
	host string // no IPv6 brackets; also the TLS server name
	port uint16
	tls  bool
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(int(e.port))) }

// parseURL reads scheme://host:port with one of the Scheme* schemes, as
// config checks it.
func parseURL(s string) (endpoint, error) {
	e, err := config.ParseURL(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("upstream: pool url %q: %w", s, err)
	}
	return endpoint{host: e.Host, port: e.Port, tls: e.TLS}, nil
}

// tlsSetup is what NewSession prepares for TLS dials.
type tlsSetup struct {
	roots *x509.CertPool // nil: system roots only
	skip  bool
	pin   []byte // sha256 of the leaf's SubjectPublicKeyInfo; nil: none
}

func newTLSSetup(p Pool) (*tlsSetup, error) {
	t := &tlsSetup{skip: p.TLSSkipVerify}
	pin, err := config.ParsePin(p.TLSPinSHA256)
	if err != nil {
		return nil, fmt.Errorf("upstream: tls pin: %w", err)
	}
	t.pin = pin
	if p.TLSCAFile != "" {
		pem, err := os.ReadFile(p.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: tls ca file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream: tls ca file %s: no PEM certificates", p.TLSCAFile)
		}
		t.roots = roots
	}
	return t, nil
}

// ErrTLSPin is returned (wrapped) when a pool's key does not match
// Pool.TLSPinSHA256.
var ErrTLSPin = errors.New("upstream: tls: certificate key does not match the pin")

func (t *tlsSetup) config(serverName string) *tls.Config {
	cfg := &tls.Config{
		ServerName:         serverName,
		RootCAs:            t.roots,
		InsecureSkipVerify: t.skip || t.pin != nil, // the pin replaces chain verification
		MinVersion:         tls.VersionTLS12,
	}
	if t.pin != nil {
		pin := t.pin
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrTLSPin
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if !bytes.Equal(sum[:], pin) {
				return ErrTLSPin
			}
			return nil
		}
	}
	return cfg
}

// dial connects to addr (host:port) as the Pool says: from Bind, through
// Interface, via SOCKS5, with TLS; DialTimeout bounds it all. raw is the
// TCP connection, nc what to speak Stratum over (raw or TLS over it).
func (s *Session) dial(ctx context.Context, addr string) (raw, nc net.Conn, err error) {
	if s.setup != nil {
		return nil, nil, s.setup
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	d := &net.Dialer{
		Timeout: s.opts.DialTimeout,
		Control: sockControl(s.pool.Interface, s.opts.UserTimeout),
	}
	if s.opts.Keepalive > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: s.opts.Keepalive, Interval: s.opts.Keepalive, Count: 3}
	} else {
		d.KeepAlive = -1
	}
	if s.pool.Bind != "" {
		ip := net.ParseIP(s.pool.Bind)
		if ip == nil {
			return nil, nil, fmt.Errorf("bind address %q is not an IP", s.pool.Bind)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	if s.pool.SOCKS5 != "" {
		raw, err = d.DialContext(ctx, "tcp", s.pool.SOCKS5)
		if err != nil {
			return nil, nil, fmt.Errorf("socks5 proxy: %w", err)
		}
		if err = socks5Connect(ctx, raw, addr); err != nil {
			raw.Close()
			return nil, nil, err
		}
	} else if raw, err = d.DialContext(ctx, "tcp", addr); err != nil {
		return nil, nil, err
	}
	if !s.ep.tls {
		return raw, raw, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(raw, s.tls.config(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, tc, nil
}

// socks5 reply codes (RFC 1928 section 6).
var socks5Errors = [...]string{
	1: "general failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// socks5Connect asks the SOCKS5 proxy on c to connect to addr, without
// authentication. Host names are sent as names, so the proxy resolves
// them (the pool's DNS goes through the tunnel too). ctx bounds it.
func socks5Connect(ctx context.Context, c net.Conn, addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("socks5: bad port %q", portStr)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 0, 6+256)
	buf = append(buf, 5, 1, 0) // version 5, one method: no authentication
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	if buf[0] != 5 || buf[1] != 0 {
		return errors.New("socks5: proxy wants authentication")
	}
	buf = append(buf[:0], 5, 1, 0) // CONNECT
	if ip := net.ParseIP(host); ip == nil {
		if len(host) > 255 {
			return errors.New("socks5: host name too long")
		}
		buf = append(buf, 3, byte(len(host)))
		buf = append(buf, host...)
	} else if ip4 := ip.To4(); ip4 != nil {
		buf = append(buf, 1)
		buf = append(buf, ip4...)
	} else {
		buf = append(buf, 4)
		buf = append(buf, ip.To16()...)
	}
	buf = append(buf, byte(port>>8), byte(port))
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	head := buf[:4]
	if _, err := io.ReadFull(c, head); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	if head[0] != 5 {
		return errors.New("socks5: not a SOCKS5 proxy")
	}
	if rep := head[1]; rep != 0 {
		if int(rep) < len(socks5Errors) {
			return errors.New("socks5: " + socks5Errors[rep])
		}
		return fmt.Errorf("socks5: error %d", rep)
	}
	var skip int // bound address and port
	switch head[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			return fmt.Errorf("socks5: %w", err)
		}
		skip = int(buf[0]) + 2
	default:
		return errors.New("socks5: bad address type in reply")
	}
	if _, err := io.ReadFull(c, buf[:skip]); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("socks5: %w", ctx.Err())
	}
	return c.SetDeadline(time.Time{})
}

// shortErr renders err for a state reason: a net.OpError is cut to its
// cause ("connection refused" rather than "dial tcp 1.2.3.4:3333: connect:
// connection refused"), keeping any prefix wrapped around it.
func shortErr(err error) string {
	if err == nil {
		return "closed"
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		if errors.Is(err, context.DeadlineExceeded) {
			return "i/o timeout"
		}
		return strings.TrimPrefix(err.Error(), "upstream: ")
	}
	cause := op.Err
	if sc, ok := cause.(*os.SyscallError); ok {
		cause = sc.Err // "connect: connection refused" → "connection refused"
	}
	msg := cause.Error()
	full, whole := err.Error(), op.Error()
	if i := strings.Index(full, whole); i >= 0 {
		return full[:i] + msg + full[i+len(whole):]
	}
	return msg
}
