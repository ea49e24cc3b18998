package stratum

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNewJob(t *testing.T) {
	ok := func() *Notify {
		return &Notify{
			JobID:    "1f",
			PrevHash: [32]byte{0: 1, 1: 2, 2: 3, 3: 4, 31: 9},
			Coinb1:   []byte{0xc1},
			Coinb2:   []byte{0xc2, 0xc3},
			Branch:   [][32]byte{{0: 7}},
			Version:  0x20000000,
			NBits:    0x1d00ffff,
			NTime:    1700000000,
			Clean:    true,
		}
	}
	tests := []struct {
		name    string
		notify  func() *Notify
		wantErr string // substring; "" means success
	}{
		{"valid", ok, ""},
		{"nil notify", func() *Notify { return nil }, "nil notify"},
		{"empty coinb1", func() *Notify { n := ok(); n.Coinb1 = nil; return n }, "empty coinb1"},
		{"empty coinb2", func() *Notify { n := ok(); n.Coinb2 = []byte{}; return n }, "empty coinb2"},
		{"coinbase at limit", func() *Notify {
			n := ok()
			n.Coinb1 = make([]byte, MaxCoinbaseLen-1)
			n.Coinb2 = []byte{1}
			return n
		}, ""},
		{"coinbase over limit", func() *Notify {
			n := ok()
			n.Coinb1 = make([]byte, MaxCoinbaseLen)
			n.Coinb2 = []byte{1}
			return n
		}, "coinbase halves are 32769 bytes"},
		{"empty branch", func() *Notify { n := ok(); n.Branch = nil; return n }, ""},
		{"branch at limit", func() *Notify { n := ok(); n.Branch = make([][32]byte, MaxBranchLen); return n }, ""},
		{"branch over limit", func() *Notify { n := ok(); n.Branch = make([][32]byte, MaxBranchLen+1); return n }, "merkle branch has 33 hashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.notify()
			j, err := NewJob(n)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewJob succeeded, want error %q", tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidJob) || !strings.HasPrefix(err.Error(), "stratum: ") ||
					!strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q: want ErrInvalidJob with %q", err, tt.wantErr)
				}
				if j != nil {
					t.Fatal("non-nil job with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewJob: %v", err)
			}
			checkJobMatches(t, j, n)
		})
	}
}

// checkJobMatches asserts that j is n in header order, and that j does not
// share memory with n.
func checkJobMatches(t *testing.T, j *Job, n *Notify) {
	t.Helper()
	if j.ID != n.JobID || j.Version != n.Version || j.NBits != n.NBits || j.NTime != n.NTime || j.Clean != n.Clean {
		t.Fatalf("job %+v does not match notify %+v", j, n)
	}
	if SwapWords(j.PrevHash) != n.PrevHash {
		t.Fatalf("PrevHash %x is not the notify's %x word-swapped", j.PrevHash, n.PrevHash)
	}
	if !bytes.Equal(j.Coinb1, n.Coinb1) || !bytes.Equal(j.Coinb2, n.Coinb2) || len(j.Branch) != len(n.Branch) {
		t.Fatal("coinbase or branch differs")
	}
	for i := range n.Branch {
		if j.Branch[i] != n.Branch[i] {
			t.Fatalf("branch[%d] differs", i)
		}
	}
	// NewJob copies: scribbling on the notify leaves the job alone, and an
	// append to Coinb1 cannot run into Coinb2.
	n.Coinb1[0] ^= 0xff
	n.Coinb2[0] ^= 0xff
	if j.Coinb1[0] == n.Coinb1[0] || j.Coinb2[0] == n.Coinb2[0] {
		t.Fatal("job aliases the notify's coinbase")
	}
	if len(n.Branch) > 0 {
		n.Branch[0][0] ^= 0xff
		if j.Branch[0][0] == n.Branch[0][0] {
			t.Fatal("job aliases the notify's branch")
		}
	}
	if cap(j.Coinb1) != len(j.Coinb1) {
		t.Fatal("Coinb1 has spare capacity into Coinb2")
	}
}

// FuzzNewJob builds jobs from arbitrary notify fields: NewJob must not
// panic, must fail exactly for the documented limits, and a job it accepts
// must assemble a header.
func FuzzNewJob(f *testing.F) {
	for _, bf := range loadBlockFixtures(f) {
		n := bf.notify
		var branch []byte
		for _, h := range n.Branch {
			branch = append(branch, h[:]...)
		}
		f.Add(n.JobID, n.PrevHash[:], n.Coinb1, n.Coinb2, branch, n.Version, n.NBits, n.NTime, n.Clean)
	}
	f.Add("", []byte{}, []byte{}, []byte{1}, []byte{1, 2, 3}, uint32(0), uint32(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, id string, prev, coinb1, coinb2, branch []byte, version, nbits, ntime uint32, clean bool) {
		// checkJobMatches scribbles on the notify: give it copies, not the
		// fuzzer's inputs.
		n := &Notify{JobID: id, Coinb1: bytes.Clone(coinb1), Coinb2: bytes.Clone(coinb2),
			Version: version, NBits: nbits, NTime: ntime, Clean: clean}
		copy(n.PrevHash[:], prev)
		// Every started 32-byte chunk is a branch hash; the fuzzer can reach
		// MaxBranchLen+1 hashes with 1 KiB of input.
		for i := 0; i < len(branch); i += 32 {
			var h [32]byte
			copy(h[:], branch[i:])
			n.Branch = append(n.Branch, h)
		}
		j, err := NewJob(n)
		bad := len(coinb1) == 0 || len(coinb2) == 0 || len(coinb1)+len(coinb2) > MaxCoinbaseLen || len(n.Branch) > MaxBranchLen
		if bad != (err != nil) {
			t.Fatalf("NewJob error %v, but limits broken = %v", err, bad)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("error %v does not wrap ErrInvalidJob", err)
			}
			return
		}
		var hdr [80]byte
		j.Header(&hdr, prev, coinb2, ntime, version, nbits)
		checkJobMatches(t, j, n)
	})
}
