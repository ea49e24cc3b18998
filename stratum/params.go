package stratum

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
)

// Helpers that read raw JSON param values. They accept what real firmwares
// send when its meaning is unambiguous (a number sent as a string, hex in
// either case) and return ErrBadParams for the rest.

// StringParam returns the raw JSON string v unquoted. Strings without
// escapes alias v; escaped ones are decoded into a new slice. A JSON number
// is returned as its text (some firmwares send job ids as numbers).
func StringParam(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, ErrBadParams
	}
	switch c := v[0]; {
	case c == '"':
		if !hasEscape(v) {
			return v[1 : len(v)-1], nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, ErrBadParams
		}
		return []byte(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return v, nil
	}
	return nil, ErrBadParams
}

// OptionalString is StringParam that maps null and absent to "".
func OptionalString(v []byte) (string, error) {
	if len(v) == 0 || isNull(v) {
		return "", nil
	}
	s, err := StringParam(v)
	return string(s), err
}

// Uint32Hex reads a JSON string of 1 to 8 hex digits as a big-endian uint32
// (ntime, nonce, version, nbits and masks are sent this way).
func Uint32Hex(v []byte) (uint32, error) {
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return 0, ErrBadParams
	}
	s := v[1 : len(v)-1]
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s) == 0 || len(s) > 8 {
		return 0, ErrBadParams
	}
	var x uint32
	for _, c := range s {
		d := unhex(c)
		if d < 0 {
			return 0, ErrBadParams
		}
		x = x<<4 | uint32(d)
	}
	return x, nil
}

// HexParam decodes a JSON hex string into dst and returns the filled part.
// It fails when the string is odd-length, not hex or longer than dst.
func HexParam(dst, v []byte) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, ErrBadParams
	}
	s := v[1 : len(v)-1]
	if len(s)%2 != 0 || len(s)/2 > len(dst) {
		return nil, ErrBadParams
	}
	for i := 0; i < len(s); i += 2 {
		hi, lo := unhex(s[i]), unhex(s[i+1])
		if hi < 0 || lo < 0 {
			return nil, ErrBadParams
		}
		dst[i/2] = byte(hi<<4 | lo)
	}
	return dst[:len(s)/2], nil
}

// hexAlloc decodes a JSON hex string of at most max bytes into a new slice.
func hexAlloc(v []byte, max int) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || (len(v)-2)/2 > max {
		return nil, ErrBadParams
	}
	out := make([]byte, (len(v)-2)/2)
	b, err := HexParam(out, v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// FloatParam reads a positive-or-zero finite number, also when sent as a
// numeric string ("1024").
func FloatParam(v []byte) (float64, error) {
	if len(v) == 0 {
		return 0, ErrBadParams
	}
	s := v
	if s[0] == '"' {
		if len(s) < 3 {
			return 0, ErrBadParams
		}
		s = s[1 : len(s)-1]
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, ErrBadParams
	}
	return f, nil
}

// IntParam reads an integer, also when sent as a numeric string.
func IntParam(v []byte) (int64, error) {
	f, err := FloatParam(v)
	if err != nil || f != math.Trunc(f) || f > math.MaxInt32 {
		// Negative numbers and fractions are not meaningful anywhere an
		// integer param appears in Stratum v1.
		return 0, ErrBadParams
	}
	return int64(f), nil
}

// BoolParam reads true/false, also 1/0 and "true"/"false".
func BoolParam(v []byte) (bool, error) {
	switch string(v) {
	case "true", `"true"`, "1":
		return true, nil
	case "false", `"false"`, "0", "null":
		return false, nil
	}
	return false, ErrBadParams
}

// IsTrue reports whether a raw result is JSON true.
func IsTrue(v []byte) bool { return string(v) == "true" }

// ErrorParam decodes a raw JSON error: the triple [code, "message", data],
// an object {"code":…, "message":…}, or a bare string.
func ErrorParam(v []byte) (code int, msg string) {
	if len(v) == 0 || isNull(v) {
		return 0, ""
	}
	var triple []json.RawMessage
	if json.Unmarshal(v, &triple) == nil && len(triple) >= 1 {
		var c float64
		_ = json.Unmarshal(triple[0], &c)
		if len(triple) >= 2 {
			_ = json.Unmarshal(triple[1], &msg)
		}
		return int(c), msg
	}
	var obj struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(v, &obj) == nil {
		return obj.Code, obj.Message
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return CodeOther, s
	}
	return CodeOther, string(v)
}

// appendHex appends the hex encoding of b.
func appendHex(dst, b []byte) []byte { return hex.AppendEncode(dst, b) }

// appendUint32Hex appends x as 8 lowercase big-endian hex digits.
func appendUint32Hex(dst []byte, x uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(x>>uint(shift))&0xf])
	}
	return dst
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', digits[c>>4], digits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// AppendFloat appends a difficulty as a JSON number: integers without a
// fraction or exponent (some firmwares parse difficulty with atoi-like
// code), fractions in shortest form.
func AppendFloat(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && f < 1e18 {
		return strconv.AppendFloat(dst, f, 'f', 0, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
