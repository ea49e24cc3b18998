package stratum

import (
	"encoding/json"
	"strconv"
)

// Method names of Stratum v1 as a proxy meets them.
const (
	MethodSubscribe           = "mining.subscribe"
	MethodAuthorize           = "mining.authorize"
	MethodConfigure           = "mining.configure"
	MethodSuggestDifficulty   = "mining.suggest_difficulty"
	MethodExtranonceSubscribe = "mining.extranonce.subscribe"
	MethodSubmit              = "mining.submit"
	MethodSetDifficulty       = "mining.set_difficulty"
	MethodNotify              = "mining.notify"
	MethodSetExtranonce       = "mining.set_extranonce"
	MethodSetVersionMask      = "mining.set_version_mask"
	MethodReconnect           = "client.reconnect"
	MethodShowMessage         = "client.show_message"
	MethodGetVersion          = "client.get_version"
)

// AppendResult appends the answer {"id":id,"result":true|false,"error":null}.
func AppendResult(dst, id []byte, ok bool) []byte {
	dst = appendIDPrefix(dst, id)
	if ok {
		dst = append(dst, `"result":true,"error":null}`...)
	} else {
		dst = append(dst, `"result":false,"error":null}`...)
	}
	return append(dst, '\n')
}

// AppendResultRaw appends an answer whose result is the raw JSON value raw.
func AppendResultRaw(dst, id, raw []byte) []byte {
	dst = appendIDPrefix(dst, id)
	dst = append(dst, `"result":`...)
	dst = append(dst, raw...)
	return append(dst, `,"error":null}`+"\n"...)
}

// AppendError appends an error answer with the triple [code, "msg", null].
func AppendError(dst, id []byte, code int, msg string) []byte {
	dst = appendIDPrefix(dst, id)
	dst = append(dst, `"result":null,"error":[`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ',')
	dst = appendString(dst, msg)
	return append(dst, ",null]}\n"...)
}

// AppendReject appends the error answer for a refused share.
func AppendReject(dst, id []byte, r Reason) []byte {
	return AppendError(dst, id, r.Code(), r.Message())
}

func appendIDPrefix(dst, id []byte) []byte {
	dst = append(dst, `{"id":`...)
	if len(id) == 0 {
		id = nullJSON
	}
	dst = append(dst, id...)
	return append(dst, ',')
}

// AppendCall appends a request (id > 0) or notification (id == 0) whose
// params are marshalled with encoding/json. For rare messages only.
func AppendCall(dst []byte, id uint64, method string, params ...any) []byte {
	if params == nil {
		params = []any{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		// Only our own values reach here; an unmarshalable one is a bug.
		p = []byte("[]")
	}
	dst = append(dst, `{"id":`...)
	if id == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendUint(dst, id, 10)
	}
	dst = append(dst, `,"method":`...)
	dst = appendString(dst, method)
	dst = append(dst, `,"params":`...)
	dst = append(dst, p...)
	return append(dst, "}\n"...)
}

// ---- mining.subscribe ----

// Subscribe is a decoded mining.subscribe request. Every param is optional:
// bosminer sends a second null, cgminer a session id to resume.
type Subscribe struct {
	UserAgent string
	SessionID string
}

// ParseSubscribe reads mining.subscribe params. Non-string values where a
// string belongs are ignored rather than refused: nothing depends on them.
func ParseSubscribe(params [][]byte) Subscribe {
	var s Subscribe
	if len(params) > 0 {
		s.UserAgent, _ = OptionalString(params[0])
	}
	if len(params) > 1 {
		s.SessionID, _ = OptionalString(params[1])
	}
	return s
}

// AppendSubscribeResult appends the answer to mining.subscribe:
// [[["mining.set_difficulty",sub],["mining.notify",sub]],extranonce1,en2size].
func AppendSubscribeResult(dst, id []byte, subID string, en1 []byte, en2Size int) []byte {
	dst = appendIDPrefix(dst, id)
	dst = append(dst, `"result":[[["mining.set_difficulty",`...)
	dst = appendString(dst, subID)
	dst = append(dst, `],["mining.notify",`...)
	dst = appendString(dst, subID)
	dst = append(dst, `]],"`...)
	dst = appendHex(dst, en1)
	dst = append(dst, `",`...)
	dst = strconv.AppendInt(dst, int64(en2Size), 10)
	return append(dst, "],\"error\":null}\n"...)
}

// ParseSubscribeResult reads a pool's answer to mining.subscribe and returns
// its extranonce1 (a new slice) and extranonce2 size.
func ParseSubscribeResult(raw []byte) (en1 []byte, en2Size int, err error) {
	var m Message
	if err := m.splitParams(raw); err != nil || len(m.Params) < 3 {
		return nil, 0, ErrBadParams
	}
	en1, err = hexAlloc(m.Params[1], 32)
	if err != nil {
		return nil, 0, err
	}
	n, err := IntParam(m.Params[2])
	if err != nil || n < 1 || n > MaxExtranonce2Size {
		return nil, 0, ErrBadParams
	}
	return en1, int(n), nil
}

