package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/panjf2000/gnet/v2"
)

// PROXY protocol (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): a
// load balancer in front of switchyard starts every connection with one
// header naming the client's address, then relays the client's bytes. With
// Options.ProxyProtocol every miner connection must start with one; what it
// names is the miner's address for logs, /api/v1/miners and
// MaxConnectionsPerIP.
//
// NOTE: the parser works on the bytes gnet has buffered and says "not
// complete yet" rather than waiting for more: an event loop must never
// block. github.com/pires/go-proxyproto reads from a bufio.Reader and
// blocks (or fails) on a short read, so it does not fit a gnet callback.

// Limits of a PROXY header.
const (
	// proxyV1MaxLen is the longest v1 line, "\r\n" included (the
	// protocol's own limit: "PROXY TCP6" and two full IPv6 addresses).
	proxyV1MaxLen = 107
	// proxyV2FixedLen is the v2 signature, version and command, family
	// and length.
	proxyV2FixedLen = 16
	// proxyV2MaxLen bounds a v2 header with its TLVs; HAProxy's own TLVs
	// (unique id, ALPN, authority, SSL) take a few hundred bytes at most.
	proxyV2MaxLen = 4096
)

var (
	proxyV1Sig = []byte("PROXY ")
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// errNoProxyHeader: the connection does not start with a PROXY signature.
var errNoProxyHeader = errors.New("proxy: no PROXY protocol header")

// proxyHeaderError is a PROXY header that breaks the protocol.
type proxyHeaderError struct{ detail string }

func (e *proxyHeaderError) Error() string { return "proxy: bad PROXY protocol header: " + e.detail }

func badHeader(detail string) error { return &proxyHeaderError{detail} }

// proxyHeader is what a PROXY header says about its connection.
type proxyHeader struct {
	version int // 1 or 2
	// local: the header names no client (v1 UNKNOWN, v2 LOCAL or an
	// unspecified family), as a balancer's own health check sends it; the
	// connection's own addresses stand.
	local    bool
	src, dst netip.AddrPort
}

// parseProxyHeader reads the PROXY header at the start of buf. It returns
// the header and the bytes it takes; n == 0 with a nil error means buf
// holds a valid beginning of a header but not all of it. It never reads
// past the header, allocates nothing, and fails as soon as buf cannot be
// the start of a header: errNoProxyHeader without a signature, a
// *proxyHeaderError for a broken header.
func parseProxyHeader(buf []byte) (h proxyHeader, n int, err error) {
	switch {
	case len(buf) == 0:
		return h, 0, nil
	case hasPrefixOrIsPrefix(buf, proxyV2Sig):
		if len(buf) < proxyV2FixedLen {
			return h, 0, nil
		}
		return parseProxyV2(buf)
	case hasPrefixOrIsPrefix(buf, proxyV1Sig):
		if len(buf) < len(proxyV1Sig) {
			return h, 0, nil
		}
		return parseProxyV1(buf)
	}
	return h, 0, errNoProxyHeader
}

// hasPrefixOrIsPrefix reports whether buf starts with sig, or is the
// start of it.
func hasPrefixOrIsPrefix(buf, sig []byte) bool {
	k := min(len(buf), len(sig))
	return k > 0 && bytes.Equal(buf[:k], sig[:k])
}

// parseProxyV1 reads "PROXY TCP4 src dst sport dport\r\n" (or TCP6, or
// UNKNOWN followed by anything): single spaces, addresses of the named
// family, decimal ports without leading zeros.
func parseProxyV1(buf []byte) (h proxyHeader, n int, err error) {
	end := bytes.IndexByte(buf[:min(len(buf), proxyV1MaxLen)], '\n')
	if end < 0 {
		if len(buf) >= proxyV1MaxLen {
			return h, 0, badHeader("v1 line longer than 107 bytes")
		}
		if bytes.IndexByte(buf, '\r') >= 0 && buf[len(buf)-1] != '\r' {
			return h, 0, badHeader("v1 line with a stray CR")
		}
		return h, 0, nil
	}
	if end == 0 || buf[end-1] != '\r' {
		return h, 0, badHeader("v1 line must end in CRLF")
	}
	h.version = 1
	line := buf[len(proxyV1Sig) : end-1]
	proto, rest := cutSpace(line)
	switch string(proto) {
	case "UNKNOWN":
		h.local = true
		return h, end + 1, nil
	case "TCP4", "TCP6":
	default:
		return h, 0, badHeader("v1 protocol must be TCP4, TCP6 or UNKNOWN")
	}
	var fields [4][]byte
	for i := range fields {
		fields[i], rest = cutSpace(rest)
		if len(fields[i]) == 0 {
			return h, 0, badHeader("v1 line needs source, destination and two ports, one space apart")
		}
	}
	if len(rest) > 0 {
		return h, 0, badHeader("v1 line has more than six fields")
	}
	src, err1 := netip.ParseAddr(string(fields[0]))
	dst, err2 := netip.ParseAddr(string(fields[1]))
	v4 := string(proto) == "TCP4"
	if err1 != nil || err2 != nil || src.Zone() != "" || dst.Zone() != "" || src.Is4() != v4 || dst.Is4() != v4 {
		if v4 {
			return h, 0, badHeader("v1 TCP4 addresses must be IPv4 addresses")
		}
		return h, 0, badHeader("v1 TCP6 addresses must be IPv6 addresses")
	}
	sport, ok1 := parsePort(fields[2])
	dport, ok2 := parsePort(fields[3])
	if !ok1 || !ok2 {
		return h, 0, badHeader("v1 ports must be 0 to 65535, without leading zeros")
	}
	h.src, h.dst = netip.AddrPortFrom(src.Unmap(), sport), netip.AddrPortFrom(dst.Unmap(), dport)
	return h, end + 1, nil
}

// cutSpace splits b at its first space.
func cutSpace(b []byte) (field, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return uint16(n), n <= 65535
}

// v2 commands, families and transports (the high and low nibbles).
const (
	proxyV2Local   = 0x0
	proxyV2Proxy   = 0x1
	proxyV2Unspec  = 0x0
	proxyV2Inet    = 0x1
	proxyV2Inet6   = 0x2
	proxyV2Stream  = 0x1
	proxyV2Inet4Ln = 12 // two IPv4 addresses, two ports
	proxyV2Inet6Ln = 36 // two IPv6 addresses, two ports
)

// parseProxyV2 reads the binary header: signature, version 2 with LOCAL
// or PROXY, family and transport, length, addresses, then TLVs, which
// must frame the rest exactly and are otherwise ignored.
func parseProxyV2(buf []byte) (h proxyHeader, n int, err error) {
	h.version = 2
	if v := buf[12] >> 4; v != 2 {
		return h, 0, badHeader("v2 version must be 2")
	}
	cmd, fam, transport := buf[12]&0xf, buf[13]>>4, buf[13]&0xf
	if cmd != proxyV2Local && cmd != proxyV2Proxy {
		return h, 0, badHeader("v2 command must be LOCAL or PROXY")
	}
	size := int(binary.BigEndian.Uint16(buf[14:16]))
	total := proxyV2FixedLen + size
	if total > proxyV2MaxLen {
		return h, 0, badHeader("v2 header longer than 4096 bytes")
	}
	var addrLen int
	switch {
	case cmd == proxyV2Local || fam == proxyV2Unspec:
		h.local = true
	case fam == proxyV2Inet && transport == proxyV2Stream:
		addrLen = proxyV2Inet4Ln
	case fam == proxyV2Inet6 && transport == proxyV2Stream:
		addrLen = proxyV2Inet6Ln
	default:
		return h, 0, badHeader("v2 address family must be TCP over IPv4 or IPv6")
	}
	if size < addrLen {
		return h, 0, badHeader("v2 length too short for its addresses")
	}
	if len(buf) < total {
		return h, 0, nil
	}
	if h.local {
		return h, total, nil // LOCAL: addresses and TLVs are to be skipped
	}
	a := buf[proxyV2FixedLen:total]
	if addrLen == proxyV2Inet4Ln {
		h.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	} else {
		h.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])).Unmap(), binary.BigEndian.Uint16(a[34:36]))
	}
	for tlv := a[addrLen:]; len(tlv) > 0; {
		if len(tlv) < 3 {
			return h, 0, badHeader("v2 TLV cut short")
		}
		l := 3 + int(binary.BigEndian.Uint16(tlv[1:3]))
		if l > len(tlv) {
			return h, 0, badHeader("v2 TLV longer than the header")
		}
		tlv = tlv[l:]
	}
	return h, total, nil
}

