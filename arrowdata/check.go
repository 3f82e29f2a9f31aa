package arrowdata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// The checks below hold a dataset file to what its own bytes allow before
// arrow-go is handed a length, offset or count from it. arrow-go checks
// much itself (and turns a panic while decoding pages into an error); what
// it does not, and what this package relies on, is checked here.

var parquetMagic = []byte("PAR1")

// ErrDamaged marks a dataset file whose structure contradicts itself or its
// size (a truncated or corrupted file); errors.Is finds it.
var ErrDamaged = errors.New("damaged dataset file")

// errPanicked marks an error made from a panic in arrow-go (or here) that no
// check caught first: the last line of defence, which fuzzing hunts for.
var errPanicked = errors.New("the Parquet reader failed on malformed data")

// decoding runs one of arrow-go's decoders (the footer's Thrift into a
// schema, a column chunk's pages into an array) and turns a panic in it into
// an ErrDamaged error, as arrow-go's own ReadRowGroups does for pages. What
// these decoders read (Thrift structures, page headers, encoded values) is
// not checked before: that would mean decoding it twice.
func decoding(what string, decode func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoding %s failed (%v): %w", what, p, ErrDamaged)
		}
	}()
	return decode()
}

// recoverAsError turns a panic into *err, naming the file and what was
// being done.
func recoverAsError(path, doing string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("dataset %s: %s the file: %w (%v): %w", path, doing, errPanicked, p, ErrDamaged)
	}
}

// checkEnvelope checks the file's magic at both ends and that the footer
// length fits the file.
func checkEnvelope(r io.ReaderAt, size int64) error {
	const envelope = 4 + 4 + 4 // magic, footer length, magic
	if size < envelope {
		return fmt.Errorf("%d bytes is too short for Parquet: %w", size, ErrDamaged)
	}
	var head, tail [8]byte
	if _, err := r.ReadAt(head[:4], 0); err != nil {
		return err
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if !bytes.Equal(head[:4], parquetMagic) || !bytes.Equal(tail[4:], parquetMagic) {
		return fmt.Errorf("no Parquet magic at its start and end (truncated, or not Parquet): %w", ErrDamaged)
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-envelope {
		return fmt.Errorf("footer of %d bytes in a %d-byte file: %w", n, size, ErrDamaged)
	}
	return nil
}

// checkLayout checks that every row group's row count is sane and that each
// of its column chunks lies inside the file's data (between the leading
// magic and the footer), with no more rows than values.
func checkLayout(md *metadata.FileMetaData, size int64) error {
	dataEnd := size - 8 - int64(md.Size())
	var rows int64
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		g := md.RowGroup(rg)
		n := g.NumRows()
		if n < 0 || n > dataEnd {
			return fmt.Errorf("row group %d claims %d rows in %d bytes of data: %w", rg, n, dataEnd, ErrDamaged)
		}
		if rows += n; rows > dataEnd {
			return fmt.Errorf("row groups claim %d rows in %d bytes of data: %w", rows, dataEnd, ErrDamaged)
		}
		if g.NumColumns() != md.Schema.NumColumns() {
			return fmt.Errorf("row group %d has %d column chunks, the schema %d columns: %w", rg, g.NumColumns(), md.Schema.NumColumns(), ErrDamaged)
		}
		for c := 0; c < g.NumColumns(); c++ {
			cc, err := g.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("row group %d, column %d: %w: %w", rg, c, err, ErrDamaged)
			}
			if err := checkChunk(cc, n, dataEnd); err != nil {
				return fmt.Errorf("row group %d, column %d: %w", rg, c, err)
			}
		}
	}
	return nil
}

// maxExpansion bounds how much larger a column chunk may be uncompressed
// than in the file (arrow-go reserves memory by the uncompressed size):
// zstd over netssm's dictionary- and run-length-encoded columns stays far
// below it, and a chunk under minExpansionCap is never refused.
const (
	maxExpansion    = 1 << 12
	minExpansionCap = 1 << 20
)

