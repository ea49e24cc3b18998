package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Endpoint
		addr    string
		wantErr string
	}{
		{in: "stratum+tcp://pool.example.com:3333", want: Endpoint{Scheme: SchemeTCP, Host: "pool.example.com", Port: 3333}, addr: "pool.example.com:3333"},
		{in: "stratum+ssl://pool.example.com:443", want: Endpoint{Scheme: SchemeSSL, Host: "pool.example.com", Port: 443, TLS: true}, addr: "pool.example.com:443"},
		{in: "stratum+tls://192.0.2.1:443/", want: Endpoint{Scheme: SchemeTLS, Host: "192.0.2.1", Port: 443, TLS: true}, addr: "192.0.2.1:443"},
		{in: "STRATUM+TCP://pool.example.com:3333", want: Endpoint{Scheme: SchemeTCP, Host: "pool.example.com", Port: 3333}, addr: "pool.example.com:3333"},
		{in: "stratum+tcp://[2001:db8::1]:3333", want: Endpoint{Scheme: SchemeTCP, Host: "2001:db8::1", Port: 3333}, addr: "[2001:db8::1]:3333"},
		{in: "", wantErr: "required"},
		{in: "pool.example.com:3333", wantErr: "must be scheme://host:port"},
		{in: "http://pool.example.com:3333", wantErr: `scheme must be stratum+tcp, stratum+ssl or stratum+tls (got "http")`},
		{in: "stratum+tcp://pool.example.com", wantErr: "port is required"},
		{in: "stratum+tcp://:3333", wantErr: "host is required"},
		{in: "stratum+tcp://pool.example.com:0", wantErr: "port must be a number from 1 to 65535"},
		{in: "stratum+tcp://pool.example.com:70000", wantErr: "port must be a number from 1 to 65535"},
		{in: "stratum+tcp://user:pw@pool.example.com:3333", wantErr: "credentials belong in user and password"},
		{in: "stratum+tcp://pool.example.com:3333/path", wantErr: "without a path"},
		{in: "stratum+tcp://pool.example.com:3333?x=1", wantErr: "without a path"},
		{in: "stratum+tcp://pool example.com:3333", wantErr: "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseURL(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || got.Addr() != tt.addr {
				t.Errorf("ParseURL(%q) = %+v (addr %q), %v; want %+v (addr %q)", tt.in, got, got.Addr(), err, tt.want, tt.addr)
			}
		})
	}
}

func TestTLSPin(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, s := range []string{hex64, colons} {
		p := Pool{TLSPinSHA256: s}
		b, err := p.TLSPin()
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{0xab}, 32)) {
			t.Errorf("TLSPin(%q) = %x, %v", s, b, err)
		}
	}
	if b, err := (&Pool{}).TLSPin(); b != nil || err != nil {
		t.Errorf("TLSPin(unset) = %x, %v; want nil, nil", b, err)
	}
	for _, bad := range []string{"abcd", strings.Repeat("zz", 32), hex64 + "00"} {
		if _, err := (&Pool{TLSPinSHA256: bad}).TLSPin(); err == nil {
			t.Errorf("TLSPin(%q) = nil error", bad)
		}
	}
}

func TestTLSCAFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := "[[pool]]\nname = \"a\"\nurl = \"stratum+ssl://a.example.com:443\"\nuser = \"u\"\ntls_ca_file = "
	if _, err := Parse([]byte(pool+`'`+good+`'`), "c.toml"); err != nil {
		t.Errorf("good CA file: %v", err)
	}
	_, err := Parse([]byte(pool+`'`+junk+`'`), "c.toml")
	if err == nil || !strings.Contains(err.Error(), "c.toml:5: pool[0].tls_ca_file: no PEM certificate found") {
		t.Errorf("junk CA file: %v", err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
