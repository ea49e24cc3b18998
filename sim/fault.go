package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// FaultMode is how a simulated pool misbehaves. The zero value is
// FaultNormal, so a zero Fault means "no fault" (unlike stratum's enums,
// where zero means unset: here there is no unset state).
type FaultMode uint8

// Fault modes; see Pool.SetFault for what each does on the wire.
const (
	FaultNormal    FaultMode = iota // serve everything
	FaultClose                      // drop every connection and refuse new ones
	FaultBlackhole                  // freeze: read nothing, write nothing, serve no new connection
	FaultReject                     // answer every share with error 20 "Pool rejecting"
	FaultSlow                       // delay everything sent by Fault.Delay
	FaultFlap                       // alternate close and normal every Fault.Period
)

const numFaultModes = FaultFlap + 1

var faultNames = [numFaultModes]string{"normal", "close", "blackhole", "reject", "slow", "flap"}

// String returns the mode's name as ParseFaultMode accepts it.
func (m FaultMode) String() string {
	if m < numFaultModes {
		return faultNames[m]
	}
	return fmt.Sprintf("fault(%d)", uint8(m))
}

// ParseFaultMode returns the mode called s ("normal", "close", "blackhole",
// "reject", "slow" or "flap").
func ParseFaultMode(s string) (FaultMode, error) {
	for m, name := range faultNames {
		if s == name {
			return FaultMode(m), nil
		}
	}
	return 0, fmt.Errorf("sim: unknown fault mode %q (want normal, close, blackhole, reject, slow or flap)", s)
}

// Fault is a pool's fault setting.
type Fault struct {
	Mode   FaultMode
	Delay  time.Duration // FaultSlow: how late everything is sent
	Period time.Duration // FaultFlap: how long each half (down, up) lasts
}

// Validate reports a Fault that cannot be applied.
func (f Fault) Validate() error {
	switch {
	case f.Mode >= numFaultModes:
		return fmt.Errorf("sim: unknown fault mode %d", f.Mode)
	case f.Mode == FaultSlow && f.Delay <= 0:
		return fmt.Errorf("sim: fault slow needs a delay > 0")
	case f.Mode == FaultFlap && f.Period <= 0:
		return fmt.Errorf("sim: fault flap needs a period > 0")
	}
	return nil
}

// String describes f, e.g. "slow delay=2s" or "flap period=5s".
func (f Fault) String() string {
	switch f.Mode {
	case FaultSlow:
		return fmt.Sprintf("slow delay=%s", f.Delay)
	case FaultFlap:
		return fmt.Sprintf("flap period=%s", f.Period)
	}
	return f.Mode.String()
}

// faultJSON is the body of GET/POST /fault.
type faultJSON struct {
	Mode   string `json:"mode"`
	Delay  string `json:"delay,omitempty"`
	Period string `json:"period,omitempty"`
	Down   bool   `json:"down"` // listener closed right now (close, or flap's down half)
}

// ControlHandler serves a pool's control API, meant for a loopback address:
//
//	GET  /fault                                   current fault as JSON
//	POST /fault?mode=slow&delay=2s&period=5s      set the fault (mode required)
//	GET  /stats                                   PoolStats as JSON
//	POST /job?clean=true                          issue a job now
//	POST /reconnect?host=&port=&wait=             send client.reconnect to every connection
//	POST /difficulty?value=0.001                  Pool.SetDifficulty on every connection
//	POST /resend                                  Pool.ResendJob: the current job again, clean_jobs=true
func ControlHandler(p *Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fault", func(w http.ResponseWriter, r *http.Request) {
		writeFault(w, p)
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var f Fault
		var err error
		if f.Mode, err = ParseFaultMode(q.Get("mode")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for name, dst := range map[string]*time.Duration{"delay": &f.Delay, "period": &f.Period} {
			if v := q.Get(name); v != "" {
				if *dst, err = time.ParseDuration(v); err != nil {
					http.Error(w, fmt.Sprintf("sim: %s: %v", name, err), http.StatusBadRequest)
					return
				}
			}
		}
		if err := p.SetFault(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeFault(w, p)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, p.Stats())
	})
	mux.HandleFunc("POST /job", func(w http.ResponseWriter, r *http.Request) {
		p.PushJob(r.URL.Query().Get("clean") == "true")
		writeJSON(w, p.Stats())
	})
	mux.HandleFunc("POST /reconnect", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		port, err1 := strconv.Atoi(defaultStr(q.Get("port"), "0"))
		wait, err2 := strconv.Atoi(defaultStr(q.Get("wait"), "0"))
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, "sim: reconnect: "+err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]int{"sent": p.Reconnect(q.Get("host"), port, wait)})
	})
	mux.HandleFunc("POST /difficulty", func(w http.ResponseWriter, r *http.Request) {
		d, err := strconv.ParseFloat(r.URL.Query().Get("value"), 64)
		if err == nil {
			var n int
			if n, err = p.SetDifficulty(d); err == nil {
				writeJSON(w, map[string]int{"changed": n})
				return
			}
		}
		http.Error(w, "sim: difficulty: "+err.Error(), http.StatusBadRequest)
	})
	mux.HandleFunc("POST /resend", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int{"sent": p.ResendJob()})
	})
	return mux
}

func writeFault(w http.ResponseWriter, p *Pool) {
	f, down := p.FaultState()
	j := faultJSON{Mode: f.Mode.String(), Down: down}
	if f.Delay > 0 {
		j.Delay = f.Delay.String()
	}
	if f.Period > 0 {
		j.Period = f.Period.String()
	}
	writeJSON(w, j)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func defaultStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
