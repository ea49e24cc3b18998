package stratum

import (
	"encoding/json"
	"math/bits"
	"strconv"
)

// BIP310 extension names.
const (
	ExtVersionRolling      = "version-rolling"
	ExtMinimumDifficulty   = "minimum-difficulty"
	ExtSubscribeExtranonce = "subscribe-extranonce"
)

// Configure is a decoded mining.configure request (BIP310).
type Configure struct {
	Extensions []string // in the order requested

	VersionRolling     bool
	VersionMask        uint32 // the miner's mask ("version-rolling.mask"); ffffffff from WhatsMiner is fine
	VersionMinBitCount int

	MinimumDifficulty bool
	MinDifficulty     float64 // "minimum-difficulty.value"

	SubscribeExtranonce bool
}

// ParseConfigure reads mining.configure params: [[extensions…], {params}].
// Unknown extensions are kept in Extensions so the answer can say false.
func ParseConfigure(params [][]byte) (Configure, error) {
	var c Configure
	if len(params) < 1 {
		return c, ErrBadParams
	}
	if err := json.Unmarshal(params[0], &c.Extensions); err != nil {
		return c, ErrBadParams
	}
	opts := map[string]json.RawMessage{}
	if len(params) > 1 && !isNull(params[1]) {
		if err := json.Unmarshal(params[1], &opts); err != nil {
			return c, ErrBadParams
		}
	}
	for _, ext := range c.Extensions {
		switch ext {
		case ExtVersionRolling:
			c.VersionRolling = true
			c.VersionMask = 0xffffffff // BIP310: the miner may omit the mask
			if v, ok := opts["version-rolling.mask"]; ok {
				m, err := Uint32Hex(v)
				if err != nil {
					return c, ErrBadParams
				}
				c.VersionMask = m
			}
			if v, ok := opts["version-rolling.min-bit-count"]; ok {
				n, err := IntParam(v)
				if err != nil {
					return c, ErrBadParams
				}
				c.VersionMinBitCount = int(n)
			}
		case ExtMinimumDifficulty:
			c.MinimumDifficulty = true
			if v, ok := opts["minimum-difficulty.value"]; ok {
				d, err := FloatParam(v)
				if err != nil {
					return c, ErrBadParams
				}
				c.MinDifficulty = d
			}
		case ExtSubscribeExtranonce:
			c.SubscribeExtranonce = true
		}
	}
	return c, nil
}

// ConfigureResult is switchyard's answer to mining.configure.
type ConfigureResult struct {
	VersionRolling      bool   // true when a non-zero mask was agreed
	VersionMask         uint32 // the agreed mask
	MinimumDifficulty   bool
	SubscribeExtranonce bool
}

// AppendConfigureResult answers a mining.configure for the extensions in
// req, in the order they were asked; unknown extensions are answered false.
func AppendConfigureResult(dst, id []byte, req *Configure, res ConfigureResult) []byte {
	dst = appendIDPrefix(dst, id)
	dst = append(dst, `"result":{`...)
	first := true
	field := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, k)
		dst = append(dst, ':')
	}
	for _, ext := range req.Extensions {
		field(ext)
		switch ext {
		case ExtVersionRolling:
			dst = strconv.AppendBool(dst, res.VersionRolling)
			if res.VersionRolling {
				field("version-rolling.mask")
				dst = append(dst, '"')
				dst = appendUint32Hex(dst, res.VersionMask)
				dst = append(dst, '"')
			}
		case ExtMinimumDifficulty:
			dst = strconv.AppendBool(dst, res.MinimumDifficulty)
		case ExtSubscribeExtranonce:
			dst = strconv.AppendBool(dst, res.SubscribeExtranonce)
		default:
			dst = append(dst, "false"...)
		}
	}
	return append(dst, "},\"error\":null}\n"...)
}

// NegotiateMask returns the version-rolling mask to offer a miner: the
// intersection of its mask and the pool's. BIP310 lets the server refuse
// (mask 0), but refusing when both sides could roll only costs ASICBoost
// efficiency, so callers should answer with this intersection.
func NegotiateMask(miner, pool uint32) uint32 { return miner & pool }

// MaskBits is the number of rollable bits in a mask.
func MaskBits(mask uint32) int { return bits.OnesCount32(mask) }

// ParseConfigureResult reads a pool's answer to mining.configure and returns
// whether version rolling was granted and the mask.
func ParseConfigureResult(raw []byte) (rolling bool, mask uint32, err error) {
	var res map[string]json.RawMessage
	if err := json.Unmarshal(raw, &res); err != nil {
		return false, 0, ErrBadParams
	}
	v, ok := res[ExtVersionRolling]
	if !ok {
		return false, 0, nil
	}
	if rolling, err = BoolParam(v); err != nil {
		return false, 0, err
	}
	if !rolling {
		return false, 0, nil
	}
	m, ok := res["version-rolling.mask"]
	if !ok {
		return false, 0, ErrBadParams
	}
	mask, err = Uint32Hex(m)
	return rolling && mask != 0, mask, err
}

// AppendConfigureRequest appends the mining.configure request switchyard
// sends a pool: version rolling with the given mask.
func AppendConfigureRequest(dst []byte, id uint64, mask uint32) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"`...)
	dst = appendUint32Hex(dst, mask)
	return append(dst, "\",\"version-rolling.min-bit-count\":2}]}\n"...)
}