func checkChunk(cc *metadata.ColumnChunkMetaData, rows, dataEnd int64) error {
	if cc.FilePath() != "" {
		return fmt.Errorf("data in another file (%q): %w", cc.FilePath(), ErrDamaged)
	}
	if _, err := compress.GetCodec(cc.Compression()); err != nil {
		return fmt.Errorf("compression codec %d: %w: %w", cc.Compression(), err, ErrDamaged)
	}
	if v := cc.NumValues(); v < rows {
		return fmt.Errorf("%d values for %d rows: %w", v, rows, ErrDamaged)
	}
	start := cc.DataPageOffset()
	if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 {
		start = min(start, cc.DictionaryPageOffset())
	}
	n := cc.TotalCompressedSize()
	if start < int64(len(parquetMagic)) || n < 0 || n > dataEnd-start {
		return fmt.Errorf("chunk of %d bytes at offset %d does not fit the data's %d bytes: %w", n, start, dataEnd, ErrDamaged)
	}
	if u := cc.TotalUncompressedSize(); u < 0 || u > max(n*maxExpansion, minExpansionCap) {
		return fmt.Errorf("chunk of %d bytes claims %d bytes uncompressed: %w", n, u, ErrDamaged)
	}
	return nil
}

// checkColumn checks that a column read from a row group holds its rows,
// and that a list column's offsets stay inside its values.
func checkColumn(a arrow.Array, rows int) error {
	if a.Len() != rows {
		return fmt.Errorf("%d values for %d rows: %w", a.Len(), rows, ErrDamaged)
	}
	l, ok := a.(*array.List)
	if !ok {
		return nil
	}
	offs, n := l.Offsets(), int32(l.ListValues().Len())
	if len(offs) < rows+1 {
		return fmt.Errorf("%d list offsets for %d rows: %w", len(offs), rows, ErrDamaged)
	}
	for i, o := range offs[:rows+1] {
		if o < 0 || o > n || (i > 0 && o < offs[i-1]) {
			return fmt.Errorf("list offset %d of row %d is outside its %d values: %w", o, i, n, ErrDamaged)
		}
	}
	return nil
}

// check holds a trace read from the file to the writer's rules: n_packets
// packets, each with an offset, time and wire length, the offsets rising
// inside the tokens.
func (t *Trace) check(nPackets int64) error {
	n := len(t.PktOffsets)
	if nPackets != int64(n) || len(t.TsNs) != n || len(t.WireLen) != n {
		return fmt.Errorf("n_packets %d but %d packet offsets, %d timestamps, %d wire lengths: %w", nPackets, n, len(t.TsNs), len(t.WireLen), ErrDamaged)
	}
	for i, o := range t.PktOffsets {
		if int(o) >= len(t.Tokens) || (i > 0 && o <= t.PktOffsets[i-1]) {
			return fmt.Errorf("packet %d at token %d (of %d tokens) is out of order or past the end: %w", i, o, len(t.Tokens), ErrDamaged)
		}
	}
	return nil
}

// arrowSchemaKey is where pqarrow stores the writer's Arrow schema: a
// base64 flatbuffer whose vector lengths arrow-go trusts (a flipped bit asks
// for hundreds of GiB). The dataset's types follow from the Parquet schema
// alone and are checked against Schema(), so the stored copy is not read.
const arrowSchemaKey = "ARROW:schema"

// dropArrowSchema removes arrowSchemaKey from the footer's key-value
// metadata before pqarrow sees it.
func dropArrowSchema(md *metadata.FileMetaData) {
	kv := md.FileMetaData.KeyValueMetadata
	kept := kv[:0:0]
	for _, e := range kv {
		if e.GetKey() != arrowSchemaKey {
			kept = append(kept, e)
		}
	}
	md.FileMetaData.KeyValueMetadata = kept
}
