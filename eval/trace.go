package eval

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/internal/progress"
)

// Trace is one capture file, parsed: every record in file order (non-IP
// records included, with Version 0) and the workload label it belongs to.
type Trace struct {
	Path    string
	Label   string
	Packets []PacketFields
}

// IPPackets returns the number of records that carry a parsed IP header.
func (t *Trace) IPPackets() int {
	n := 0
	for i := range t.Packets {
		if t.Packets[i].has(stIP) {
			n++
		}
	}
	return n
}

// LoadTrace reads and parses one capture file (pcap or pcapng, any link type
// that package capture understands).
func LoadTrace(path, label string) (*Trace, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening capture %s: %w", path, err)
	}
	defer r.Close()
	t := &Trace{Path: path, Label: label}
	for {
		nonIP := r.Stats().NonIP
		pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s after packet %d: %w", path, len(t.Packets), err)
		}
		wireLen := pkt.WireLen
		if pkt.IP != nil {
			wireLen = max(pkt.IPWireLen(), len(pkt.IP)) // the frame's length from the IP header on
		}
		p := parseFields(pkt.Timestamp.UnixNano(), wireLen, pkt.IP)
		if r.Stats().NonIP > nonIP && carriesProtocolType(pkt.LinkTypeID) {
			p.Status |= stOtherProtocol
		}
		t.Packets = append(t.Packets, p)
	}
	return t, nil
}

// carriesProtocolType reports whether a link type names the network protocol
// of each frame (an EtherType or address family), so that a frame it marks
// as not IP is a frame of another protocol (ARP, LLDP, EAPOL, …) rather than
// a broken IP packet. Raw-IP link types name none: a record there that is
// not IP is broken.
func carriesProtocolType(link uint16) bool {
	switch link {
	case capture.LinkTypeEthernet, capture.LinkTypeLinuxSLL, capture.LinkTypeLinuxSLL2, capture.LinkTypeNull, capture.LinkTypeLoop:
		return true
	}
	return false
}

// LoadTraces reads captures in parallel (up to GOMAXPROCS at once) and
// returns them in the order of paths. labels gives each file's label.
func LoadTraces(paths []string, labels Labeler, what string) ([]*Trace, error) {
	traces := make([]*Trace, len(paths))
	errs := make([]error, len(paths))
	bar := progress.New(int64(len(paths)), "reading "+what, "files")
	defer bar.Finish()
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			traces[i], errs[i] = LoadTrace(p, labels.Label(p))
			bar.Add(1)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return traces, nil
}

// captureExts are the file name endings taken when a directory is given.
var captureExts = []string{".pcap", ".pcapng", ".cap"}

// ExpandCaptures turns command-line arguments (capture files or directories,
// searched recursively for *.pcap, *.pcapng, *.cap) into a sorted file list.
func ExpandCaptures(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such capture file or directory (check the path): %w", a, fs.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", a, err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		// The trailing separator makes a directory given as a symbolic
		// link walk its target (WalkDir does not follow a link at its root);
		// the paths found keep the name given.
		err = filepath.WalkDir(a+string(filepath.Separator), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			name := strings.ToLower(d.Name())
			for _, ext := range captureExts {
				if strings.HasSuffix(name, ext) {
					found = append(found, p)
					break
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listing captures under %s: %w", a, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no capture files (*.pcap, *.pcapng, *.cap) under %s", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// Labeler names the workload of a capture: from the labels CSV read by
// ReadLabels, else the name of the directory that holds the file.
type Labeler struct {
	csv pipeline.Labeler // nil: directory names only
}

// Label returns the label of the capture at path.
func (l Labeler) Label(path string) string {
	if l.csv != nil {
		if v, err := l.csv(path); err == nil {
			return v
		}
	}
	dir := filepath.Base(filepath.Dir(path))
	if dir == "." || dir == string(filepath.Separator) || dir == "" {
		return "unlabelled"
	}
	return dir
}

// ReadLabels reads a labels CSV as `netssm-cli tokenize --labels` does
// (pipeline.ReadLabelsCSV); files it does not list fall back to their
// directory's name. An empty path gives the directory-name rule alone.
func ReadLabels(path string) (Labeler, error) {
	if path == "" {
		return Labeler{}, nil
	}
	csv, err := pipeline.ReadLabelsCSV(path)
	if err != nil {
		return Labeler{}, fmt.Errorf("reading labels: %w", err)
	}
	return Labeler{csv: csv}, nil
}
