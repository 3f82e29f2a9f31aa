// Package arrowdata owns netssm's dataset files: Parquet, one row per trace,
// written and read with Apache Arrow for Go (arrow-go pqarrow). The columns
// are those of the design notes (trace_id, label, source, source_sha256,
// link_type, n_packets, tokens list<uint16>, pkt_offsets list<uint32>, ts_ns
// list<int64> from the trace start, wire_len list<uint32>) plus start_unix_ns,
// the absolute time of the first packet; the tokenizer spec is stored as JSON
// in the file's key-value metadata under SpecKey.
//
// Files appear only when complete (temp file + rename). Readers go row group
// by row group, so a dataset is never loaded whole: memory is bounded by one
// row group, which the writer keeps to about RowGroupTokens tokens.
//
// It must not know how tokens are made (package tokenizer) nor read captures.
package arrowdata

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// Metadata keys in the Parquet footer.
const (
	SpecKey    = "netssm.tokenizer_spec" // the tokenizer.Spec as JSON
	FormatKey  = "netssm.dataset_format" // FormatVersion
	CreatedKey = "netssm.created_by"
)

// FormatVersion is the dataset layout version written under FormatKey.
const FormatVersion = "1"

// Column names, in file order.
const (
	ColTraceID      = "trace_id"
	ColLabel        = "label"
	ColSource       = "source"
	ColSourceSHA256 = "source_sha256"
	ColLinkType     = "link_type"
	ColNPackets     = "n_packets"
	ColTokens       = "tokens"
	ColPktOffsets   = "pkt_offsets"
	ColTsNs         = "ts_ns"
	ColWireLen      = "wire_len"
	ColStartUnixNs  = "start_unix_ns"
)

// leaf column indices (each list column has one leaf)
const (
	iTraceID = iota
	iLabel
	iSource
	iSourceSHA256
	iLinkType
	iNPackets
	iTokens
	iPktOffsets
	iTsNs
	iWireLen
	iStartUnixNs
	numColumns
)

// Schema is the dataset's Arrow schema (without the file metadata).
func Schema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: ColTraceID, Type: arrow.BinaryTypes.String},
		{Name: ColLabel, Type: arrow.BinaryTypes.String},
		{Name: ColSource, Type: arrow.BinaryTypes.String},
		{Name: ColSourceSHA256, Type: arrow.BinaryTypes.String},
		{Name: ColLinkType, Type: arrow.BinaryTypes.String},
		{Name: ColNPackets, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColTokens, Type: arrow.ListOf(arrow.PrimitiveTypes.Uint16)},
		{Name: ColPktOffsets, Type: arrow.ListOf(arrow.PrimitiveTypes.Uint32)},
		{Name: ColTsNs, Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: ColWireLen, Type: arrow.ListOf(arrow.PrimitiveTypes.Uint32)},
		{Name: ColStartUnixNs, Type: arrow.PrimitiveTypes.Int64},
	}, nil)
}

// Trace is one dataset row.
type Trace struct {
	TraceID      string   // unique in the dataset: source name, and part number when a capture was split
	Label        string   // workload label
	Source       string   // capture file name the trace came from
	SourceSHA256 string   // hex SHA-256 of that file
	LinkType     string   // the capture's link type (ethernet, linux-sll, linux-sll2, raw, null, …)
	Tokens       []uint16 // the trace's tokens, <label:…> … <eos>
	PktOffsets   []uint32 // per packet: index of its <pkt> in Tokens (netssm layout: the first packet's first byte, as no <pkt> precedes it)
	TsNs         []int64  // per packet: ns from the trace's first packet
	WireLen      []uint32 // per packet: original length from the IP header on
	StartUnixNs  int64    // absolute time of the first packet, ns since the Unix epoch
}

// NPackets is the number of packets in the trace.
func (t *Trace) NPackets() int { return len(t.PktOffsets) }
