package train

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/netssm/netssm/internal/atomicfile"
)

// checkpointMagic opens every checkpoint file; the format is
//
//	magic (8 bytes) | header length (uint64 LE) | header JSON |
//	tensor data (float32 LE, in header order) | CRC-32C of everything before (uint32 LE)
//
// so a truncated or corrupted file is detected before anything is used.
const checkpointMagic = "NSSMCKP1"

// TensorEntry describes one tensor stored in a checkpoint.
type TensorEntry struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// CheckpointHeader is the self-description of a checkpoint: enough to resume
// with no flags (the run config is in it) and to know what it holds.
type CheckpointHeader struct {
	Step        int64           `json:"step"`
	Tokens      int64           `json:"tokens"`
	BestVal     float64         `json:"best_val_loss"`
	ValLoss     float64         `json:"val_loss"`
	RunConfig   json.RawMessage `json:"run_config"`
	DataState   json.RawMessage `json:"data_state"` // the loader's position
	RNGState    []byte          `json:"rng_state"`
	Tensors     []TensorEntry   `json:"tensors"`
	NetssmBuild string          `json:"netssm_version,omitempty"`
}

// Checkpoint is a header plus the tensors it names, in the same order.
type Checkpoint struct {
	Header CheckpointHeader
	Data   [][]float32
}

// Tensor returns the data of a named tensor.
func (c *Checkpoint) Tensor(name string) ([]float32, bool) {
	for i, e := range c.Header.Tensors {
		if e.Name == name {
			return c.Data[i], true
		}
	}
	return nil, false
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// WriteCheckpoint writes c to path atomically (temp file + rename).
func WriteCheckpoint(path string, c *Checkpoint) error {
	if len(c.Data) != len(c.Header.Tensors) {
		return fmt.Errorf("checkpoint %s: %d tensors named, %d given", path, len(c.Header.Tensors), len(c.Data))
	}
	for i, e := range c.Header.Tensors {
		if n := numel(e.Shape); n != int64(len(c.Data[i])) {
			return fmt.Errorf("checkpoint %s: tensor %s has shape %v (%d values) but %d given", path, e.Name, e.Shape, n, len(c.Data[i]))
		}
	}
	hdr, err := json.Marshal(c.Header)
	if err != nil {
		return fmt.Errorf("encoding checkpoint header: %w", err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		crc := crc32.New(crcTable)
		bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
		bw.WriteString(checkpointMagic)
		binary.Write(bw, binary.LittleEndian, uint64(len(hdr)))
		bw.Write(hdr)
		buf := make([]byte, 0, 1<<16)
		for _, d := range c.Data {
			for _, v := range d {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				if len(buf) >= 1<<16-4 {
					if _, err := bw.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		bw.Write(buf)
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("writing checkpoint %s: %w", path, err)
		}
		return binary.Write(w, binary.LittleEndian, crc.Sum32())
	})
}

// ErrCorruptCheckpoint marks a checkpoint that cannot be trusted.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// ReadCheckpoint reads and verifies a checkpoint file.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return parseCheckpoint(path, raw)
}

// parseCheckpoint verifies and decodes the bytes of the checkpoint file
// path. Every length and count the file states (header length, tensor
// shapes) is checked against the bytes it has before anything is allocated.
func parseCheckpoint(path string, raw []byte) (*Checkpoint, error) {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrCorruptCheckpoint, path, fmt.Sprintf(why, args...))
	}
	const fixed = len(checkpointMagic) + 8
	if len(raw) < fixed+4 || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return nil, bad("not a netssm checkpoint (bad magic or too short)")
	}
	body, trailer := raw[:len(raw)-4], raw[len(raw)-4:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(trailer) {
		return nil, bad("checksum mismatch (truncated or damaged)")
	}
	n := binary.LittleEndian.Uint64(body[len(checkpointMagic):])
	if n > uint64(len(body)-fixed) {
		return nil, bad("header length %d exceeds the %d bytes after it", n, len(body)-fixed)
	}
	c := &Checkpoint{}
	if err := json.Unmarshal(body[fixed:fixed+int(n)], &c.Header); err != nil {
		return nil, bad("header: %v", err)
	}
	rest := body[fixed+int(n):]
	sizes, err := tensorSizes(c.Header.Tensors, int64(len(rest))/4)
	if err != nil {
		return nil, bad("%v", err)
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	if int64(len(rest)) != 4*total {
		return nil, bad("holds %d bytes of tensor data, header describes %d", len(rest), 4*total)
	}
	c.Data = make([][]float32, len(sizes))
	for i, s := range sizes {
		d := make([]float32, s)
		for j := range d {
			d[j] = math.Float32frombits(binary.LittleEndian.Uint32(rest[4*j:]))
		}
		rest = rest[4*s:]
		c.Data[i] = d
	}
	return c, nil
}

// tensorSizes returns the element count of each tensor; a negative
// dimension, or tensors holding more than limit values together, is an error.
func tensorSizes(ts []TensorEntry, limit int64) ([]int64, error) {
	sizes := make([]int64, len(ts))
	left := limit
	for i, e := range ts {
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q has a negative dimension in shape %v", e.Name, e.Shape)
			}
			if d > 0 && n > left/d {
				return nil, fmt.Errorf("tensor %q of shape %v holds more values than the file has bytes for", e.Name, e.Shape)
			}
			n *= d
		}
		if n > left {
			return nil, fmt.Errorf("tensor %q of shape %v holds more values than the file has bytes for", e.Name, e.Shape)
		}
		sizes[i], left = n, left-n
	}
	return sizes, nil
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Checkpoint files in a run directory.
const (
	checkpointDir = "checkpoints"
	latestFile    = "latest" // text file naming the newest checkpoint
	bestFile      = "best.ckpt"
)

