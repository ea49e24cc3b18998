package config

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeHost has lo (127.0.0.1/8, ::1), eth0 (192.0.2.10/24) and wwan0
// (198.51.100.7/30).
func fakeHost() *Host {
	p := netip.MustParsePrefix
	return &Host{
		Interfaces: map[string][]netip.Prefix{
			"lo":    {p("127.0.0.1/8"), p("::1/128")},
			"eth0":  {p("192.0.2.10/24"), p("fe80::1/64")},
			"wwan0": {p("198.51.100.7/30")},
		},
		Loopback: map[string]bool{"lo": true},
	}
}

// TestHostProblems: an interface the host lacks and a bind address that is
// not the host's are reported with file, line, key and what would work.
func TestHostProblems(t *testing.T) {
	const head = "[[pool]]\nname = \"p\"\nurl = \"stratum+tcp://pool.example.com:3333\"\nuser = \"u\"\n"
	tests := []struct {
		name string
		pool string // keys appended to head
		want []string
	}{
		{"no route keys", "", nil},
		{"interface present", "interface = \"wwan0\"\n", nil},
		{"interface missing", "interface = \"wwan1\"\n", []string{
			`c.toml:5: pool[0].interface: this host has no network interface "wwan1" (it has: eth0, lo, wwan0); connect the device, or leave interface out to use the routing table`}},
		{"bind local", "bind = \"192.0.2.10\"\n", nil},
		{"bind loopback range", "bind = \"127.0.0.3\"\n", nil},
		{"bind ipv6 loopback", "bind = \"::1\"\n", nil},
		{"bind not local", "bind = \"203.0.113.9\"\n", []string{
			`c.toml:5: pool[0].bind: 203.0.113.9 is not an address of this host (its addresses: 192.0.2.10, 127.0.0.1, ::1, 198.51.100.7); use one of them, or leave bind out to let the kernel choose`}},
		{"bind in a subnet, not assigned", "bind = \"192.0.2.11\"\n", []string{"c.toml:5: pool[0].bind: 192.0.2.11 is not an address of this host"}},
		{"bind on another interface", "interface = \"wwan0\"\nbind = \"192.0.2.10\"\n", []string{
			`c.toml:6: pool[0].bind: 192.0.2.10 is on interface eth0, not on the pool's interface wwan0 (its addresses: 198.51.100.7)`}},
		{"bind on the interface", "interface = \"wwan0\"\nbind = \"198.51.100.7\"\n", nil},
		{"both wrong", "interface = \"wwan9\"\nbind = \"203.0.113.9\"\n", []string{
			"c.toml:5: pool[0].interface:", "c.toml:6: pool[0].bind: 203.0.113.9 is not an address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(head+tt.pool), "c.toml")
			if err != nil {
				t.Fatal(err)
			}
			ps := c.HostProblems(fakeHost())
			if len(ps) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d %q", len(ps), ps, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ps[i].Error(), w) {
					t.Errorf("problem %d = %q\nwant prefix  %q", i, ps[i].Error(), w)
				}
			}
		})
	}
}

// TestHostProblemsThisHost runs the checks against this machine: its
// loopback interface and 127.0.0.1 are there, a made-up interface and an
// address from the benchmarking range are not.
func TestHostProblemsThisHost(t *testing.T) {
	lo := ""
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			lo = i.Name
		}
	}
	if lo == "" {
		t.Skip("no loopback interface")
	}
	body := "[[pool]]\nname = \"a\"\nurl = \"stratum+tcp://127.0.0.1:1\"\nuser = \"u\"\ninterface = \"" + lo + "\"\nbind = \"127.0.0.1\"\n" +
		"[[pool]]\nname = \"b\"\nurl = \"stratum+tcp://127.0.0.1:1\"\nuser = \"u\"\ninterface = \"nosuch0\"\n" +
		"[[pool]]\nname = \"c\"\nurl = \"stratum+tcp://127.0.0.1:1\"\nuser = \"u\"\nbind = \"198.18.255.254\"\n"
	if h, err := LocalHost(); err != nil || h.owner(netip.MustParseAddr("198.18.255.254")) != "" {
		t.Skipf("198.18.255.254 is an address of this host (%v)", err)
	}
	c, err := Parse([]byte(body), "host.toml")
	if err != nil {
		t.Fatal(err)
	}
	ps := c.HostProblems(nil)
	if len(ps) != 2 || ps[0].Key != "pool[1].interface" || ps[0].Line != 11 || ps[1].Key != "pool[2].bind" || ps[1].Line != 16 {
		t.Fatalf("problems on this host: %v; want pool[1].interface (line 11) and pool[2].bind (line 16)", ps)
	}
}
