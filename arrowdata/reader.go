package arrowdata

import (
	"context"
	"fmt"
	"iter"
	"os"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/netssm/netssm/tokenizer"
)

// Dataset is an open dataset file. It reads row group by row group and never
// holds more than one row group's columns; it is not safe for concurrent use.
type Dataset struct {
	path    string
	mem     memory.Allocator
	pf      *file.Reader
	fr      *pqarrow.FileReader
	spec    tokenizer.Spec
	rgStart []int // first trace index of each row group, plus the total

	// TraceTokens cache: the token column of one row group
	cacheRG      int
	cacheTokens  *array.List
	cacheRelease func()
}

// ReaderOption configures Open.
type ReaderOption func(*Dataset)

// ReadAllocator sets the Arrow allocator (tests pass a checked one).
func ReadAllocator(mem memory.Allocator) ReaderOption {
	return func(d *Dataset) { d.mem = mem }
}

// Open opens a dataset and reads its footer and tokenizer spec. The file's
// layout (magic, footer length, every column chunk's place) is checked
// against its size before Arrow reads anything from it (see checkLayout).
func Open(path string, opts ...ReaderOption) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	d, err := openReader(path, f, st.Size(), opts...)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// openReader opens the dataset in r, size bytes long; path names it in
// errors. Closing the dataset closes r when it is an io.Closer.
func openReader(path string, r parquet.ReaderAtSeeker, size int64, opts ...ReaderOption) (d *Dataset, err error) {
	defer recoverAsError(path, "opening", &err)
	d = &Dataset{path: path, mem: memory.DefaultAllocator, cacheRG: -1}
	for _, o := range opts {
		o(d)
	}
	if err := checkEnvelope(r, size); err != nil {
		return nil, fmt.Errorf("dataset %s: not a readable Parquet file: %w", path, err)
	}
	var pf *file.Reader
	err = decoding("its footer", func() (err error) {
		pf, err = file.NewParquetReader(r, file.WithReadProps(parquet.NewReaderProperties(d.mem)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dataset %s: not a readable Parquet file: %w", path, err)
	}
	d.pf = pf
	if err := d.readFooter(size); err != nil {
		d.pf = nil // the caller closes r
		return nil, err
	}
	return d, nil
}

// readFooter checks the layout the footer describes against the file's
// size, then reads the tokenizer spec, the schema and the row counts.
func (d *Dataset) readFooter(size int64) error {
	pf, path := d.pf, d.path
	if err := checkLayout(pf.MetaData(), size); err != nil {
		return fmt.Errorf("dataset %s: %w", path, err)
	}
	kv := pf.MetaData().KeyValueMetadata()
	specJSON := kv.FindValue(SpecKey)
	if specJSON == nil {
		return fmt.Errorf("dataset %s: no %s in the file metadata; make it with `netssm-cli tokenize`", path, SpecKey)
	}
	var err error
	if d.spec, err = tokenizer.ParseSpec([]byte(*specJSON)); err != nil {
		return fmt.Errorf("dataset %s: %w", path, err)
	}
	dropArrowSchema(pf.MetaData())
	var sc *arrow.Schema
	err = decoding("its schema", func() (err error) {
		if d.fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, d.mem); err != nil {
			return err
		}
		sc, err = d.fr.Schema()
		return err
	})
	if err != nil {
		return fmt.Errorf("dataset %s: schema: %w", path, err)
	}
	want := Schema()
	if sc.NumFields() < numColumns || pf.MetaData().Schema.NumColumns() < numColumns {
		return fmt.Errorf("dataset %s: %d columns, want %d", path, sc.NumFields(), numColumns)
	}
	for i, f := range want.Fields() {
		if g := sc.Field(i); g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return fmt.Errorf("dataset %s: column %d is %s %s, want %s %s", path, i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	n := 0
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		d.rgStart = append(d.rgStart, n)
		n += int(pf.MetaData().RowGroup(rg).NumRows())
	}
	d.rgStart = append(d.rgStart, n)
	return nil
}

// Path is the dataset's file.
func (d *Dataset) Path() string { return d.path }

// Spec is the tokenizer spec the dataset was made with.
func (d *Dataset) Spec() tokenizer.Spec { return d.spec }

// Labels are the spec's labels, in token order.
func (d *Dataset) Labels() []string { return append([]string(nil), d.spec.Labels...) }

// NumTraces is the number of traces (rows).
func (d *Dataset) NumTraces() int { return d.rgStart[len(d.rgStart)-1] }

// NumRowGroups is the number of row groups.
func (d *Dataset) NumRowGroups() int { return len(d.rgStart) - 1 }

// Close releases the dataset.
func (d *Dataset) Close() error {
	d.dropCache()
	if d.pf == nil {
		return nil
	}
	err := d.pf.Close()
	d.pf = nil
	return err
}

func (d *Dataset) dropCache() {
	if d.cacheRelease != nil {
		d.cacheRelease()
		d.cacheRelease, d.cacheTokens, d.cacheRG = nil, nil, -1
	}
}

func (d *Dataset) rowGroupOf(i int) int {
	return sort.SearchInts(d.rgStart, i+1) - 1
}

// readRowGroup reads the given leaf columns of one row group (ascending),
// one array per column, each checked to hold the row group's rows; release
// frees them.
func (d *Dataset) readRowGroup(rg int, cols []int) (release func(), out []arrow.Array, err error) {
	defer recoverAsError(d.path, fmt.Sprintf("reading row group %d of", rg), &err)
	readers, sc, err := d.fr.GetFieldReaders(context.Background(), cols, []int{rg})
	if err != nil {
		return nil, nil, fmt.Errorf("dataset %s: row group %d: %w", d.path, rg, err)
	}
	defer func() {
		for _, r := range readers {
			r.Release()
		}
	}()
	out = make([]arrow.Array, len(cols))
	release = func() {
		for _, a := range out {
			if a != nil {
				a.Release()
			}
		}
	}
	rows := d.rgStart[rg+1] - d.rgStart[rg]
	for i, r := range readers {
		name := sc.Field(i).Name
		if out[i], err = d.readColumn(r, rows); err != nil {
			release()
			return nil, nil, fmt.Errorf("dataset %s: row group %d, column %s: %w", d.path, rg, name, err)
		}
	}
	return release, out, nil
}

// readColumn reads rows values of one column chunk as one array and checks
// it.
func (d *Dataset) readColumn(r *pqarrow.ColumnReader, rows int) (a arrow.Array, err error) {
	var ch *arrow.Chunked
	if err := decoding("its pages", func() (err error) {
		ch, err = r.NextBatch(int64(rows))
		return err
	}); err != nil {
		return nil, err
	}
	defer ch.Release()
	if len(ch.Chunks()) == 1 {
		a = ch.Chunk(0)
		a.Retain()
	} else if a, err = array.Concatenate(ch.Chunks(), d.mem); err != nil {
		return nil, err
	}
	if err := checkColumn(a, rows); err != nil {
		a.Release()
		return nil, err
	}
	return a, nil
}

// TraceTokens returns a copy of trace i's tokens. It reads (and keeps) the
// token column of the trace's row group only, so walking traces in order
// reads the file once.
func (d *Dataset) TraceTokens(i int) ([]uint16, error) {
	if i < 0 || i >= d.NumTraces() {
		return nil, fmt.Errorf("dataset %s: trace %d out of range [0,%d)", d.path, i, d.NumTraces())
	}
	rg := d.rowGroupOf(i)
	if rg != d.cacheRG {
		d.dropCache()
		release, cols, err := d.readRowGroup(rg, []int{iTokens})
		if err != nil {
			return nil, err
		}
		d.cacheRelease, d.cacheTokens, d.cacheRG = release, cols[0].(*array.List), rg
	}
	return listUint16(d.cacheTokens, i-d.rgStart[rg]), nil
}

func listUint16(l *array.List, row int) []uint16 {
	lo, hi := l.ValueOffsets(row)
	return append([]uint16(nil), l.ListValues().(*array.Uint16).Values()[lo:hi]...)
}

func listUint32(l *array.List, row int) []uint32 {
	lo, hi := l.ValueOffsets(row)
	return append([]uint32(nil), l.ListValues().(*array.Uint32).Values()[lo:hi]...)
}

func listInt64(l *array.List, row int) []int64 {
	lo, hi := l.ValueOffsets(row)
	return append([]int64(nil), l.ListValues().(*array.Int64).Values()[lo:hi]...)
}

var allColumns = []int{iTraceID, iLabel, iSource, iSourceSHA256, iLinkType, iNPackets, iTokens, iPktOffsets, iTsNs, iWireLen, iStartUnixNs}

// Traces yields every trace in file order, one row group in memory at a time.
// The yielded Trace owns its slices.
func (d *Dataset) Traces() iter.Seq2[*Trace, error] {
	return func(yield func(*Trace, error) bool) {
		for rg := 0; rg < d.NumRowGroups(); rg++ {
			release, c, err := d.readRowGroup(rg, allColumns)
			if err != nil {
				yield(nil, err)
				return
			}
			n := c[0].Len()
			for r := 0; r < n; r++ {
				t := &Trace{
					TraceID:      c[iTraceID].(*array.String).Value(r),
					Label:        c[iLabel].(*array.String).Value(r),
					Source:       c[iSource].(*array.String).Value(r),
					SourceSHA256: c[iSourceSHA256].(*array.String).Value(r),
					LinkType:     c[iLinkType].(*array.String).Value(r),
					Tokens:       listUint16(c[iTokens].(*array.List), r),
					PktOffsets:   listUint32(c[iPktOffsets].(*array.List), r),
					TsNs:         listInt64(c[iTsNs].(*array.List), r),
					WireLen:      listUint32(c[iWireLen].(*array.List), r),
					StartUnixNs:  c[iStartUnixNs].(*array.Int64).Value(r),
				}
				if err := t.check(c[iNPackets].(*array.Int64).Value(r)); err != nil {
					release()
					yield(nil, fmt.Errorf("dataset %s: trace %d (%s): %w", d.path, d.rgStart[rg]+r, t.TraceID, err))
					return
				}
				if !yield(t, nil) {
					release()
					return
				}
			}
			release()
		}
	}
}

// Window is a training window: Tokens[0:len-1] are inputs, Tokens[1:] targets.
type Window struct {
	Trace  int      // trace index
	Offset int      // position of Tokens[0] in the trace
	Tokens []uint16 // up to ctx+1 tokens; shorter at a trace's end. Valid until the next yield.
}

// Windows yields consecutive windows of ctx+1 tokens over every trace
// (stride ctx, so each token is a target exactly once), reading only the
// tokens column, one row group at a time.
func (d *Dataset) Windows(ctx int) iter.Seq2[Window, error] {
	return func(yield func(Window, error) bool) {
		if ctx < 1 {
			yield(Window{}, fmt.Errorf("window context %d: want ≥ 1", ctx))
			return
		}
		for rg := 0; rg < d.NumRowGroups(); rg++ {
			release, c, err := d.readRowGroup(rg, []int{iTokens})
			if err != nil {
				yield(Window{}, err)
				return
			}
			l := c[0].(*array.List)
			vals := l.ListValues().(*array.Uint16).Values()
			for r := 0; r < l.Len(); r++ {
				lo, hi := l.ValueOffsets(r)
				toks := vals[lo:hi]
				for off := 0; off+1 < len(toks); off += ctx {
					end := min(off+ctx+1, len(toks))
					if !yield(Window{Trace: d.rgStart[rg] + r, Offset: off, Tokens: toks[off:end]}, nil) {
						release()
						return
					}
				}
			}
			release()
		}
	}
}
