package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Pool URL schemes.
const (
	SchemeTCP = "stratum+tcp" // plain TCP
	SchemeSSL = "stratum+ssl" // TLS; the name most pools publish
	SchemeTLS = "stratum+tls" // TLS; same as stratum+ssl
)

// Endpoint is a parsed pool URL.
type Endpoint struct {
	Scheme string // SchemeTCP, SchemeSSL or SchemeTLS
	Host   string // host name or IP, without IPv6 brackets; the TLS server name
	Port   uint16
	TLS    bool // SchemeSSL or SchemeTLS
}

// Addr returns host:port, ready for net.Dial.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))) }

// String returns the URL form, scheme://host:port.
func (e Endpoint) String() string { return e.Scheme + "://" + e.Addr() }

// ParseURL parses a pool URL: stratum+tcp://host:port, stratum+ssl://host:port
// or stratum+tls://host:port. Host and port are required; a path, query or
// credentials are not allowed (credentials go in user and password).
func ParseURL(s string) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, errors.New(`required, such as "stratum+tcp://pool.example.com:3333"`)
	}
	if !strings.Contains(s, "://") {
		return Endpoint{}, fmt.Errorf(`must be scheme://host:port, such as "stratum+tcp://pool.example.com:3333" (got %q)`, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Endpoint{}, fmt.Errorf("not a valid URL: %v (got %q)", err, s)
	}
	e := Endpoint{Scheme: u.Scheme} // url.Parse lowercases the scheme
	switch u.Scheme {
	case SchemeTCP:
	case SchemeSSL, SchemeTLS:
		e.TLS = true
	default:
		return Endpoint{}, fmt.Errorf("scheme must be %s, %s or %s (got %q)", SchemeTCP, SchemeSSL, SchemeTLS, u.Scheme)
	}
	switch {
	case u.User != nil:
		return Endpoint{}, errors.New("credentials belong in user and password, not in the url")
	case u.Opaque != "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return Endpoint{}, fmt.Errorf("must be only scheme://host:port, without a path or query (got %q)", s)
	}
	e.Host = u.Hostname()
	if e.Host == "" {
		return Endpoint{}, fmt.Errorf("host is required (got %q)", s)
	}
	port := u.Port()
	if port == "" {
		return Endpoint{}, fmt.Errorf("port is required, such as %s://%s:3333 (got %q)", e.Scheme, u.Host, s)
	}
	n, err := parsePort(port)
	if err != nil || n == 0 {
		return Endpoint{}, fmt.Errorf("port must be a number from 1 to 65535 (got %q)", port)
	}
	e.Port = n
	return e, nil
}

// Endpoint returns the parsed URL. It fails only for a Pool that does not
// validate.
func (p *Pool) Endpoint() (Endpoint, error) { return ParseURL(p.URL) }

// TLSPin returns TLSPinSHA256 as 32 bytes, or nil when it is not set. Colons
// between hex pairs ("AB:CD:…", as openssl prints) are allowed.
func (p *Pool) TLSPin() ([]byte, error) { return ParsePin(p.TLSPinSHA256) }

// ParsePin reads a TLS pin: 64 hex digits (colons between pairs allowed),
// the SHA-256 of a certificate's SubjectPublicKeyInfo; nil for "".
func ParsePin(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	h := strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("must be 64 hex digits, the SHA-256 of the certificate's SubjectPublicKeyInfo (got %q)", s)
	}
	return b, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

// checkHostPort checks s is host:port with a numeric port. For a listen
// address (dial false) the host may be empty (all interfaces) and the port 0
// (any); for an address to dial both are required.
func checkHostPort(s string, dial bool, example string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.Contains(s, "://") {
		return fmt.Errorf("must be host:port, such as %q (got %q)", example, s)
	}
	if host == "" && dial {
		return fmt.Errorf("host is required, such as %q (got %q)", example, s)
	}
	n, err := parsePort(port)
	if err != nil || n == 0 && dial {
		lo := 0
		if dial {
			lo = 1
		}
		return fmt.Errorf("port must be a number from %d to 65535 (got %q)", lo, port)
	}
	return nil
}
