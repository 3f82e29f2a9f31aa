package pcapout

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/netssm/netssm/tokenizer"
)

// TraceOptions configure WriteTrace.
type TraceOptions struct {
	Options
	// Start is the time of the first packet (default: the Unix epoch).
	Start time.Time
	// TsNs, when it has one entry per decoded packet, gives exact packet
	// times from the trace start (a dataset's ts_ns); otherwise times come
	// from the <dt:k> tokens (DtSample picks inside a bucket, default the
	// bucket's middle), or are 1 ms apart when the spec has no timing.
	TsNs     []int64
	DtSample func(k int) int64
	// Name is used in log lines and errors (e.g. the trace id).
	Name string
}

// TraceReport says what WriteTrace did.
type TraceReport struct {
	Decoded int                   // packets decoded from the tokens
	Stats                         // what the pcap writer did
	Decode  tokenizer.DecodeStats // grammar problems in the tokens
}

// WriteTrace decodes a trace's tokens and writes its packets to a pcap at
// path: the code path shared by `netssm-cli detokenize` and generation.
// Packets decoded with their link header (the netssm layout) keep it: the
// file's link type must then be the spec's Link.
// Invalid packets are counted in the report and logged (with the packet
// index), not written; the file is still written. An error means no file.
func WriteTrace(path string, spec *tokenizer.Spec, tokens []uint16, opt TraceOptions) (TraceReport, error) {
	w, err := Create(path, opt.Options)
	if err != nil {
		return TraceReport{}, err
	}
	defer w.Abort()
	rep, err := WriteTraceTo(w, spec, tokens, opt)
	if err != nil {
		return rep, err
	}
	if err := w.Commit(); err != nil {
		return rep, fmt.Errorf("writing %s: %w", path, err)
	}
	return rep, nil
}

// WriteTraceTo decodes tokens and writes the packets to w (which the caller
// commits): WriteTrace without the file.
func WriteTraceTo(w *Writer, spec *tokenizer.Spec, tokens []uint16, opt TraceOptions) (TraceReport, error) {
	var rep TraceReport
	dec, err := spec.Decode(tokens, tokenizer.DecodeOptions{DtSample: opt.DtSample})
	if err != nil {
		return rep, err
	}
	rep.Decoded = len(dec.Packets)
	rep.Decode = dec.Stats
	exact := len(opt.TsNs) == len(dec.Packets)
	start := opt.Start
	if start.IsZero() {
		start = time.Unix(0, 0)
	}
	for i, p := range dec.Packets {
		off := p.TsNs
		switch {
		case exact:
			off = opt.TsNs[i]
		case !spec.Timing:
			off = int64(i) * int64(time.Millisecond)
		}
		if _, err := w.WriteFrame(start.Add(time.Duration(off)), p.Link, p.Bytes); err != nil {
			if !errors.Is(err, ErrInvalid) {
				return rep, err
			}
			slog.Warn("invalid packet not written", "trace", opt.Name, "packet", i, "err", err)
		}
	}
	rep.Stats = w.Stats()
	return rep, nil
}