func checkpointName(step int64) string { return fmt.Sprintf("step-%08d.ckpt", step) }

// SaveCheckpoint writes the checkpoint for its step into runDir, updates the
// latest pointer, keeps the newest keep files (plus best.ckpt) and, when
// isBest, refreshes best.ckpt.
func SaveCheckpoint(runDir string, c *Checkpoint, keep int, isBest bool) (string, error) {
	dir := filepath.Join(runDir, checkpointDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	name := checkpointName(c.Header.Step)
	path := filepath.Join(dir, name)
	if err := WriteCheckpoint(path, c); err != nil {
		return "", err
	}
	if isBest {
		if err := WriteCheckpoint(filepath.Join(dir, bestFile), c); err != nil {
			return "", err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, latestFile), []byte(name+"\n")); err != nil {
		return "", err
	}
	if keep > 0 {
		steps, _ := listCheckpoints(dir)
		for len(steps) > keep {
			os.Remove(filepath.Join(dir, steps[0]))
			steps = steps[1:]
		}
	}
	return path, nil
}

// listCheckpoints returns step checkpoint file names, oldest first.
func listCheckpoints(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "step-") && strings.HasSuffix(e.Name(), ".ckpt") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// LoadLatest returns the newest checkpoint of a run that verifies. A corrupt
// newest checkpoint is skipped for the previous one; skipped lists what was
// passed over (and why) so the caller can say so.
func LoadLatest(runDir string) (c *Checkpoint, path string, skipped []string, err error) {
	dir := filepath.Join(runDir, checkpointDir)
	names, err := listCheckpoints(dir)
	if err != nil || len(names) == 0 {
		return nil, "", nil, fmt.Errorf("no checkpoint in %s to resume from", dir)
	}
	for i := len(names) - 1; i >= 0; i-- {
		p := filepath.Join(dir, names[i])
		ck, err := ReadCheckpoint(p)
		if err == nil {
			return ck, p, skipped, nil
		}
		skipped = append(skipped, err.Error())
	}
	return nil, "", skipped, fmt.Errorf("every checkpoint in %s is corrupt: %s", dir, strings.Join(skipped, "; "))
}
