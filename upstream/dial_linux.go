package upstream

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sockControl sets SO_BINDTODEVICE (when iface is set) and
// TCP_USER_TIMEOUT (when userTimeout > 0) on a socket before it connects.
func sockControl(iface string, userTimeout time.Duration) func(network, address string, rc syscall.RawConn) error {
	if iface == "" && userTimeout <= 0 {
		return nil
	}
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if iface != "" {
				if err := unix.BindToDevice(int(fd), iface); err != nil {
					serr = fmt.Errorf("interface %s: %w", iface, err)
					return
				}
			}
			if userTimeout > 0 {
				ms := int(userTimeout / time.Millisecond)
				if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms); err != nil {
					serr = fmt.Errorf("TCP_USER_TIMEOUT: %w", err)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
