// Package sim simulates both ends of a Stratum v1 mining setup over real TCP:
// a pool (Pool) that issues realistic jobs, validates every share with the
// stratum package and can be switched into fault modes at run time, and a
// fleet of miners (Fleet) that really hash, submit what meets their
// difficulty and account for every answer.
//
// It serves integration tests, benchmarks, `switchyard demo` and operators
// rehearsing an outage (cmd/stratumsim). It is not imported by proxy/ or
// upstream/.
//
// Both sides use a goroutine per connection: simple, and fine at the tens of
// thousands of connections a simulation needs. Both keep exact counters and
// can write a ledger (one JSON line per share, see LedgerEntry) so a test
// can check that every share ended in exactly one bucket:
//
//	pool:  Submits == Accepted + Σ Rejected
//	fleet: Submits == Accepted + Σ Rejected + Lost + Pending
//
// Nothing here encodes or decodes Stratum by hand, and no share maths lives
// here: lines go through stratum's codec, jobs through stratum.NewJob, shares
// through stratum.Job.Check and stratum.Dedup. The miner only patches the
// version and nonce fields of a header stratum.Job.Header built (see
// grind.go).
package sim
