package pipeline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/internal/atomicfile"
	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/tokenizer"
)

// NetSSMRecord is one line of NetSSM's JSONL dataset, fields in its order:
// the trace as NetSSM's text (tokenizer.Spec.NetSSMText), the hex SHA-256
// of the Filename string (not of the file), the capture's path as NetSSM
// was given it, and the number of packets.
type NetSSMRecord struct {
	Data     string
	Hash     string
	Filename string
	OrigLen  int
}

// netssmHash is NetSSM's Hash of a Filename.
func netssmHash(filename string) string {
	h := sha256.Sum256([]byte(filename))
	return hex.EncodeToString(h[:])
}

// ExportJSONLOptions configure ExportJSONL.
type ExportJSONLOptions struct {
	// Dir is put before each trace's source file name in Filename (NetSSM
	// writes the path it walked, e.g. input/amazon.pcap); "" writes the
	// source as the dataset holds it.
	Dir string
}

// ExportJSONL writes a netssm-layout dataset as NetSSM's JSONL at out, one
// line per trace, in dataset order. The file appears only when complete.
func ExportJSONL(dataset, out string, opt ExportJSONLOptions) (traces int, err error) {
	ds, err := arrowdata.Open(dataset)
	if err != nil {
		return 0, err
	}
	defer ds.Close()
	spec := ds.Spec()
	if spec.Layout != tokenizer.LayoutNetSSM {
		return 0, fmt.Errorf("dataset %s has layout %s: NetSSM's JSONL holds netssm-layout traces (tokenize with --layout netssm)", dataset, spec.Layout)
	}
	f, err := atomicfile.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(bw) // one object and a newline per trace, as NetSSM's preprocessor writes
	enc.SetEscapeHTML(false)
	bar := progress.New(int64(ds.NumTraces()), "exporting", "traces")
	defer bar.Finish()
	for t, err := range ds.Traces() {
		if err != nil {
			return traces, err
		}
		text, err := spec.NetSSMText(t.Tokens)
		if err != nil {
			return traces, fmt.Errorf("dataset %s: trace %s: %w", dataset, t.TraceID, err)
		}
		name := t.Source
		if opt.Dir != "" {
			name = strings.TrimRight(opt.Dir, "/") + "/" + name
		}
		if err := enc.Encode(NetSSMRecord{Data: text, Hash: netssmHash(name), Filename: name, OrigLen: t.NPackets()}); err != nil {
			return traces, fmt.Errorf("writing %s: %w", out, err)
		}
		traces++
		bar.Add(1)
	}
	if err := bw.Flush(); err != nil {
		return traces, fmt.Errorf("writing %s: %w", out, err)
	}
	return traces, f.Commit()
}

// ImportJSONLOptions configure ImportJSONL.
type ImportJSONLOptions struct {
	// Link is the link type the rows open with (tokenizer.LinkEthernet,
	// LinkLinuxSLL or LinkRaw); "" reads it from the first row.
	Link   string
	Writer []arrowdata.WriterOption
}

// ImportJSONL reads NetSSM JSONL files (every line checked: fields, Hash,
// row lengths, OrigLen) and writes them as one netssm-layout dataset at
// out, a trace per line. NetSSM's files hold no packet times: packets are
// placed 1 ms apart. Any bad line stops the import (naming the file and
// line) and no dataset is written.
func ImportJSONL(files []string, out string, opt ImportJSONLOptions) (traces int, spec tokenizer.Spec, err error) {
	if len(files) == 0 {
		return 0, spec, fmt.Errorf("no JSONL files to import")
	}
	spec = tokenizer.NetSSMSpec(opt.Link)
	link := opt.Link
	labels := map[string]bool{}
	err = eachNetSSMLine(files, spec.PaperPacketLen, func(path string, line int, rec NetSSMRecord, label string, rows []byte) error {
		if !labels[label] {
			if _, err := spec.AddLabel(label); err != nil {
				return err
			}
			labels[label] = true
		}
		if link == "" {
			var ok bool
			if link, ok = guessLink(rows[:spec.PaperPacketLen]); !ok {
				return fmt.Errorf("cannot tell the link type of its first packet (pass the link type)")
			}
		}
		return nil
	})
	if err != nil {
		return 0, spec, err
	}
	uniq := make([]string, 0, len(labels))
	for l := range labels {
		uniq = append(uniq, l)
	}
	sort.Strings(uniq)
	spec.Labels, spec.Link = uniq, link
	if err := spec.Validate(); err != nil {
		return 0, spec, err
	}
	w, err := arrowdata.Create(out, spec, opt.Writer...)
	if err != nil {
		return 0, spec, err
	}
	defer w.Abort()
	ids := map[string]int{}
	err = eachNetSSMLine(files, spec.PaperPacketLen, func(path string, line int, rec NetSSMRecord, label string, rows []byte) error {
		t, err := importedTrace(&spec, rec, label, rows)
		if err != nil {
			return err
		}
		id := t.TraceID
		if n := ids[id]; n > 0 {
			t.TraceID = fmt.Sprintf("%s~%d", id, n)
		}
		ids[id]++
		traces++
		return w.Write(t)
	})
	if err != nil {
		return 0, spec, err
	}
	return traces, spec, w.Close()
}

