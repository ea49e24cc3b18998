//go:build !linux

package upstream

import (
	"errors"
	"syscall"
	"time"
)

// sockControl supports neither SO_BINDTODEVICE nor TCP_USER_TIMEOUT off
// Linux: an interface is an error, the user timeout is left out.
func sockControl(iface string, _ time.Duration) func(network, address string, rc syscall.RawConn) error {
	if iface == "" {
		return nil
	}
	return func(string, string, syscall.RawConn) error {
		return errors.New("interface binding is only supported on Linux")
	}
}
