package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/tokenizer"
)

// TokenizeOptions configure Tokenize.
type TokenizeOptions struct {
	Spec       tokenizer.Spec        // layout, timing, payload; labels are added from Labels
	Labels     Labeler               // default DirLabel
	MaxPackets int                   // > 0: split a capture into traces of at most this many packets
	Anonymize  *cryptopan.Anonymizer // rewrite addresses before tokenizing
	Strict     bool                  // stop at the first bad file (and write no dataset)
	Writer     []arrowdata.WriterOption
}

// FileReport is what happened to one input file.
type FileReport struct {
	Path       string
	Label      string
	Traces     int
	Packets    int // IP packets tokenized
	Tokens     int
	Capture    capture.Stats
	Encode     tokenizer.EncodeStats
	Anonymized int   // packets whose addresses were rewritten
	Err        error // the file is bad (its packets read before the error are kept)
}

// TokenizeReport sums a Tokenize run.
type TokenizeReport struct {
	Files   []FileReport
	Traces  int
	Packets int
	Tokens  int
	Failed  int // files with an error
	Spec    tokenizer.Spec
}

// ErrBadInputs is returned (wrapped) when some input files were bad but the
// dataset was written from the rest.
var ErrBadInputs = errors.New("some input files are bad")

// Tokenize reads capture files and writes the dataset at out. A bad file is
// reported and skipped past (its packets before the error are kept) and the
// run returns an error wrapping ErrBadInputs at the end; with Strict the
// first bad file stops the run and no dataset is written.
func Tokenize(out string, files []string, opt TokenizeOptions) (TokenizeReport, error) {
	var rep TokenizeReport
	if len(files) == 0 {
		return rep, fmt.Errorf("no input captures")
	}
	labeler := opt.Labels
	if labeler == nil {
		labeler = DirLabel
	}
	spec := opt.Spec
	if spec.Layout == tokenizer.LayoutNetSSM && spec.Link == "" {
		link, err := firstLinkType(files)
		if err != nil {
			return rep, err
		}
		spec.Link = link
	}
	labels := make([]string, len(files))
	var uniq []string
	seen := map[string]bool{}
	for i, f := range files {
		l, err := labeler(f)
		if err != nil {
			return rep, err
		}
		labels[i] = l
		if !seen[l] {
			seen[l] = true
			uniq = append(uniq, l)
		}
	}
	sort.Strings(uniq)
	for _, l := range uniq {
		if _, err := spec.AddLabel(l); err != nil {
			return rep, err
		}
	}
	if err := spec.Validate(); err != nil {
		return rep, err
	}
	rep.Spec = spec
	w, err := arrowdata.Create(out, spec, opt.Writer...)
	if err != nil {
		return rep, err
	}
	defer w.Abort()
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	bar := progress.NewBytes(total, "tokenizing")
	defer bar.Finish()
	ids := map[string]int{}
	for i, f := range files {
		fr := tokenizeFile(w, &spec, f, labels[i], opt, ids, bar)
		rep.Files = append(rep.Files, fr)
		rep.Traces += fr.Traces
		rep.Packets += fr.Packets
		rep.Tokens += fr.Tokens
		if fr.Err != nil {
			rep.Failed++
			slog.Warn("bad capture", "file", f, "err", fr.Err)
			if opt.Strict {
				return rep, fr.Err
			}
		}
	}
	if rep.Traces == 0 {
		return rep, errors.Join(fmt.Errorf("no IP packets in any input; nothing to write"), badInputs(rep))
	}
	if err := w.Close(); err != nil {
		return rep, err
	}
	return rep, badInputs(rep)
}

func badInputs(rep TokenizeReport) error {
	if rep.Failed == 0 {
		return nil
	}
	var errs []error
	for _, f := range rep.Files {
		if f.Err != nil {
			errs = append(errs, f.Err)
		}
	}
	return fmt.Errorf("%w (%d of %d): %w", ErrBadInputs, rep.Failed, len(rep.Files), errors.Join(errs...))
}

// countingReader feeds the progress bar.
type countingReader struct {
	r   io.Reader
	bar *progress.Bar
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.Add(int64(n))
	return n, err
}

