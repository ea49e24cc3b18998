package sim

import (
	"fmt"
	"net"
	"strings"

	"switchyard/stratum"
)

// Firmware names, the values of FleetConfig.Firmware besides "" (the
// fleet's own behaviour, see Fleet).
const (
	// FirmwareCgminer is cgminer and the firmwares built on it: Antminer
	// bmminer, Whatsminer btminer, Avalon. Modelled on cgminer util.c
	// (initiate_stratum, parse_notify, parse_diff, parse_method) and
	// cgminer.c (gen_stratum_work, stale_work, stratum_sthread), as in
	// kanoi/cgminer, with mining.set_extranonce as bmminer's util.c
	// handles it.
	FirmwareCgminer = "cgminer"
	// FirmwareESPMiner is ESP-Miner, the Bitaxe firmware. Modelled on
	// bitaxeorg/ESP-Miner main/tasks/stratum_task.c, create_jobs_task.c,
	// asic_result_task.c and components/stratum/stratum_api.c, mining.c.
	FirmwareESPMiner = "esp-miner"
	// FirmwareBraiins is Braiins OS (bosminer). Its V1 client is closed
	// source; the handshake follows the V1 side of braiins/braiins-open
	// stratum-proxy/src/translation.rs (mining.configure answered before
	// mining.subscribe, BIP320 mask, set_version_mask ignored, mining.ping
	// answered), the work handling cgminer's, from which Braiins OS grew.
	FirmwareBraiins = "braiins"
	// FirmwareCPUMiner is pooler's cpuminer (minerd). Modelled on
	// pooler/cpuminer cpu-miner.c (stratum_thread, miner_thread,
	// stratum_gen_work, submit_upstream_work) and util.c (stratum_notify,
	// stratum_subscribe, stratum_handle_method).
	FirmwareCPUMiner = "cpuminer"
)

// Reasons a share found was not submitted, the keys of
// FleetStats.Unsubmitted.
const (
	// UnsubmittedStale: found on work of a block the miner no longer
	// mines (cgminer, Braiins OS, cpuminer: the previous block hash
	// changed; ESP-Miner: a clean_jobs notify came since).
	UnsubmittedStale = "stale"
	// UnsubmittedExtranonce2Size: the firmware hashes but cannot submit
	// this extranonce2 size (cgminer: over 8 bytes).
	UnsubmittedExtranonce2Size = "extranonce2_size"
	// UnsubmittedSuperseded: held back by MaxSharesPerSecond while its
	// work was replaced (Firmware "" only).
	UnsubmittedSuperseded = "superseded"
)

var unsubmittedReasons = []string{UnsubmittedStale, UnsubmittedExtranonce2Size, UnsubmittedSuperseded}

// methodPing is the keep-alive some pools send; stratum has no constant
// for it because switchyard itself never sends or answers one.
const methodPing = "mining.ping"

// Firmwares returns the names FleetConfig.Firmware accepts besides "".
func Firmwares() []string {
	return []string{FirmwareCgminer, FirmwareESPMiner, FirmwareBraiins, FirmwareCPUMiner}
}

// ParseFirmware returns the firmware name for s, case-insensitively, also
// from the name of a firmware a profile stands for ("bmminer", "btminer",
// "avalon" → cgminer; "bitaxe" → esp-miner; "bosminer", "braiins-os" →
// braiins; "minerd" → cpuminer). "" stays "".
func ParseFirmware(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case FirmwareCgminer, "bmminer", "btminer", "avalon":
		return FirmwareCgminer, nil
	case FirmwareESPMiner, "espminer", "bitaxe":
		return FirmwareESPMiner, nil
	case FirmwareBraiins, "bosminer", "braiins-os", "braiinsos":
		return FirmwareBraiins, nil
	case FirmwareCPUMiner, "minerd":
		return FirmwareCPUMiner, nil
	}
	return "", fmt.Errorf("sim: unknown firmware %q (want one of %s)", s, strings.Join(Firmwares(), ", "))
}

// How a firmware meets some requests and notifications.
type (
	configurePolicy uint8 // whether mining.configure opens the session
	xnPolicy        uint8 // what mining.set_extranonce does
	pingPolicy      uint8 // how mining.ping is answered
	reconnectPolicy uint8 // where client.reconnect leads
)

const (
	configureIfRolling configurePolicy = iota + 1 // when FleetConfig.VersionRolling
	configureAlways
	configureNever
)

const (
	xnNextNotify   xnPolicy = iota + 1 // applies from the next mining.notify
	xnIfSubscribed                     // the same, once mining.extranonce.subscribe was sent
	xnNextWork                         // applies to the next work item, even of the current job
	xnIgnore
)

const (
	pingUnknown pingPolicy = iota + 1 // treated as any unknown method
	pingResult                        // {"id":n,"result":"pong","error":null}
	pingMethod                        // {"id":n,"method":"pong","params":[]}
)

