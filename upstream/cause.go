package upstream

import "time"

// Cause is why a Session changed state, as Handler.SessionState reports it
// (in a Why). Its String is the label used in logs, /api/v1/status and the
// metrics' reason labels. Constants start at 1: the zero Cause is unset.
type Cause uint8

// Causes, by the state they lead to.
const (
	CauseNone Cause = iota
	// Connecting and handshaking.
	CauseDial        // connecting; or down: the connection attempt failed (Detail says why)
	CauseConnected   // handshaking on the session's first connection
	CauseReconnected // handshaking on a later connection, after one was established
	// Live again.
	CauseAuthorized     // live with the connection's first job
	CauseSubmitAnswered // back from suspect: a submit was answered in time
	CauseJobReceived    // back from suspect: a job arrived
	CauseLateAnswered   // back from suspect: every late share answered before SubmitTimeout, none lost (a false alarm)
	// Suspect, and down after their grace.
	CauseSubmitTimeout // a submit unanswered past its deadline, or lost after SubmitTimeout (Why.Since: when it was sent)
	CauseJobTimeout    // no job for JobTimeout (Why.Since: the last job)
	CauseRejecting     // reject ratio above MaxRejectRatio
	// Down.
	CauseHandshakeTimeout    // a handshake request unanswered for SubmitTimeout
	CauseEOF                 // the pool closed the connection
	CauseRead                // a read failed (Detail: the error)
	CauseWrite               // a write failed (Detail: the error)
	CauseLineTooLong         // the pool sent a line over the limit
	CauseMalformed           // bad lines in a row (Detail: what)
	CauseSubscribeRefused    // mining.subscribe refused or unusable (Detail)
	CauseUnauthorized        // the pool refused Pool.User: for good
	CauseExtranonce2TooSmall // the pool's extranonce2 is below Options.MinExtranonce2Size: for good
	CauseReconnect           // the pool asked (client.reconnect)
	CauseStopped             // Run's context ended
	CauseRemoved             // the pool left the configuration (reload)
	numCauses
)

var causeNames = [numCauses]string{
	"none", "dial", "connected", "reconnected", "authorized", "submit_answered", "job_received", "late_answered",
	"submit_timeout", "job_timeout", "rejecting", "handshake_timeout", "eof", "read_error", "write_error",
	"line_too_long", "malformed", "subscribe_refused", "unauthorized", "extranonce2_too_small", "reconnect", "stopped", "removed",
}

func (c Cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return "unknown"
}

// Causes lists every Cause but CauseNone, for label sets.
func Causes() []Cause {
	out := make([]Cause, 0, numCauses-1)
	for c := CauseNone + 1; c < numCauses; c++ {
		out = append(out, c)
	}
	return out
}

// RefusedForGood reports whether c is a refusal that redialing at once
// will not fix (CauseUnauthorized, CauseExtranonce2TooSmall): the session
// waits BackoffMax before it tries again, and startup does not wait for
// the pool.
func (c Cause) RefusedForGood() bool {
	return c == CauseUnauthorized || c == CauseExtranonce2TooSmall
}

// Why is a state change's cause, with what is known where it was found.
type Why struct {
	Cause  Cause
	Detail string // for logs and status ("connection refused"), never for branching
	// Since is when the trouble began when that was before the report: the
	// send time of the oldest unanswered share, the last job. Zero: now.
	Since time.Time
}

// String is the cause's label, with the detail after a colon.
func (w Why) String() string {
	if w.Detail == "" {
		return w.Cause.String()
	}
	return w.Cause.String() + ": " + w.Detail
}

func because(c Cause) Why                  { return Why{Cause: c} }
func becauseOf(c Cause, detail string) Why { return Why{Cause: c, Detail: detail} }
