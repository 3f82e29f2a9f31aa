// Package pipeline owns the data stage's whole-file operations behind
// `netssm-cli tokenize`, `detokenize` and `dataset info`: capture files →
// dataset (reading with package capture, optional Crypto-PAn, encoding with
// package tokenizer, writing with package arrowdata), dataset → pcaps (with
// package pcapout), and dataset statistics. Command files stay thin; this
// package must not parse flags or print for the user.
package pipeline

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CaptureExts are the file name endings taken when a directory is given.
var CaptureExts = []string{".pcap", ".pcapng", ".cap", ".pcap.gz"}

// ExpandInputs turns arguments (capture files or directories, searched
// recursively) into a sorted, de-duplicated file list. A file named
// explicitly is taken whatever its ending.
func ExpandInputs(args []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", a, err)
		}
		if !st.IsDir() {
			add(a)
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
			for _, ext := range CaptureExts {
				if strings.HasSuffix(name, ext) {
					found = append(found, p)
					break
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("input directory %s: %w", a, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("input directory %s: no capture files (%s)", a, strings.Join(CaptureExts, ", "))
		}
		sort.Strings(found)
		for _, p := range found {
			add(p)
		}
	}
	return out, nil
}
