package infer

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/netssm/netssm/internal/atomicfile"
)

// Sink receives generated traces, one TraceFile per trace index.
type Sink interface {
	OpenTrace(trace int) (TraceFile, error)
}

// TraceFile is one trace's output. ts is the packet's absolute time.
type TraceFile interface {
	WritePacket(ts time.Time, ip []byte) error
	// Close finishes the trace (publishing its file).
	Close() error
	// Abort discards an unfinished trace whose job failed elsewhere.
	Abort()
}

// NewPacketWriter makes a PacketWriter over w, writing the pcap file header
// to w before it returns.
type NewPacketWriter func(w io.Writer) (PacketWriter, error)

// PcapSink writes each trace to a pcap file: Path itself when Dir is false
// (a job of one trace), else Dir/trace-NNNNNN.pcap (the trace index, so the
// files of separate shards never collide and merge by copying). A file
// appears under its name only when its trace is closed. If a write fails (a
// full disk), the trace is cut back to its last complete packet and kept as
// its name plus atomicfile.PartialSuffix (or removed when no packet made it),
// and the error names that file and says how many packets it holds.
type PcapSink struct {
	Path      string
	Dir       bool
	NewWriter NewPacketWriter // nil: RawPcapWriter

	// create opens the temporary file behind a trace (tests inject a disk
	// that fills up); nil uses atomicfile.
	create func(dest string) (traceStore, error)
}

// traceStore is the file under a trace: written in whole records, then
// published; on failure cut back, then published as incomplete or removed.
type traceStore interface {
	io.Writer
	Truncate(size int64) error
	Commit() error
	CommitPartial() (string, error)
	Abort()
}

// TracePath returns the file that trace is written to.
func (s *PcapSink) TracePath(trace int) string {
	if !s.Dir {
		return s.Path
	}
	return filepath.Join(s.Path, fmt.Sprintf("trace-%06d.pcap", trace))
}

// OpenTrace implements Sink.
func (s *PcapSink) OpenTrace(trace int) (TraceFile, error) {
	dest := s.TracePath(trace)
	create := s.create
	if create == nil {
		create = func(dest string) (traceStore, error) { return atomicfile.Create(dest) }
	}
	st, err := create(dest)
	if err != nil {
		return nil, err
	}
	f := &pcapTraceFile{path: dest, store: st, buf: make([]byte, 0, flushBytes+maxRecord)}
	newWriter := s.NewWriter
	if newWriter == nil {
		newWriter = RawPcapWriter
	}
	w, err := newWriter((*recordBuffer)(f))
	if err != nil {
		st.Abort()
		return nil, fmt.Errorf("starting pcap %s: %w", dest, err)
	}
	f.pw = w
	if err := f.flush(); err != nil { // the header alone is a valid, empty pcap
		return nil, err // a *WriteError: flush removed the file
	}
	return f, nil
}

const (
	flushBytes = 64 << 10
	maxRecord  = 16 + 65535
)

// pcapTraceFile buffers whole records and writes them in batches, so the
// file on disk always ends on a record boundary unless a write fails midway;
// then it is truncated back to the last boundary.
type pcapTraceFile struct {
	path    string
	store   traceStore
	pw      PacketWriter
	buf     []byte // records not yet on disk
	durable int64  // bytes on disk, ending on a record boundary
	onDisk  int    // packets in those bytes
	pending int    // packets in buf
	done    bool
}

type recordBuffer pcapTraceFile

func (r *recordBuffer) Write(p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	return len(p), nil
}

func (f *pcapTraceFile) WritePacket(ts time.Time, ip []byte) error {
	if f.done {
		return fmt.Errorf("pcap %s: write after close", f.path)
	}
	if err := f.pw.WritePacket(ts, ip); err != nil {
		return fmt.Errorf("trace file %s: %w", f.path, err)
	}
	f.pending++
	if len(f.buf) >= flushBytes {
		return f.flush()
	}
	return nil
}

// flush writes the buffered records; on failure it keeps what is complete
// of the trace (keepPartial).
func (f *pcapTraceFile) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	n, err := f.store.Write(f.buf)
	if err == nil && n < len(f.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.done = true
		return f.keepPartial(err)
	}
	f.durable += int64(n)
	f.onDisk += f.pending
	f.pending = 0
	f.buf = f.buf[:0]
	return nil
}

