package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// DetokenizeOptions configure Detokenize.
type DetokenizeOptions struct {
	Link pcapout.Link // raw (default) or ethernet; a netssm-layout dataset's own link type always
	// ExactTimes takes packet times from the dataset's ts_ns even when the
	// spec has timing tokens; by default times come from the tokens then
	// (the path generation takes), and from ts_ns only without timing.
	ExactTimes bool
	Limit      int // > 0: only the first Limit traces
}

// TraceFile is one written pcap.
type TraceFile struct {
	TraceID string
	Path    string
	Report  pcapout.TraceReport
}

// DetokenizeReport sums a Detokenize run.
type DetokenizeReport struct {
	Files          []TraceFile
	Packets        int
	Written        int
	Invalid        int
	ChecksumFixed  int
	LengthRepaired int
	GrammarIssues  int // traces whose tokens broke the grammar somewhere
}

// PcapName turns a trace id into a file path below the output directory:
// label/source[_partN].pcap.
func PcapName(t *arrowdata.Trace) string {
	base := strings.TrimPrefix(t.TraceID, t.Label+"/")
	for _, ext := range []string{".pcapng", ".pcap", ".cap"} {
		base = strings.Replace(base, ext, "", 1)
	}
	r := strings.NewReplacer("/", "_", "\\", "_", "#", "_part", "~", "_dup", ":", "_")
	return filepath.Join(sanitize(t.Label), r.Replace(base)+".pcap")
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// Detokenize writes every trace of a dataset as a pcap under outDir
// (outDir/LABEL/NAME.pcap), each file complete or absent.
func Detokenize(dataset, outDir string, opt DetokenizeOptions) (DetokenizeReport, error) {
	var rep DetokenizeReport
	ds, err := arrowdata.Open(dataset)
	if err != nil {
		return rep, err
	}
	defer ds.Close()
	spec := ds.Spec()
	if spec.Layout == tokenizer.LayoutNetSSM {
		opt.Link = pcapout.Link(spec.Link) // rows keep their link header
	}
	n := ds.NumTraces()
	if opt.Limit > 0 && opt.Limit < n {
		n = opt.Limit
	}
	bar := progress.New(int64(n), "detokenizing", "traces")
	defer bar.Finish()
	i := 0
	for t, err := range ds.Traces() {
		if err != nil {
			return rep, err
		}
		if i >= n {
			break
		}
		i++
		path := filepath.Join(outDir, PcapName(t))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return rep, fmt.Errorf("output directory: %w", err)
		}
		to := pcapout.TraceOptions{
			Options: pcapout.Options{Link: opt.Link},
			Start:   time.Unix(0, t.StartUnixNs),
			Name:    t.TraceID,
		}
		if opt.ExactTimes || !spec.Timing {
			to.TsNs = t.TsNs
		}
		tr, err := pcapout.WriteTrace(path, &spec, t.Tokens, to)
		if err != nil {
			return rep, fmt.Errorf("trace %s: %w", t.TraceID, err)
		}
		rep.Files = append(rep.Files, TraceFile{TraceID: t.TraceID, Path: path, Report: tr})
		rep.Packets += tr.Decoded
		rep.Written += tr.Written
		rep.Invalid += tr.Invalid
		rep.ChecksumFixed += tr.ChecksumFixed
		rep.LengthRepaired += tr.LengthRepaired
		if tr.Decode.String() != "" {
			rep.GrammarIssues++
		}
		bar.Add(1)
	}
	return rep, nil
}