const (
	reconnectAsAsked    reconnectPolicy = iota + 1 // host and port as given, empty ones unchanged
	reconnectSameHost                              // refused unless the host keeps the domain (the part after its first dot)
	reconnectNeedsBoth                             // ignored unless both host and port are given
	reconnectConfigured                            // drop the connection, dial the configured address again at once
)

// Item sizes in nonces: how much work an ASIC or a CPU thread takes on at
// a time. A non-clean notify waits for the item in hand to end.
const (
	asicItemNonces = 1 << 14
	cpuScanNonces  = 1 << 16
)

// firmware is the behaviour a FleetConfig.Firmware stands for. The zero
// value is never used: firmwareProfile returns a complete one.
type firmware struct {
	name      string
	userAgent string // when FleetConfig.UserAgent is empty

	configure      configurePolicy
	askMask        uint32 // version-rolling mask asked for in mining.configure
	configureFirst bool   // wait for mining.configure's answer before mining.subscribe
	authorizeEarly bool   // send mining.authorize with mining.subscribe, not after its answer
	subscribeNull  bool   // mining.subscribe params end in null (bosminer)
	extranonceSub  bool   // honour FleetConfig.ExtranonceSubscribe
	suggest        bool   // honour FleetConfig.SuggestDifficulty
	afterAuthorize bool   // suggest_difficulty and extranonce.subscribe follow the authorize answer

	minEn2, maxSubmitEn2 int // extranonce2 sizes: refuse below minEn2; never submit above maxSubmitEn2 (0: no bound)
	en2LittleEndian      bool

	setExtranonce  xnPolicy
	versionMask    bool // apply mining.set_version_mask from the next job
	stackDiff      bool // set_difficulty applies one per notify, queued (cgminer parse_diff)
	ping           pingPolicy
	getVersion     bool
	showMessageAck bool // answer client.show_message true when it has an id
	unknownError   bool // answer unknown methods with an error
	reconnect      reconnectPolicy
	reconnectWait  bool // honour client.reconnect's wait (the others reconnect at once)

	// Work handling; items is false for "": every notify replaces the
	// work at once and extranonce2 counts up for the miner's whole life.
	items          bool
	itemNonces     uint32
	abandonOnBlock bool // a previous-block-hash change abandons the item in hand, clean_jobs or not
	sameIDNoop     bool // a notify repeating the job id in hand starts nothing (cpuminer)
	resetOnClean   bool // extranonce2 restarts at 0 on clean_jobs
	resetOnNotify  bool // extranonce2 restarts at 0 on every notify
	resetOnNewID   bool // extranonce2 restarts at 0 when the job id changes
	staleOnBlock   bool // shares of an earlier block are not submitted
	staleOnClean   bool // shares of jobs before a clean_jobs notify are not submitted
}

// firmwareProfile returns the firmware named name, which ParseFirmware returned.
func firmwareProfile(name string) firmware {
	switch name {
	case FirmwareCgminer:
		// initiate_stratum refuses n2size < 2 (and > 16); stratum_sthread
		// will not submit work with nonce2_len > 8. gen_stratum_work
		// writes nonce2 little-endian and parse_notify zeroes it on
		// clean; stale_work(share) discards only work of an earlier
		// block (work_block, bumped by a new prevhash), so shares of
		// older jobs of the current block are still submitted.
		return firmware{
			name: name, userAgent: "cgminer/4.12.1",
			configure: configureIfRolling, askMask: 0xffffffff, configureFirst: true,
			extranonceSub: true, suggest: true, afterAuthorize: true,
			minEn2: 2, maxSubmitEn2: 8, en2LittleEndian: true,
			setExtranonce: xnIfSubscribed, versionMask: true, stackDiff: true,
			ping: pingResult, getVersion: true, reconnect: reconnectSameHost,
			items: true, itemNonces: asicItemNonces, abandonOnBlock: true,
			resetOnClean: true, staleOnBlock: true,
		}
	case FirmwareESPMiner:
		// stratum_task sends configure, subscribe and authorize at once,
		// suggest_difficulty (and extranonce.subscribe) after the
		// authorize answer. create_jobs_task zeroes extranonce_2 for every
		// notify it dequeues and sends the next ASIC job at once only for
		// clean_jobs; cleanQueue invalidates valid_jobs, so older results
		// are dropped. Each bm_job keeps pool_diff, and asic_result_task
		// submits a nonce only when it meets it. set_extranonce changes
		// the extranonce for the next job generated; client.reconnect
		// redials the configured pool.
		return firmware{
			name: name, userAgent: "bitaxe/BM1370/v2.9.0",
			configure: configureAlways, askMask: 0xffffffff, authorizeEarly: true,
			extranonceSub: true, suggest: true, afterAuthorize: true,
			en2LittleEndian: true,
			setExtranonce:   xnNextWork, versionMask: true,
			ping: pingMethod, reconnect: reconnectConfigured,
			items: true, itemNonces: asicItemNonces,
			resetOnNotify: true, staleOnClean: true,
		}
	case FirmwareBraiins:
		return firmware{
			name: name, userAgent: "bosminer/1.0",
			configure: configureAlways, askMask: 0x1fffe000, configureFirst: true, subscribeNull: true,
			en2LittleEndian: true,
			setExtranonce:   xnIgnore,
			ping:            pingResult, reconnect: reconnectAsAsked,
			items: true, itemNonces: asicItemNonces, abandonOnBlock: true,
			resetOnClean: true, staleOnBlock: true,
		}
	case FirmwareCPUMiner:
		// stratum_thread makes new work only when the job id changes and
		// restarts the threads only for clean_jobs; miner_thread takes new
		// work when its scan ends, so shares of the previous job follow a
		// notify. stratum_notify zeroes xnonce2 for a new job id and takes
		// next_diff; submit_upstream_work drops shares of an earlier
		// prevhash. No configure, suggest_difficulty, extranonce
		// subscription or mining.ping.
		return firmware{
			name: name, userAgent: "cpuminer/2.5.1",
			configure:       configureNever,
			en2LittleEndian: true,
			setExtranonce:   xnIgnore,
			ping:            pingUnknown, getVersion: true, showMessageAck: true, reconnect: reconnectNeedsBoth,
			items: true, itemNonces: cpuScanNonces, sameIDNoop: true,
			resetOnNewID: true, staleOnBlock: true,
		}
	}
	return firmware{
		name: "", userAgent: DefaultUserAgent,
		configure: configureIfRolling, askMask: DefaultMinerMask,
		extranonceSub: true, suggest: true,
		setExtranonce: xnNextNotify, versionMask: true,
		ping: pingUnknown, getVersion: true, unknownError: true,
		reconnect: reconnectAsAsked, reconnectWait: true,
	}
}

