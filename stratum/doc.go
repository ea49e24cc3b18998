// Package stratum implements the Stratum v1 mining protocol as plain Go
// types: line framing, the JSON-RPC messages a proxy meets, and the share
// maths (jobs, header assembly, merkle root, difficulty and targets).
//
// Stratum v1 is newline-delimited JSON-RPC 1.0 over TCP. A miner subscribes
// (mining.subscribe) and receives an extranonce1 and the size of the
// extranonce2 it must roll; it authorizes (mining.authorize) one or more
// workers; the pool sends a difficulty (mining.set_difficulty) and jobs
// (mining.notify). For each job the miner builds
//
//	coinbase    = coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2
//	merkle root = fold(sha256d(coinbase), branch)
//	header      = version ‖ prevhash ‖ merkle root ‖ ntime ‖ nbits ‖ nonce
//
// and submits (mining.submit) the extranonce2, ntime, nonce and, with BIP310
// version rolling, the rolled version bits of every header whose double
// SHA-256 meets the difficulty.
//
// Nothing here touches sockets, timers or configuration. Decoding works on
// []byte lines; decoded values alias the line unless a doc comment says
// otherwise. Hot messages (mining.submit, mining.notify, mining.set_difficulty
// and the submit answers) have hand-written encoders that append to a
// caller's buffer; rare ones use encoding/json.
package stratum