// ---- mining.authorize ----

// ParseAuthorize reads mining.authorize params: user and optional password.
func ParseAuthorize(params [][]byte) (user, password string, err error) {
	if len(params) < 1 {
		return "", "", ErrBadParams
	}
	u, err := StringParam(params[0])
	if err != nil || len(u) == 0 {
		return "", "", ErrBadParams
	}
	if len(params) > 1 {
		password, _ = OptionalString(params[1])
	}
	return string(u), password, nil
}

// ---- mining.suggest_difficulty, mining.set_difficulty ----

// ParseDifficulty reads the first param of mining.suggest_difficulty or
// mining.set_difficulty; it must be a positive number (or numeric string).
func ParseDifficulty(params [][]byte) (float64, error) {
	if len(params) < 1 {
		return 0, ErrBadParams
	}
	d, err := FloatParam(params[0])
	if err != nil || d <= 0 {
		return 0, ErrBadParams
	}
	return d, nil
}

// AppendSetDifficulty appends the mining.set_difficulty notification.
func AppendSetDifficulty(dst []byte, d float64) []byte {
	dst = append(dst, `{"id":null,"method":"mining.set_difficulty","params":[`...)
	dst = AppendFloat(dst, d)
	return append(dst, "]}\n"...)
}

// ---- mining.set_extranonce ----

// ParseSetExtranonce reads mining.set_extranonce params.
func ParseSetExtranonce(params [][]byte) (en1 []byte, en2Size int, err error) {
	if len(params) < 2 {
		return nil, 0, ErrBadParams
	}
	en1, err = hexAlloc(params[0], 32)
	if err != nil {
		return nil, 0, err
	}
	n, err := IntParam(params[1])
	if err != nil || n < 1 || n > MaxExtranonce2Size {
		return nil, 0, ErrBadParams
	}
	return en1, int(n), nil
}

// AppendSetExtranonce appends the mining.set_extranonce notification.
func AppendSetExtranonce(dst, en1 []byte, en2Size int) []byte {
	dst = append(dst, `{"id":null,"method":"mining.set_extranonce","params":["`...)
	dst = appendHex(dst, en1)
	dst = append(dst, `",`...)
	dst = strconv.AppendInt(dst, int64(en2Size), 10)
	return append(dst, "]}\n"...)
}

// ---- mining.set_version_mask ----

// ParseVersionMask reads mining.set_version_mask params.
func ParseVersionMask(params [][]byte) (uint32, error) {
	if len(params) < 1 {
		return 0, ErrBadParams
	}
	return Uint32Hex(params[0])
}

// AppendSetVersionMask appends the mining.set_version_mask notification.
func AppendSetVersionMask(dst []byte, mask uint32) []byte {
	dst = append(dst, `{"id":null,"method":"mining.set_version_mask","params":["`...)
	dst = appendUint32Hex(dst, mask)
	return append(dst, "\"]}\n"...)
}

// ---- client.reconnect, client.show_message ----

// Reconnect is a decoded client.reconnect; empty Host and zero Port mean
// "the same server".
type Reconnect struct {
	Host        string
	Port        int
	WaitSeconds int
}

// ParseReconnect reads client.reconnect params [host, port, wait], all
// optional; the port may be a number or a string.
func ParseReconnect(params [][]byte) (Reconnect, error) {
	var r Reconnect
	var err error
	if len(params) > 0 {
		if r.Host, err = OptionalString(params[0]); err != nil {
			return r, ErrBadParams
		}
	}
	if len(params) > 1 && !isNull(params[1]) {
		p, err := IntParam(params[1])
		if err != nil || p > 65535 {
			return r, ErrBadParams
		}
		r.Port = int(p)
	}
	if len(params) > 2 && !isNull(params[2]) {
		w, err := IntParam(params[2])
		if err != nil {
			return r, ErrBadParams
		}
		r.WaitSeconds = int(w)
	}
	return r, nil
}

// AppendReconnect appends client.reconnect; with an empty host the miner
// reconnects to the address it used.
func AppendReconnect(dst []byte, host string, port, wait int) []byte {
	if host == "" {
		return append(dst, `{"id":null,"method":"client.reconnect","params":[]}`+"\n"...)
	}
	return AppendCall(dst, 0, MethodReconnect, host, port, wait)
}

// AppendShowMessage appends client.show_message.
func AppendShowMessage(dst []byte, msg string) []byte {
	return AppendCall(dst, 0, MethodShowMessage, msg)
}
