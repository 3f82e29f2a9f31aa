package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadCheckpoint feeds arbitrary bytes to the checkpoint reader, once as
// they are and once with their last four bytes replaced by the checksum of
// the rest (so the fuzzer reaches the header and tensor checks behind the
// CRC): nothing may panic, every refusal is ErrCorruptCheckpoint, and a
// checkpoint it accepts holds exactly the values its header describes.
func FuzzReadCheckpoint(f *testing.F) {
	for _, c := range []*Checkpoint{
		sampleCheckpoint(7),
		{Header: CheckpointHeader{Step: 1}},
		{Header: CheckpointHeader{Tensors: []TensorEntry{{"s", nil}, {"z", []int64{0, 4}}}}, Data: [][]float32{{3}, {}}},
	} {
		p := filepath.Join(f.TempDir(), "seed.ckpt")
		if err := WriteCheckpoint(p, c); err != nil {
			f.Fatal(err)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkParsedCheckpoint(t, raw)
		checkParsedCheckpoint(t, resealed(raw))
	})
}

// resealed returns raw with its last four bytes set to the CRC-32C of the
// bytes before them.
func resealed(raw []byte) []byte {
	if len(raw) < 4 {
		return raw
	}
	out := append([]byte(nil), raw...)
	body := out[:len(out)-4]
	binary.LittleEndian.PutUint32(out[len(body):], crc32.Checksum(body, crcTable))
	return out
}

func checkParsedCheckpoint(t *testing.T, raw []byte) {
	c, err := parseCheckpoint("fuzz.ckpt", raw)
	if err != nil {
		if !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("refusal is not ErrCorruptCheckpoint: %v", err)
		}
		return
	}
	if len(c.Data) != len(c.Header.Tensors) {
		t.Fatalf("%d tensors named, %d read", len(c.Header.Tensors), len(c.Data))
	}
	var values int64
	for i, e := range c.Header.Tensors {
		if n := numel(e.Shape); n != int64(len(c.Data[i])) {
			t.Fatalf("tensor %q of shape %v: %d values read", e.Name, e.Shape, len(c.Data[i]))
		}
		values += int64(len(c.Data[i]))
	}
	if 4*values > int64(len(raw)) {
		t.Fatalf("%d values read from a %d-byte file", values, len(raw))
	}
}

// TestCheckpointShapeBeyondItsDataIsCorrupt: negative dimensions, and
// dimensions whose product overflows or exceeds the tensor bytes the file
// holds, are refused before anything is allocated.
func TestCheckpointShapeBeyondItsDataIsCorrupt(t *testing.T) {
	for _, shapes := range [][][]int64{{{-2}, {3}}, {{-1, -1}}, {{1 << 32, 1 << 32}}, {{1 << 62, 4}}, {{3}}} {
		var h CheckpointHeader
		for _, s := range shapes {
			h.Tensors = append(h.Tensors, TensorEntry{Name: "t", Shape: s})
		}
		raw := encodeUnchecked(t, h, 4)
		if _, err := parseCheckpoint("bad.ckpt", raw); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Errorf("shapes %v over 4 bytes of data: err = %v, want ErrCorruptCheckpoint", shapes, err)
		}
	}
}

// encodeUnchecked lays out a checkpoint file with header h and dataBytes
// zero bytes of tensor data, whatever the header says.
func encodeUnchecked(t *testing.T, h CheckpointHeader, dataBytes int) []byte {
	hdr, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(checkpointMagic)
	raw = binary.LittleEndian.AppendUint64(raw, uint64(len(hdr)))
	raw = append(raw, hdr...)
	raw = append(raw, make([]byte, dataBytes)...)
	return binary.LittleEndian.AppendUint32(raw, crc32.Checksum(raw, crcTable))
}