// keepPartial handles a failed write: the file is cut back to its last
// complete packet and published under a name that says it is incomplete, or
// removed when it holds no packet or cannot be cut back. The error names
// what is left.
func (f *pcapTraceFile) keepPartial(cause error) error {
	if f.onDisk == 0 {
		f.store.Abort()
		return &WriteError{Path: f.path, Err: cause}
	}
	if err := f.store.Truncate(f.durable); err != nil {
		f.store.Abort()
		return &WriteError{Path: f.path, Err: fmt.Errorf("%w (and cutting it back to its last complete packet failed: %v)", cause, err)}
	}
	kept, err := f.store.CommitPartial()
	if err != nil {
		return &WriteError{Path: f.path, Err: fmt.Errorf("%w (and keeping its first %d packets failed: %v)", cause, f.onDisk, err)}
	}
	return &WriteError{Path: f.path, Kept: kept, Packets: f.onDisk, Err: cause}
}

func (f *pcapTraceFile) Close() error {
	if f.done {
		return nil
	}
	if err := f.flush(); err != nil {
		return err
	}
	f.done = true
	if err := f.store.Commit(); err != nil {
		return fmt.Errorf("closing pcap %s: %w (the trace was removed)", f.path, err)
	}
	slog.Debug("trace written", "file", f.path, "packets", f.onDisk)
	return nil
}

func (f *pcapTraceFile) Abort() {
	if !f.done {
		f.done = true
		f.store.Abort()
	}
}

// WriteError is a trace that could not be written to the end (a full
// disk). Nothing is left under Path: the trace's first Packets packets are
// kept in Kept (Path plus atomicfile.PartialSuffix, a valid pcap), or, when
// Kept is empty, no file is left at all.
type WriteError struct {
	Path    string
	Kept    string
	Packets int
	Err     error
}

func (e *WriteError) Error() string {
	if e.Kept == "" {
		return fmt.Sprintf("writing %s: %v; the trace is not complete and no file of it was left (free some space and run again)", e.Path, e.Err)
	}
	return fmt.Sprintf("writing %s: %v; the trace is not complete: its first %d packets are kept in %s (free some space and run again)", e.Path, e.Err, e.Packets, e.Kept)
}

func (e *WriteError) Unwrap() error { return e.Err }

// PacketCheck validates and repairs a packet in place before it is written
// (pcapout.Check: IPv4 checksum, length field) and returns its original
// length; an error marks a packet that is written as generated but counted
// as invalid.
type PacketCheck func(ip []byte) (origLen int, repaired bool, err error)

// PacketChecks counts what a PacketCheck found over a run.
type PacketChecks struct {
	Repaired atomic.Int64 // packets changed by a repair
	Invalid  atomic.Int64 // packets no repair could make valid IP
}

// RawPcapWriter writes a nanosecond pcap of LINKTYPE_RAW (101) records, the
// bytes as given; the original length is read from the IP length field.
func RawPcapWriter(w io.Writer) (PacketWriter, error) { return NewPcapWriter(w, nil, nil) }

// NewPcapWriter writes a nanosecond LINKTYPE_RAW pcap to w, passing every
// packet through check (nil: none) and counting its findings in counts.
func NewPcapWriter(w io.Writer, check PacketCheck, counts *PacketChecks) (PacketWriter, error) {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond resolution
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 101)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	if counts == nil {
		counts = &PacketChecks{}
	}
	return &rawPcap{w: w, check: check, counts: counts}, nil
}

type rawPcap struct {
	w      io.Writer
	check  PacketCheck
	counts *PacketChecks
	hdr    [16]byte
}

func (r *rawPcap) WritePacket(ts time.Time, ip []byte) error {
	if len(ip) > 65535 {
		ip = ip[:65535]
	}
	orig := ipLength(ip)
	if r.check != nil {
		n, repaired, err := r.check(ip)
		switch {
		case err != nil:
			r.counts.Invalid.Add(1)
		case repaired:
			r.counts.Repaired.Add(1)
			orig = n
		default:
			orig = n
		}
	}
	orig = max(orig, len(ip))
	binary.LittleEndian.PutUint32(r.hdr[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(r.hdr[4:], uint32(ts.Nanosecond()))
	binary.LittleEndian.PutUint32(r.hdr[8:], uint32(len(ip)))
	binary.LittleEndian.PutUint32(r.hdr[12:], uint32(orig))
	if _, err := r.w.Write(r.hdr[:]); err != nil {
		return err
	}
	_, err := r.w.Write(ip)
	return err
}

// ipLength reads the original length from an IPv4 or IPv6 header (0 when
// the bytes are no IP header).
func ipLength(ip []byte) int {
	switch {
	case len(ip) >= 4 && ip[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(ip[2:]))
	case len(ip) >= 6 && ip[0]>>4 == 6:
		return 40 + int(binary.BigEndian.Uint16(ip[4:]))
	}
	return 0
}
