package guestagent

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its chunks one Read at a time; a chunk "!" is a
// transient error, as a read deadline would produce.
type chunkReader struct{ chunks []string }

var errTransient = errors.New("transient")

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	c := r.chunks[0]
	r.chunks = r.chunks[1:]
	if c == "!" {
		return 0, errTransient
	}
	return copy(p, c), nil
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks []string
		max    int
		// want renders every result of next until EOF: the line, or <error>.
		want []string
	}{
		{name: "lines", chunks: []string{"a\nbb\n\nc"}, max: 10, want: []string{"a", "bb", "", "<EOF>"}},
		{name: "line split across reads", chunks: []string{"ab", "cd\ne", "f\n"}, max: 10, want: []string{"abcd", "ef", "<EOF>"}},
		{name: "error mid-line keeps the part read", chunks: []string{"ab", "!", "cd\n"}, max: 10, want: []string{"<transient>", "abcd", "<EOF>"}},
		{name: "over-long line skipped", chunks: []string{"0123456789abc\nok\n"}, max: 10, want: []string{"<too long>", "ok", "<EOF>"}},
		{name: "over-long line across reads", chunks: []string{"01234567", "89abc", "def\nok\n"}, max: 10, want: []string{"<too long>", "ok", "<EOF>"}},
		{name: "line of exactly max", chunks: []string{"0123456789\n"}, max: 10, want: []string{"0123456789", "<EOF>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lr := newLineReader(&chunkReader{chunks: tt.chunks}, tt.max)
			var got []string
			for range 10 {
				line, err := lr.next()
				switch {
				case errors.Is(err, io.EOF):
					got = append(got, "<EOF>")
				case errors.Is(err, errLineTooLong):
					got = append(got, "<too long>")
				case errors.Is(err, errTransient):
					got = append(got, "<transient>")
				case err != nil:
					got = append(got, "<"+err.Error()+">")
				default:
					got = append(got, string(line))
				}
				if errors.Is(err, io.EOF) {
					break
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLineReaderOneByteReads(t *testing.T) {
	t.Parallel()
	lr := newLineReader(iotest.OneByteReader(strings.NewReader("{\"id\":\"1\"}\nx\n")), MaxLineBytes)
	for _, want := range []string{`{"id":"1"}`, "x"} {
		line, err := lr.next()
		if err != nil || string(line) != want {
			t.Fatalf("next() = %q, %v; want %q", line, err, want)
		}
	}
}

func TestEncodeLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{
			name: "request", v: Request{ID: "ab", Op: OpExec, Cmd: "ip -j link", TimeoutMS: 1500},
			want: "\n{\"id\":\"ab\",\"op\":\"exec\",\"cmd\":\"ip -j link\",\"timeout_ms\":1500}\n",
		},
		{name: "ping", v: Request{ID: "ab", Op: OpPing}, want: "\n{\"id\":\"ab\",\"op\":\"ping\"}\n"},
		{
			name: "response", v: Response{ID: "ab", Exit: 1, Stdout: []byte("hi\n"), Truncated: true},
			want: "\n{\"id\":\"ab\",\"exit\":1,\"stdout\":\"aGkK\",\"truncated\":true}\n",
		},
		{
			name: "newline in command stays escaped", v: Request{ID: "c", Op: OpExec, Cmd: "a\nb"},
			want: "\n{\"id\":\"c\",\"op\":\"exec\",\"cmd\":\"a\\nb\"}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := encodeLine(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