// readProxyHeader handles the bytes of a connection whose PROXY header has
// not been read yet (Options.ProxyProtocol): it returns the bytes the
// header took, 0 while it is incomplete. Once read, the miner takes the
// client's address from it and only then counts against
// MaxConnectionsPerIP. A connection that does not start with a valid
// header, or whose client is over the limit, is closed with a counted
// reason (close is true).
func (s *Server) readProxyHeader(c gnet.Conn, m *miner, buf []byte) (n int, close bool) {
	h, n, err := parseProxyHeader(buf)
	if err != nil {
		m.closeReason = CloseBadProxyHeader
		if errors.Is(err, errNoProxyHeader) {
			m.closeReason = CloseNoProxyHeader
		}
		s.log.Debug().Err(err).Str("remote", m.remote).Str("reason", m.closeReason.String()).Msg("connection refused: no valid PROXY header")
		return 0, true
	}
	if n == 0 {
		return 0, false
	}
	m.awaitProxy = false
	ip := remoteIP(c.RemoteAddr())
	if !h.local {
		ip = h.src.Addr().String()
		s.log.Debug().Str("remote", h.src.String()).Str("balancer", m.remote).Int("version", h.version).Msg("PROXY header")
		m.remote = h.src.String()
	}
	if !s.admitIP(ip) {
		s.ctr.limit(limitPerIP)
		m.closeReason = ClosePerIPLimit
		return n, true
	}
	m.ip = ip
	return n, false
}