// importedTrace makes the dataset row of one JSONL record.
func importedTrace(spec *tokenizer.Spec, rec NetSSMRecord, label string, rows []byte) (*arrowdata.Trace, error) {
	toks, offs, err := spec.NetSSMTrace(label, rows)
	if err != nil {
		return nil, err
	}
	t := &arrowdata.Trace{
		TraceID: label + "/" + rec.Filename, Label: label, Source: rec.Filename, LinkType: spec.Link,
		Tokens: toks, PktOffsets: offs,
	}
	rl := spec.PaperPacketLen
	for k := range len(offs) {
		t.TsNs = append(t.TsNs, int64(k)*int64(time.Millisecond))
		_, ip := spec.SplitNetSSMRow(rows[k*rl : (k+1)*rl])
		t.WireLen = append(t.WireLen, uint32(ipLengthField(ip)))
	}
	return t, nil
}

// ipLengthField is the packet length an IP header states (0: none).
func ipLengthField(ip []byte) int {
	switch {
	case len(ip) >= 4 && ip[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(ip[2:4]))
	case len(ip) >= 6 && ip[0]>>4 == 6:
		return 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	}
	return 0
}

// guessLink names the link header a row opens with: Ethernet when bytes
// 12–13 hold an IP or 802.1Q type, Linux cooked when bytes 14–15 do, raw
// when the row opens with an IP version.
func guessLink(row []byte) (string, bool) {
	et := func(at int) uint16 { return binary.BigEndian.Uint16(row[at : at+2]) }
	ipAt := func(at int, t uint16) bool {
		return (t == 0x0800 && row[at]>>4 == 4) || (t == 0x86dd && row[at]>>4 == 6)
	}
	switch {
	case ipAt(14, et(12)) || et(12) == 0x8100 || et(12) == 0x88a8:
		return tokenizer.LinkEthernet, true
	case ipAt(16, et(14)):
		return tokenizer.LinkLinuxSLL, true
	case row[0]>>4 == 4 || row[0]>>4 == 6:
		return tokenizer.LinkRaw, true
	}
	return "", false
}

// eachNetSSMLine reads every line of the files, checks it and calls fn
// with its record, label and rows; errors name the file and the line.
func eachNetSSMLine(files []string, rowLen int, fn func(path string, line int, rec NetSSMRecord, label string, rows []byte) error) error {
	for _, path := range files {
		if err := eachLineOf(path, rowLen, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachLineOf(path string, rowLen int, fn func(path string, line int, rec NetSSMRecord, label string, rows []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("NetSSM JSONL: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	lines := 0
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		rec, label, rows, perr := parseNetSSMLine(bytes.TrimSuffix(b, []byte("\n")), rowLen)
		if perr == nil {
			perr = fn(path, line, rec, label, rows)
		}
		if perr != nil {
			return fmt.Errorf("NetSSM JSONL %s line %d: %w", path, line, perr)
		}
		lines++
	}
	if lines == 0 {
		return fmt.Errorf("NetSSM JSONL %s: no lines", path)
	}
	return nil
}

// parseNetSSMLine checks one JSONL line: one object with exactly NetSSM's
// four fields, a Hash that is the SHA-256 of Filename, Data rows of rowLen
// bytes, and OrigLen their number.
func parseNetSSMLine(b []byte, rowLen int) (rec NetSSMRecord, label string, rows []byte, err error) {
	var raw struct {
		Data     *string
		Hash     *string
		Filename *string
		OrigLen  *int
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return rec, "", nil, fmt.Errorf("not a NetSSM record (an object of Data, Hash, Filename, OrigLen): %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return rec, "", nil, fmt.Errorf("more than one JSON value on the line")
	}
	switch {
	case raw.Data == nil || raw.Hash == nil || raw.Filename == nil || raw.OrigLen == nil:
		return rec, "", nil, fmt.Errorf("a NetSSM record needs Data, Hash, Filename and OrigLen")
	case *raw.Filename == "":
		return rec, "", nil, fmt.Errorf("empty Filename")
	case *raw.Hash != netssmHash(*raw.Filename):
		return rec, "", nil, fmt.Errorf("Hash %q is not the SHA-256 of Filename %q, which NetSSM writes", clipText(*raw.Hash), clipText(*raw.Filename))
	}
	rec = NetSSMRecord{Data: *raw.Data, Hash: *raw.Hash, Filename: *raw.Filename, OrigLen: *raw.OrigLen}
	label, rows, err = tokenizer.ParseNetSSMText(rec.Data, rowLen)
	if err != nil {
		return rec, "", nil, err
	}
	if n := len(rows) / rowLen; n != rec.OrigLen {
		return rec, "", nil, fmt.Errorf("OrigLen %d, but Data holds %d packets", rec.OrigLen, n)
	}
	return rec, label, rows, nil
}

func clipText(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
