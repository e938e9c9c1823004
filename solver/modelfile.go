package solver

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// The model file: the magic line, a little-endian uint32 format version and
// header length, a JSON header (architecture, information, tensor names and
// shapes), the tensors as little-endian float32 in header order, and the
// SHA-256 of everything before it.
const (
	fileMagic = "ADVCRNN\n"
	// FileVersion is the model file format this build reads and writes.
	FileVersion = 1
	// maxModelBytes bounds what Load reads, so a wrong path cannot exhaust memory.
	maxModelBytes = 1 << 30
)

type fileHeader struct {
	Format  int               `json:"format"`
	Arch    Architecture      `json:"architecture"`
	Info    map[string]string `json:"info,omitempty"`
	Tensors []fileTensor      `json:"tensors"`
}

type fileTensor struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// Marshal encodes the model in the model file format.
func (m *Model) Marshal() []byte {
	h := fileHeader{Format: FileVersion, Arch: m.Arch, Info: m.Info}
	for _, s := range m.Arch.specs() {
		h.Tensors = append(h.Tensors, fileTensor{s.Name, s.Shape})
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		panic(err) // plain structs of strings and ints always marshal
	}
	var b bytes.Buffer
	b.WriteString(fileMagic)
	binary.Write(&b, binary.LittleEndian, uint32(FileVersion))
	binary.Write(&b, binary.LittleEndian, uint32(len(hdr)))
	b.Write(hdr)
	buf := make([]byte, 4)
	for _, t := range m.tensors {
		for _, v := range t {
			binary.LittleEndian.PutUint32(buf, math.Float32bits(v))
			b.Write(buf)
		}
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// Save writes the model file atomically: to a temporary file renamed into place.
func (m *Model) Save(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, m.Marshal(), 0o644); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	return nil
}

// Version identifies the weights: the first 12 hex digits of the file's SHA-256.
func (m *Model) Version() string {
	b := m.Marshal()
	return hex.EncodeToString(b[len(b)-sha256.Size:])[:12]
}

// ErrModel is wrapped by every error about a model file's content.
var ErrModel = errors.New("invalid model file")

// Load reads a model file.
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	m, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

// Unmarshal decodes a model file and checks everything it can: magic,
// version, checksum, architecture, and that the tensors are the ones the
// architecture needs.
func Unmarshal(b []byte) (*Model, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrModel, fmt.Sprintf(format, a...))
	}
	if len(b) > maxModelBytes {
		return nil, bad("larger than %d bytes", maxModelBytes)
	}
	if len(b) < len(fileMagic)+8+sha256.Size || string(b[:len(fileMagic)]) != fileMagic {
		if len(b) >= len(fileMagic) && string(b[:len(fileMagic)]) == fileMagic {
			return nil, bad("truncated: %d bytes", len(b))
		}
		return nil, bad("not an advcaptcha solver model (no %q header)", fileMagic[:7])
	}
	p := len(fileMagic)
	if v := binary.LittleEndian.Uint32(b[p:]); v != FileVersion {
		return nil, bad("format version %d, this build reads version %d", v, FileVersion)
	}
	hlen := int(binary.LittleEndian.Uint32(b[p+4:]))
	p += 8
	if hlen > len(b)-p-sha256.Size {
		return nil, bad("truncated: header of %d bytes does not fit in %d bytes", hlen, len(b))
	}
	var h fileHeader
	if err := json.Unmarshal(b[p:p+hlen], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	p += hlen
	if err := h.Arch.Validate(); err != nil {
		return nil, bad("architecture: %v", err)
	}
	specs := h.Arch.specs()
	if len(h.Tensors) != len(specs) {
		return nil, bad("%d tensors, the architecture needs %d", len(h.Tensors), len(specs))
	}
	want := 0
	for i, s := range specs {
		if h.Tensors[i].Name != s.Name || !slices.Equal(h.Tensors[i].Shape, s.Shape) {
			return nil, bad("tensor %d is %s%v, the architecture needs %s%v", i, h.Tensors[i].Name, h.Tensors[i].Shape, s.Name, s.Shape)
		}
		want += 4 * s.size()
	}
	if got := len(b) - p - sha256.Size; got != want {
		if got < want {
			return nil, bad("truncated: %d bytes of weights, the header describes %d", got, want)
		}
		return nil, bad("%d bytes of weights, the header describes %d", got, want)
	}
	if sum := sha256.Sum256(b[:len(b)-sha256.Size]); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		return nil, bad("checksum mismatch: the file is corrupt")
	}
	m := &Model{Arch: h.Arch, Info: h.Info}
	if m.Info == nil {
		m.Info = map[string]string{}
	}
	for _, s := range specs {
		t := make([]float32, s.size())
		for i := range t {
			t[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[p:]))
			p += 4
		}
		for _, v := range t {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, bad("tensor %s holds NaN or infinite weights", s.Name)
			}
		}
		m.tensors = append(m.tensors, t)
	}
	return m, nil
}

// Reads checks that the model reads the captchas of a style: the same image
// size and the same charset.
func (m *Model) Reads(height, width int, charset string) error {
	a := m.Arch
	if a.Height != height || a.Width != width {
		return fmt.Errorf("the model reads %d×%d images, the captchas are %d×%d", a.Height, a.Width, height, width)
	}
	if a.Charset != charset {
		return fmt.Errorf("the model reads the charset %q, the captchas use %q", a.Charset, charset)
	}
	return nil
}
