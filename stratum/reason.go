package stratum

import "fmt"

// Stratum error codes used in the error triple [code, "message", null].
const (
	CodeOther         = 20
	CodeJobNotFound   = 21
	CodeDuplicate     = 22
	CodeLowDifficulty = 23
	CodeUnauthorized  = 24
	CodeNotSubscribed = 25
)

// Reason says why a share was refused or lost. Its String form is also its
// metric label and never changes once released.
type Reason uint8

// Reasons a share can end without being accepted. The first group is what a
// pool (or switchyard, acting as one) checks; the second is switchyard's own
// bookkeeping for shares it could not carry upstream.
const (
	ReasonNone Reason = iota // zero value: no reason set

	ReasonLowDifficulty  // hash above the target for the miner's difficulty
	ReasonStale          // job superseded by a clean_jobs notify
	ReasonDuplicate      // same job, extranonce, ntime, nonce and version seen before
	ReasonBadExtranonce2 // extranonce2 of the wrong size or not hex
	ReasonBadNTime       // ntime outside the job's window
	ReasonBadVersion     // version bits outside the negotiated mask
	ReasonUnknownJob     // job id never issued (or long forgotten)
	ReasonNotAuthorized  // submit before authorize, or for a worker not authorized
	ReasonNotSubscribed  // submit before subscribe
	ReasonMalformed      // parameters of the wrong type or count
	ReasonPoolSwitched   // job belonged to a pool switchyard has since left
	ReasonRateLimited    // more submits per second than allowed

	ReasonUpstreamDown  // pool connection died with the share in flight
	ReasonSubmitTimeout // pool did not answer within submit_timeout
	ReasonNoUpstream    // no pool was live when the share arrived
	ReasonPoolRejected  // pool disagreed with switchyard's verdict (counted per pool)

	numReasons
)

// NumReasons is one more than the largest Reason, for arrays indexed by Reason.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{
	ReasonNone:           "none",
	ReasonLowDifficulty:  "low_difficulty",
	ReasonStale:          "stale",
	ReasonDuplicate:      "duplicate",
	ReasonBadExtranonce2: "bad_extranonce2",
	ReasonBadNTime:       "bad_ntime",
	ReasonBadVersion:     "bad_version",
	ReasonUnknownJob:     "unknown_job",
	ReasonNotAuthorized:  "not_authorized",
	ReasonNotSubscribed:  "not_subscribed",
	ReasonMalformed:      "malformed",
	ReasonPoolSwitched:   "pool_switched",
	ReasonRateLimited:    "rate_limited",
	ReasonUpstreamDown:   "upstream_down",
	ReasonSubmitTimeout:  "submit_timeout",
	ReasonNoUpstream:     "no_upstream",
	ReasonPoolRejected:   "pool_rejected",
}

// String returns the reason's metric label, e.g. "low_difficulty".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons lists every reason except ReasonNone, in declaration order.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Code is the Stratum error code a miner is answered with for r.
func (r Reason) Code() int {
	switch r {
	case ReasonStale, ReasonUnknownJob, ReasonPoolSwitched:
		return CodeJobNotFound
	case ReasonDuplicate:
		return CodeDuplicate
	case ReasonLowDifficulty:
		return CodeLowDifficulty
	case ReasonNotAuthorized:
		return CodeUnauthorized
	case ReasonNotSubscribed:
		return CodeNotSubscribed
	default:
		return CodeOther
	}
}

// Message is the human-readable text sent with r's error code.
func (r Reason) Message() string {
	switch r {
	case ReasonLowDifficulty:
		return "Low difficulty share"
	case ReasonStale:
		return "Stale job"
	case ReasonDuplicate:
		return "Duplicate share"
	case ReasonBadExtranonce2:
		return "Invalid extranonce2 size"
	case ReasonBadNTime:
		return "Ntime out of range"
	case ReasonBadVersion:
		return "Version bits outside mask"
	case ReasonUnknownJob:
		return "Job not found"
	case ReasonNotAuthorized:
		return "Unauthorized worker"
	case ReasonNotSubscribed:
		return "Not subscribed"
	case ReasonMalformed:
		return "Invalid parameters"
	case ReasonPoolSwitched:
		return "Stale job (pool switched)"
	case ReasonRateLimited:
		return "Too many submits"
	case ReasonNoUpstream:
		return "No pool available"
	default:
		return "Share refused"
	}
}

// RejectError reports a refused share; callers read Reason with errors.As.
type RejectError struct {
	Reason Reason
	Detail string // for logs, never for branching
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return "stratum: share rejected: " + e.Reason.String()
	}
	return "stratum: share rejected: " + e.Reason.String() + ": " + e.Detail
}

// Is lets errors.Is match any *RejectError with the same Reason, so the
// package-level sentinels below work with errors.Is.
func (e *RejectError) Is(target error) bool {
	t, ok := target.(*RejectError)
	return ok && t.Reason == e.Reason && t.Detail == ""
}

// Sentinel rejections for errors.Is; Check returns *RejectError values that
// match these.
var (
	ErrLowDifficulty  = &RejectError{Reason: ReasonLowDifficulty}
	ErrStale          = &RejectError{Reason: ReasonStale}
	ErrDuplicate      = &RejectError{Reason: ReasonDuplicate}
	ErrBadExtranonce2 = &RejectError{Reason: ReasonBadExtranonce2}
	ErrBadNTime       = &RejectError{Reason: ReasonBadNTime}
	ErrBadVersion     = &RejectError{Reason: ReasonBadVersion}
	ErrUnknownJob     = &RejectError{Reason: ReasonUnknownJob}
)
