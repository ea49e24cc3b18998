package stratum

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Line length limits. A miner's lines are short (a submit is ~150 bytes); a
// pool's notify carries the coinbase halves and the merkle branch, usually a
// few KiB, and must fit a coinbase of MaxCoinbaseLen bytes (twice that in
// hex) with a full branch.
const (
	DefaultMaxLineLen     = 8 << 10
	DefaultMaxPoolLineLen = 2*MaxCoinbaseLen + 8<<10
)

// ErrLineTooLong is returned when a line exceeds the maximum length before a
// newline is seen. The connection should be closed: there is no way to
// resynchronise on a stream that lies about its framing.
var ErrLineTooLong = errors.New("stratum: line too long")

// NextLine returns buf's first complete line without its "\n" or "\r\n" and
// the number of bytes it used. n == 0 means no complete line yet. Lines
// longer than max are an error whether or not their newline has arrived, so
// a peer cannot make the caller buffer without bound.
func NextLine(buf []byte, max int) (line []byte, n int, err error) {
	i := bytes.IndexByte(buf, '\n')
	if i > max || (i < 0 && len(buf) > max) {
		return nil, 0, ErrLineTooLong
	}
	if i < 0 {
		return nil, 0, nil
	}
	line = buf[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, i + 1, nil
}

// LineReader reads newline-delimited lines from a stream with a length
// limit. It is for the goroutine-per-connection side (pool sessions, the
// simulator); the gnet server frames with NextLine.
type LineReader struct {
	r *bufio.Reader
}

// NewLineReader returns a LineReader whose lines may be at most max bytes.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, max+1)}
}

// ReadLine returns the next non-empty line without its line ending. The
// slice is valid until the next call. A line longer than the limit returns
// ErrLineTooLong.
func (lr *LineReader) ReadLine() ([]byte, error) {
	for {
		line, err := lr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, ErrLineTooLong
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return line, nil
	}
}