// configures reports whether a session opens with mining.configure.
func (fw *firmware) configures(cfg *FleetConfig) bool {
	switch fw.configure {
	case configureAlways:
		return true
	case configureIfRolling:
		return cfg.VersionRolling
	}
	return false
}

// putExtranonce2 writes the counter v into b in the firmware's byte order
// and returns b. cgminer, ESP-Miner and cpuminer copy a little-endian
// integer into the coinbase, so the hex counts 00000000, 01000000, …;
// stratumsim's own miners count big-endian.
func (fw *firmware) putExtranonce2(b []byte, v uint64) []byte {
	if !fw.en2LittleEndian {
		return putCounter(b, v)
	}
	for i := range b {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// jobChange is how a notify relates to the job before it.
type jobChange struct {
	clean, newID, newBlock bool
}

// abandons reports whether a notify makes the miner drop the work item in
// hand at once (otherwise it finishes the item first).
func (fw *firmware) abandons(c jobChange) bool {
	switch {
	case !fw.items:
		return true
	case fw.sameIDNoop && !c.newID:
		return false
	}
	return c.clean || fw.abandonOnBlock && c.newBlock
}

// resetsExtranonce2 reports whether a notify restarts extranonce2 at 0.
func (fw *firmware) resetsExtranonce2(c jobChange) bool {
	return fw.resetOnNotify || fw.resetOnClean && c.clean || fw.resetOnNewID && c.newID
}

// invalidates reports whether a notify makes the shares of all earlier
// work stale.
func (fw *firmware) invalidates(c jobChange) bool {
	return fw.staleOnBlock && c.newBlock || fw.staleOnClean && c.clean
}

// reconnectTarget returns where client.reconnect r sent to a miner on cur
// (configured: the fleet's address) leads, or ok false when the firmware
// refuses it and stays connected.
func (fw *firmware) reconnectTarget(cur, configured string, r stratum.Reconnect) (addr string, wait int, ok bool) {
	switch fw.reconnect {
	case reconnectConfigured:
		// ESP-Miner closes the connection and its stratum task dials
		// the pool it is configured with, whatever the pool asked.
		return configured, 0, true
	case reconnectNeedsBoth:
		if r.Host == "" || r.Port == 0 {
			return "", 0, false // cpuminer stratum_reconnect: nothing to go to
		}
	case reconnectSameHost:
		// cgminer parse_reconnect: the part of the host after its first
		// dot must match the current one's.
		if r.Host != "" {
			host, _, err := net.SplitHostPort(cur)
			if err != nil || !sameDomain(host, r.Host) {
				return "", 0, false
			}
		}
	}
	if fw.reconnectWait {
		wait = r.WaitSeconds
	}
	return reconnectAddr(cur, r), wait, true
}

// sameDomain compares what follows the first dot of a and b; a host
// without a dot matches nothing.
func sameDomain(a, b string) bool {
	i, j := strings.IndexByte(a, '.'), strings.IndexByte(b, '.')
	return i >= 0 && j >= 0 && a[i:] == b[j:]
}
