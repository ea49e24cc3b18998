package upstream

import (
	"testing"

	"switchyard/stratum"
)

// TestPendingShrinks: once a dark spell's pile of unanswered submits is
// resolved, the pending map is made anew (a map never shrinks); a few
// submits in flight keep it.
func TestPendingShrinks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending int
		fresh   bool
	}{
		{"a few kept", pendingKeep, false},
		{"a pile released", pendingKeep + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder(t)
			s := NewSession(Pool{Name: "p", URL: "stratum+tcp://127.0.0.1:1"}, 0, Options{}, r)
			s.mu.Lock()
			defer s.mu.Unlock()
			for i := range tc.pending {
				s.pending[uint64(i+1)] = pendingSubmit{sub: Submit{Ticket: uint64(i), JobID: "j"}}
				s.pendingPeak = max(s.pendingPeak, len(s.pending))
			}
			old := s.pending
			s.resolveAll(stratum.ReasonUpstreamDown)
			if len(r.results) != tc.pending || len(s.pending) != 0 {
				t.Fatalf("%d results, %d still pending; want %d, 0", len(r.results), len(s.pending), tc.pending)
			}
			s.pending[1] = pendingSubmit{} // the same map is still the one in use, or a new one
			if fresh := len(old) == 0; fresh != tc.fresh {
				t.Errorf("map made anew: %v, want %v", fresh, tc.fresh)
			}
			if tc.fresh && s.pendingPeak != 0 {
				t.Errorf("pendingPeak = %d after a fresh map, want 0", s.pendingPeak)
			}
		})
	}
}
