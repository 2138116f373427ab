package guestagent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultPortName is the name of the virtio-serial port the agent serves on
// (the name= of QEMU's virtserialport device).
const DefaultPortName = "vflag.agent"

// Operations a Request can ask for.
const (
	// OpExec runs Request.Cmd with /bin/sh -c.
	OpExec = "exec"
	// OpPing asks the agent to answer with an empty, successful Response.
	OpPing = "ping"
)

// MaxOutputBytes caps each of a command's stdout and stderr; the agent keeps
// the first MaxOutputBytes bytes and sets Response.Truncated.
const MaxOutputBytes = 4 << 20

// MaxLineBytes bounds one protocol line. Longer lines are skipped. It leaves
// room for two base64-encoded streams of MaxOutputBytes.
const MaxLineBytes = 16 << 20

// DefaultTimeout is how long a command may run when Request.TimeoutMS is 0.
const DefaultTimeout = 60 * time.Second

// TimeoutExitCode is the exit code reported for a command killed because it
// ran past its timeout (the convention of coreutils timeout(1)).
const TimeoutExitCode = 124

// Request is one line sent by the host.
type Request struct {
	// ID is chosen by the client, unique per request; the response carries it back.
	ID string `json:"id"`
	// Op is OpExec or OpPing.
	Op string `json:"op"`
	// Cmd is the shell command for OpExec.
	Cmd string `json:"cmd,omitempty"`
	// TimeoutMS bounds the command's run time in milliseconds; 0 means DefaultTimeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Response is one line sent by the guest.
type Response struct {
	// ID is the ID of the request this answers.
	ID string `json:"id"`
	// Exit is the command's exit code: 128+N if signal N killed it,
	// TimeoutExitCode on timeout, -1 if it could not be run at all.
	Exit int `json:"exit"`
	// Stdout is the command's standard output (base64 in JSON).
	Stdout []byte `json:"stdout,omitempty"`
	// Stderr is the command's standard error (base64 in JSON).
	Stderr []byte `json:"stderr,omitempty"`
	// Error says why the command did not run to completion; empty if it did.
	Error string `json:"error,omitempty"`
	// TimedOut is set when the command was killed at its timeout.
	TimedOut bool `json:"timed_out,omitempty"`
	// Truncated is set when stdout or stderr exceeded MaxOutputBytes.
	Truncated bool `json:"truncated,omitempty"`
}

// encodeLine renders v as one protocol line: a leading newline that ends any
// partial line left in the stream by an interrupted writer, the JSON object
// and the terminating newline.
func encodeLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	line := make([]byte, 0, len(b)+2)
	line = append(line, '\n')
	line = append(line, b...)
	return append(line, '\n'), nil
}

// errLineTooLong is returned by lineReader.next for a line longer than its
// limit; the line has been skipped and reading may continue.
var errLineTooLong = errors.New("protocol line too long")

// lineReader splits a byte stream into lines of bounded length. A read that
// fails half-way through a line (for example on a deadline) keeps the part
// already read, so a later call continues the same line.
type lineReader struct {
	r   *bufio.Reader
	max int
	// buf holds the current line up to its newline.
	buf []byte
	// returned is set when buf holds a line already handed to the caller.
	returned bool
	// skipping is set while the rest of an over-long line is discarded.
	skipping bool
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its newline. Empty lines are returned
// too. The line is valid until the following call.
func (lr *lineReader) next() ([]byte, error) {
	if lr.returned {
		lr.returned = false
		lr.buf = lr.buf[:0]
		if cap(lr.buf) > 1<<20 {
			lr.buf = nil // do not pin the memory of one huge line
		}
	}
	for {
		frag, err := lr.r.ReadSlice('\n')
		if !lr.skipping {
			if len(lr.buf)+len(frag) > lr.max+1 {
				lr.skipping = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, frag...)
			}
		}
		switch {
		case err == nil && lr.skipping:
			lr.skipping = false
			return nil, errLineTooLong
		case err == nil:
			lr.returned = true
			return lr.buf[:len(lr.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			// Keep what was read of this line: the caller may call again.
			return nil, err
		}
	}
}
