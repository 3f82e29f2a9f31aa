package arrowdata

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/netssm/netssm/internal/atomicfile"
	"github.com/netssm/netssm/tokenizer"
)

// RowGroupTokens is the default number of tokens buffered before a row group
// is written: it bounds the memory of writers and readers alike.
const RowGroupTokens = 1 << 20

// WriterOption configures a Writer.
type WriterOption func(*writerConfig)

type writerConfig struct {
	mem            memory.Allocator
	rowGroupTokens int
	createdBy      string
}

// WithAllocator sets the Arrow allocator (tests pass a checked one).
func WithAllocator(mem memory.Allocator) WriterOption {
	return func(c *writerConfig) { c.mem = mem }
}

// WithRowGroupTokens sets how many tokens are buffered per row group.
func WithRowGroupTokens(n int) WriterOption {
	return func(c *writerConfig) { c.rowGroupTokens = n }
}

// WithCreatedBy records the producing program in the file metadata.
func WithCreatedBy(s string) WriterOption {
	return func(c *writerConfig) { c.createdBy = s }
}

// Writer writes a dataset file. Traces are buffered and written a row group
// at a time; the file appears at its path only on Close.
type Writer struct {
	path     string
	cfg      writerConfig
	f        *atomicfile.File
	fw       *pqarrow.FileWriter
	bld      *array.RecordBuilder
	buffered int // tokens in bld
	traces   int
	closed   bool
}

// sink hides Close from the Parquet writer: atomicfile commits the file.
type sink struct{ io.Writer }

// Create starts a dataset at path with the given tokenizer spec (stored in
// the file metadata; it must hold every label that Write will see).
func Create(path string, spec tokenizer.Spec, opts ...WriterOption) (*Writer, error) {
	cfg := writerConfig{mem: memory.DefaultAllocator, rowGroupTokens: RowGroupTokens, createdBy: "netssm"}
	for _, o := range opts {
		o(&cfg)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: tokenizer spec: %w", path, err)
	}
	md := arrow.NewMetadata(
		[]string{SpecKey, FormatKey, CreatedKey},
		[]string{string(specJSON), FormatVersion, cfg.createdBy},
	)
	sc := Schema()
	sc = arrow.NewSchema(sc.Fields(), &md)
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(cfg.mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(false),
		parquet.WithDictionaryFor(ColLabel, true),
		parquet.WithDictionaryFor(ColLinkType, true),
		parquet.WithCreatedBy(cfg.createdBy),
	)
	fw, err := pqarrow.NewFileWriter(sc, sink{f}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(cfg.mem)))
	if err != nil {
		f.Abort()
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	return &Writer{path: path, cfg: cfg, f: f, fw: fw, bld: array.NewRecordBuilder(cfg.mem, sc)}, nil
}

// Write appends one trace.
func (w *Writer) Write(t *Trace) error {
	if w.closed {
		return fmt.Errorf("dataset %s: write after close", w.path)
	}
	n := len(t.PktOffsets)
	if len(t.TsNs) != n || len(t.WireLen) != n {
		return fmt.Errorf("dataset %s: trace %s: %d packet offsets, %d timestamps, %d wire lengths", w.path, t.TraceID, n, len(t.TsNs), len(t.WireLen))
	}
	b := w.bld
	b.Field(iTraceID).(*array.StringBuilder).Append(t.TraceID)
	b.Field(iLabel).(*array.StringBuilder).Append(t.Label)
	b.Field(iSource).(*array.StringBuilder).Append(t.Source)
	b.Field(iSourceSHA256).(*array.StringBuilder).Append(t.SourceSHA256)
	b.Field(iLinkType).(*array.StringBuilder).Append(t.LinkType)
	b.Field(iNPackets).(*array.Int64Builder).Append(int64(n))
	appendList(b.Field(iTokens).(*array.ListBuilder), t.Tokens, func(vb array.Builder, v []uint16) { vb.(*array.Uint16Builder).AppendValues(v, nil) })
	appendList(b.Field(iPktOffsets).(*array.ListBuilder), t.PktOffsets, func(vb array.Builder, v []uint32) { vb.(*array.Uint32Builder).AppendValues(v, nil) })
	appendList(b.Field(iTsNs).(*array.ListBuilder), t.TsNs, func(vb array.Builder, v []int64) { vb.(*array.Int64Builder).AppendValues(v, nil) })
	appendList(b.Field(iWireLen).(*array.ListBuilder), t.WireLen, func(vb array.Builder, v []uint32) { vb.(*array.Uint32Builder).AppendValues(v, nil) })
	b.Field(iStartUnixNs).(*array.Int64Builder).Append(t.StartUnixNs)
	w.buffered += len(t.Tokens)
	w.traces++
	if w.buffered >= w.cfg.rowGroupTokens {
		return w.flush()
	}
	return nil
}

func appendList[T any](lb *array.ListBuilder, v []T, add func(array.Builder, []T)) {
	lb.Append(true)
	add(lb.ValueBuilder(), v)
}

// flush writes the buffered traces as one row group.
func (w *Writer) flush() error {
	if w.bld.Field(0).Len() == 0 {
		return nil
	}
	rec := w.bld.NewRecordBatch()
	defer rec.Release()
	w.buffered = 0
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("dataset %s: writing row group: %w", w.path, err)
	}
	return nil
}

// Traces is the number of traces written so far.
func (w *Writer) Traces() int { return w.traces }

// Close writes the last row group and the footer and moves the file into
// place. After an error nothing is left at the path.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.bld.Release()
	if err := w.flush(); err != nil {
		w.fw.Close()
		w.f.Abort()
		return err
	}
	if err := w.fw.Close(); err != nil {
		w.f.Abort()
		return fmt.Errorf("dataset %s: closing: %w", w.path, err)
	}
	return w.f.Commit()
}

// Abort discards the file; safe after Close.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.bld.Release()
	w.fw.Close()
	w.f.Abort()
}