func tokenizeFile(w *arrowdata.Writer, spec *tokenizer.Spec, path, label string, opt TokenizeOptions, ids map[string]int, bar *progress.Bar) (fr FileReport) {
	fr = FileReport{Path: path, Label: label}
	f, err := os.Open(path)
	if err != nil {
		fr.Err = fmt.Errorf("opening capture: %w", err)
		return fr
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		fr.Err = fmt.Errorf("reading %s: %w", path, err)
		return fr
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fr.Err = fmt.Errorf("reading %s: %w", path, err)
		return fr
	}
	r, err := capture.NewReader(path, countingReader{f, bar})
	if err != nil {
		fr.Err = err
		return fr
	}
	defer func() { fr.Capture = r.Stats() }()
	base := filepath.Base(path)
	var (
		enc      *tokenizer.Encoder
		start    int64
		linkName string
		part     int
		ipBuf    []byte
	)
	flush := func() {
		if enc == nil || enc.Packets() == 0 {
			return
		}
		tr := enc.Finish()
		fr.Encode = addEncodeStats(fr.Encode, tr.Stats)
		id := label + "/" + base
		if opt.MaxPackets > 0 {
			id = fmt.Sprintf("%s#%d", id, part)
		}
		if n := ids[id]; n > 0 {
			id = fmt.Sprintf("%s~%d", id, n)
		}
		ids[id]++
		if err := w.Write(&arrowdata.Trace{
			TraceID: id, Label: label, Source: base, SourceSHA256: sum, LinkType: linkName,
			Tokens: tr.Tokens, PktOffsets: tr.PktOffsets, TsNs: tr.TsNs, WireLen: tr.WireLen,
			StartUnixNs: start,
		}); err != nil && fr.Err == nil {
			fr.Err = err
		}
		fr.Traces++
		fr.Tokens += len(tr.Tokens)
		enc = nil
		part++
	}
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fr.Err = err
			break
		}
		if p.IP == nil {
			continue
		}
		if enc == nil {
			if enc, err = spec.NewEncoder(label); err != nil {
				fr.Err = err
				return fr
			}
			start = p.Timestamp.UnixNano()
			if linkName == "" {
				linkName = LinkTypeName(p.LinkTypeID)
			}
		}
		ip := p.IP
		if opt.Anonymize != nil {
			ipBuf = append(ipBuf[:0], ip...)
			ip = ipBuf
			if opt.Anonymize.Packet(ip) {
				fr.Anonymized++
			}
		}
		before := enc.Packets()
		if err := enc.AddFrame(p.Timestamp, p.IPWireLen(), LinkTypeName(p.LinkTypeID), p.LinkHdr, ip); err != nil {
			fr.Err = fmt.Errorf("%s: packet %d: %w", path, p.Index, err)
			break
		}
		if enc.Packets() == before {
			continue // left out by the layout (netssm: not TCP or UDP)
		}
		fr.Packets++
		if opt.MaxPackets > 0 && enc.Packets() >= opt.MaxPackets {
			flush()
		}
	}
	flush()
	if fr.Packets == 0 && fr.Err == nil {
		slog.Warn("capture has no IP packets; no trace written", "file", path)
	}
	return fr
}

func addEncodeStats(a, b tokenizer.EncodeStats) tokenizer.EncodeStats {
	a.Packets += b.Packets
	a.Truncated += b.Truncated
	a.Malformed += b.Malformed
	a.Cut += b.Cut
	a.NegDt += b.NegDt
	a.Skipped += b.Skipped
	return a
}

// LinkTypeName names a LINKTYPE_ number the way the dataset stores it
// (capture.LinkName).
func LinkTypeName(lt uint16) string { return capture.LinkName(lt) }

// firstLinkType names the link type of the first capture in files whose
// first IP packet has a link header NetSSM's rows can hold: a netssm-layout
// dataset holds rows of one link type, and captures of others are reported
// as bad inputs.
func firstLinkType(files []string) (string, error) {
	var seen []string
	for _, f := range files {
		link, ok := captureLink(f)
		if !ok {
			continue // no IP packet, or a bad file (reported when it is tokenized)
		}
		switch link {
		case tokenizer.LinkEthernet, tokenizer.LinkLinuxSLL, tokenizer.LinkRaw:
			return link, nil
		}
		seen = append(seen, filepath.Base(f)+": "+link)
	}
	if len(seen) > 0 {
		return "", fmt.Errorf("no capture has a link type NetSSM's rows can hold (%s, %s or %s): %s", tokenizer.LinkEthernet, tokenizer.LinkLinuxSLL, tokenizer.LinkRaw, strings.Join(seen, ", "))
	}
	return "", fmt.Errorf("no IP packets in any input; nothing to write")
}

// captureLink names the link type of a capture's first IP packet.
func captureLink(path string) (string, bool) {
	r, err := capture.Open(path)
	if err != nil {
		return "", false
	}
	defer r.Close()
	for {
		p, err := r.Next()
		if err != nil {
			return "", false
		}
		if p.IP != nil {
			return LinkTypeName(p.LinkTypeID), true
		}
	}
}
