package config

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Host is what HostProblems needs to know about the machine switchyard runs
// on: its network interfaces and their addresses. LocalHost reads the real
// one; tests may describe another.
type Host struct {
	// Interfaces maps each interface name to the addresses assigned to it,
	// with their prefixes (a loopback interface's 127.0.0.1/8 makes every
	// 127.x.y.z local, as Linux routes it).
	Interfaces map[string][]netip.Prefix
	// Loopback names the loopback interfaces.
	Loopback map[string]bool
}

// LocalHost reads this machine's interfaces and their addresses.
func LocalHost() (*Host, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	h := &Host{Interfaces: make(map[string][]netip.Prefix, len(ifs)), Loopback: map[string]bool{}}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		var ps []netip.Prefix
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ip, ok := netip.AddrFromSlice(n.IP)
				ones, _ := n.Mask.Size()
				if ok {
					ip = ip.Unmap()
					if ip.Is4() && ones > 32 {
						ones -= 96
					}
					ps = append(ps, netip.PrefixFrom(ip, ones))
				}
			}
		}
		h.Interfaces[ifc.Name] = ps
		if ifc.Flags&net.FlagLoopback != 0 {
			h.Loopback[ifc.Name] = true
		}
	}
	return h, nil
}

// owner returns the interface that has ip, or "" when none has.
func (h *Host) owner(ip netip.Addr) string {
	ip = ip.Unmap()
	names := slices.Sorted(maps.Keys(h.Interfaces))
	for _, name := range names {
		for _, p := range h.Interfaces[name] {
			if p.Addr() == ip {
				return name
			}
		}
	}
	for _, name := range names { // 127.0.0.2 on lo's 127.0.0.1/8
		if !h.Loopback[name] {
			continue
		}
		for _, p := range h.Interfaces[name] {
			if p.Contains(ip) {
				return name
			}
		}
	}
	return ""
}

// addrs lists the addresses of the interfaces, or of iface alone.
func (h *Host) addrs(iface string) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(h.Interfaces)) {
		if iface != "" && name != iface {
			continue
		}
		for _, p := range h.Interfaces[name] {
			if !p.Addr().IsLinkLocalUnicast() {
				out = append(out, p.Addr().String())
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// HostProblems returns what in c cannot work on host: a pool's interface
// the host does not have, a pool's bind address that is not one of the
// host's own, a bind address on another interface than the pool's
// interface. Load and Validate do not check this (a file is valid on any
// machine, and a modem may be plugged in after start); `switchyard check`
// does. A nil host reads this machine's (LocalHost); if that fails, the
// failure is the one problem.
func (c *Config) HostProblems(h *Host) []Problem {
	v := validator{src: c.src}
	if h == nil {
		var err error
		if h, err = LocalHost(); err != nil {
			v.add("pool", "cannot list this host's network interfaces: %v", err)
			return v.problems
		}
	}
	for _, p := range c.Pools {
		key := func(k string) string { return "pool[" + strconv.Itoa(p.Index) + "]." + k }
		ifaceOK := true
		if p.Interface != "" {
			if _, ok := h.Interfaces[p.Interface]; !ok {
				ifaceOK = false
				v.add(key("interface"), "this host has no network interface %q (it has: %s); connect the device, or leave interface out to use the routing table",
					p.Interface, strings.Join(slices.Sorted(maps.Keys(h.Interfaces)), ", "))
			}
		}
		if p.Bind == "" {
			continue
		}
		ip, err := netip.ParseAddr(p.Bind)
		if err != nil {
			continue // Validate reports it
		}
		switch owner := h.owner(ip); {
		case owner == "":
			v.add(key("bind"), "%s is not an address of this host (its addresses: %s); use one of them, or leave bind out to let the kernel choose",
				p.Bind, h.addrs(""))
		case p.Interface != "" && ifaceOK && owner != p.Interface:
			v.add(key("bind"), "%s is on interface %s, not on the pool's interface %s (its addresses: %s)",
				p.Bind, owner, p.Interface, h.addrs(p.Interface))
		}
	}
	sortProblems(v.problems)
	return v.problems
}
