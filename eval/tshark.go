package eval

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Malformed packets as Wireshark's dissectors see them: tshark marks a frame
// it cannot dissect with the expert item _ws.malformed ("Malformed Packet").
// Frames cut by the snap length are not malformed (tshark says "Packet size
// limited during capture" instead).

// MalformedSide counts one side's malformed frames, pooled and per label.
// Layers counts them by the last protocol tshark dissected (the last entry
// of frame.protocols: "dns" for a DNS payload that breaks the DNS dissector,
// "tcp" for a TCP header), so a report tells header faults from payload
// bytes that an application dissector rejects.
type MalformedSide struct {
	Frames   Share            `json:"frames"` // malformed frames of all frames
	PerLabel map[string]Share `json:"per_label"`
	Layers   map[string]int64 `json:"layers"`
}

// Malformed is the tshark section of a report.
type Malformed struct {
	Tool  string        `json:"tool"` // tshark's version line
	Real  MalformedSide `json:"real"`
	Synth MalformedSide `json:"synth"`
}

// tsharkMalformed counts the frames of one capture that tshark marks
// malformed, in all and by the last protocol dissected.
func tsharkMalformed(tshark, path string) (int64, map[string]int64, error) {
	cmd := exec.Command(tshark, "-n", "-r", path, "-Y", "_ws.malformed", "-T", "fields", "-e", "frame.protocols")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, nil, fmt.Errorf("tshark on %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	var n int64
	layers := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		protos := strings.TrimSpace(sc.Text())
		if protos == "" {
			continue
		}
		n++
		layers[protos[strings.LastIndexByte(protos, ':')+1:]]++
	}
	return n, layers, sc.Err()
}

// tsharkVersion returns the first line of `tshark --version`.
func tsharkVersion(tshark string) string {
	out, err := exec.Command(tshark, "--version").Output()
	if err != nil {
		return "tshark"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// malformedSide runs tshark over every trace's file (up to GOMAXPROCS at once).
func malformedSide(tshark string, traces []*Trace) (MalformedSide, error) {
	counts := make([]int64, len(traces))
	layers := make([]map[string]int64, len(traces))
	errs := make([]error, len(traces))
	parallel(len(traces), func(i int) { counts[i], layers[i], errs[i] = tsharkMalformed(tshark, traces[i].Path) })
	if err := errors.Join(errs...); err != nil {
		return MalformedSide{}, err
	}
	s := MalformedSide{PerLabel: map[string]Share{}, Layers: map[string]int64{}}
	for _, l := range layers {
		for proto, n := range l {
			s.Layers[proto] += n
		}
	}
	var bad, all int64
	byLabel := map[string][2]int64{}
	for i, t := range traces {
		n := int64(len(t.Packets))
		bad, all = bad+counts[i], all+n
		l := byLabel[t.Label]
		byLabel[t.Label] = [2]int64{l[0] + counts[i], l[1] + n}
	}
	s.Frames = newShare(bad, all)
	for l, c := range byLabel {
		s.PerLabel[l] = newShare(c[0], c[1])
	}
	return s, nil
}

// malformed runs tshark over both sides; tshark is its path.
func malformed(tshark string, real, synth []*Trace) (*Malformed, error) {
	m := &Malformed{Tool: tsharkVersion(tshark)}
	var err error
	if m.Real, err = malformedSide(tshark, real); err != nil {
		return nil, err
	}
	if m.Synth, err = malformedSide(tshark, synth); err != nil {
		return nil, err
	}
	return m, nil
}
