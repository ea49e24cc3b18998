package proxy

import (
	"errors"
	"io"
	"syscall"
)

// CloseReason says why a miner connection ended. String() is its label in
// switchyard_miner_connections_closed_total and the "miner disconnected"
// log line. The zero value means the connection is not closing.
type CloseReason uint8

// Close reasons.
const (
	closeNone CloseReason = iota
	// The miner's side.
	CloseEOF   // the miner hung up
	CloseReset // the connection was reset (RST), or broke on a write
	CloseError // another socket error
	// switchyard's side.
	CloseShutdown       // switchyard is stopping (SIGTERM drain)
	CloseLineTooLong    // a line over server.max_line_bytes
	CloseSlowReader     // more than server.max_pending_write_bytes waiting to be written
	CloseAuthTimeout    // not subscribed and authorized within server.auth_timeout
	CloseAllPoolsDown   // when_all_down = "disconnect" and no pool is live
	CloseNoProxyHeader  // server.proxy_protocol: the first bytes are no PROXY header
	CloseBadProxyHeader // server.proxy_protocol: a PROXY header that breaks the protocol
	ClosePerIPLimit     // the PROXY header named a client over max_connections_per_ip
	CloseNoRoute        // a reload removed its route and no other takes its worker
	numCloseReasons
)

var closeNames = [numCloseReasons]string{"", "eof", "reset", "error", "shutdown", "line_too_long", "slow_reader",
	"auth_timeout", "all_pools_down", "no_proxy_header", "bad_proxy_header", "max_connections_per_ip", "no_route"}

func (r CloseReason) String() string {
	if r < numCloseReasons {
		return closeNames[r]
	}
	return "unknown"
}

// CloseReasons lists every close reason, for label sets.
func CloseReasons() []CloseReason {
	out := make([]CloseReason, 0, numCloseReasons-1)
	for r := closeNone + 1; r < numCloseReasons; r++ {
		out = append(out, r)
	}
	return out
}

// peerCloseReason classifies how a connection switchyard did not close
// ended: gnet reports a miner's orderly hang-up as a read of EOF.
func peerCloseReason(err error) CloseReason {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return CloseEOF
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT):
		return CloseReset
	}
	return CloseError
}
