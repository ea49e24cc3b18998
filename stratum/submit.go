package stratum

import "strconv"

// MaxExtranonce2Size bounds extranonce2 (bytes). Pools use 2 to 8.
const MaxExtranonce2Size = 16

// Submit is a decoded mining.submit. Worker and JobID alias the line they
// were decoded from; Extranonce2 points into the Submit itself.
type Submit struct {
	Worker      []byte
	JobID       []byte
	Extranonce2 []byte
	NTime       uint32
	Nonce       uint32
	Version     uint32 // rolled version bits (BIP310), valid when HasVersion
	HasVersion  bool

	en2 [MaxExtranonce2Size]byte
}

// Decode reads mining.submit params: [worker, job_id, extranonce2, ntime,
// nonce] and an optional sixth, the rolled version bits (BIP310). Params
// past the sixth are ignored. It allocates nothing.
func (s *Submit) Decode(params [][]byte) error {
	if len(params) < 5 {
		return ErrBadParams
	}
	var err error
	if s.Worker, err = StringParam(params[0]); err != nil {
		return err
	}
	if s.JobID, err = StringParam(params[1]); err != nil || len(s.JobID) == 0 {
		return ErrBadParams
	}
	if s.Extranonce2, err = HexParam(s.en2[:], params[2]); err != nil {
		return err
	}
	if s.NTime, err = Uint32Hex(params[3]); err != nil {
		return err
	}
	if s.Nonce, err = Uint32Hex(params[4]); err != nil {
		return err
	}
	s.Version, s.HasVersion = 0, false
	if len(params) > 5 && !isNull(params[5]) {
		if s.Version, err = Uint32Hex(params[5]); err != nil {
			return err
		}
		s.HasVersion = true
	}
	return nil
}

// AppendSubmit appends a mining.submit request as switchyard sends it to a
// pool. en2 is the full extranonce2 (pad ‖ prefix ‖ miner's extranonce2).
func AppendSubmit(dst []byte, id uint64, worker, jobID string, en2 []byte, ntime, nonce, version uint32, hasVersion bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":"mining.submit","params":[`...)
	dst = appendString(dst, worker)
	dst = append(dst, ',')
	dst = appendString(dst, jobID)
	dst = append(dst, `,"`...)
	dst = appendHex(dst, en2)
	dst = append(dst, `","`...)
	dst = appendUint32Hex(dst, ntime)
	dst = append(dst, `","`...)
	dst = appendUint32Hex(dst, nonce)
	if hasVersion {
		dst = append(dst, `","`...)
		dst = appendUint32Hex(dst, version)
	}
	return append(dst, "\"]}\n"...)
}
