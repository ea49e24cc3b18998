package stratum

// Notify is a mining.notify: one job as the pool sends it.
//
// NOTE: PrevHash holds the 32 bytes exactly as the notify's hex spells them.
// Pools send the previous block hash as eight 4-byte words, each word
// byte-reversed relative to the header's byte order; Job.PrevHash (header
// order) swaps them back. Version, NBits and NTime are sent as big-endian
// hex and written little-endian into the header.
type Notify struct {
	JobID    string
	PrevHash [32]byte
	Coinb1   []byte
	Coinb2   []byte
	Branch   [][32]byte // merkle branch, each hash in the byte order it is hashed in
	Version  uint32
	NBits    uint32
	NTime    uint32
	Clean    bool // clean_jobs: earlier jobs are stale
}

// Decode reads mining.notify params: [job_id, prevhash, coinb1, coinb2,
// [branch…], version, nbits, ntime, clean_jobs]. Sizes are bounded by
// MaxCoinbaseLen and MaxBranchLen; the coinbase halves and branch are new
// slices that do not alias params.
func (n *Notify) Decode(params [][]byte) error {
	if len(params) < 9 {
		return ErrBadParams
	}
	id, err := StringParam(params[0])
	if err != nil || len(id) == 0 || len(id) > maxJobIDLen {
		return ErrBadParams
	}
	n.JobID = string(id)
	if _, err := HexParam(n.PrevHash[:], params[1]); err != nil || len(params[1]) != 66 {
		return ErrBadParams
	}
	if n.Coinb1, err = hexAlloc(params[2], MaxCoinbaseLen); err != nil {
		return err
	}
	if n.Coinb2, err = hexAlloc(params[3], MaxCoinbaseLen); err != nil {
		return err
	}
	if n.Branch, err = decodeBranch(params[4]); err != nil {
		return err
	}
	if n.Version, err = Uint32Hex(params[5]); err != nil {
		return err
	}
	if n.NBits, err = Uint32Hex(params[6]); err != nil {
		return err
	}
	if n.NTime, err = Uint32Hex(params[7]); err != nil {
		return err
	}
	if n.Clean, err = BoolParam(params[8]); err != nil {
		return err
	}
	return nil
}

// decodeBranch reads the merkle branch, a JSON array of up to MaxBranchLen
// 32-byte hex hashes, into a new slice.
//
// NOTE: the branch is not split with Message.splitParams: that stops at
// MaxParams (16) values, and a branch has one hash per level of the
// block's transaction tree, more than 16 for a block of more than 65,536
// transactions.
func decodeBranch(val []byte) ([][32]byte, error) {
	if len(val) < 2 || val[0] != '[' {
		return nil, ErrBadParams
	}
	var raw [MaxBranchLen][]byte
	n := 0
	i := skipSpace(val, 1)
	if i < len(val) && val[i] == ']' {
		return [][32]byte{}, nil
	}
	for {
		end, err := skipValue(val, i, 1)
		if err != nil {
			return nil, ErrBadParams
		}
		if n == MaxBranchLen {
			return nil, ErrBadParams
		}
		raw[n] = val[i:end]
		n++
		i = skipSpace(val, end)
		if i >= len(val) {
			return nil, ErrBadParams
		}
		if val[i] == ']' {
			break
		}
		if val[i] != ',' {
			return nil, ErrBadParams
		}
		i = skipSpace(val, i+1)
	}
	branch := make([][32]byte, n)
	for k, h := range raw[:n] {
		if len(h) != 66 {
			return nil, ErrBadParams
		}
		if _, err := HexParam(branch[k][:], h); err != nil {
			return nil, err
		}
	}
	return branch, nil
}

// maxJobIDLen bounds job ids; pools use a few hex digits.
const maxJobIDLen = 64

// AppendJSON appends n as a mining.notify notification line.
func (n *Notify) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":null,"method":"mining.notify","params":[`...)
	dst = appendString(dst, n.JobID)
	dst = append(dst, `,"`...)
	dst = appendHex(dst, n.PrevHash[:])
	dst = append(dst, `","`...)
	dst = appendHex(dst, n.Coinb1)
	dst = append(dst, `","`...)
	dst = appendHex(dst, n.Coinb2)
	dst = append(dst, `",[`...)
	for i := range n.Branch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = appendHex(dst, n.Branch[i][:])
		dst = append(dst, '"')
	}
	dst = append(dst, `],"`...)
	dst = appendUint32Hex(dst, n.Version)
	dst = append(dst, `","`...)
	dst = appendUint32Hex(dst, n.NBits)
	dst = append(dst, `","`...)
	dst = appendUint32Hex(dst, n.NTime)
	if n.Clean {
		dst = append(dst, `",true]}`...)
	} else {
		dst = append(dst, `",false]}`...)
	}
	return append(dst, '\n')
}
