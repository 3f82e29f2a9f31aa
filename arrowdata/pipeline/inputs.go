// Package pipeline owns the data stage's whole-file operations behind
// `netssm-cli tokenize`, `detokenize` and `dataset info`: capture files →
// dataset (reading with package capture, optional Crypto-PAn, encoding with
// package tokenizer, writing with package arrowdata), dataset → pcaps (with
// package pcapout), and dataset statistics. Command files stay thin; this
// package must not parse flags or print for the user.
package pipeline

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
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

// Labeler gives each capture file its workload label.
type Labeler func(path string) (string, error)

// FixedLabel labels every file the same.
func FixedLabel(name string) Labeler {
	return func(string) (string, error) { return name, nil }
}

// DirLabel labels a file by the name of the directory holding it.
func DirLabel(path string) (string, error) {
	dir := filepath.Base(filepath.Dir(path))
	if dir == "." || dir == "/" || dir == "" {
		return "", fmt.Errorf("%s: no directory name to use as its label; pass --label or --labels", path)
	}
	return dir, nil
}

// ReadLabelsCSV reads a CSV of file,label rows (a header row naming "file"
// and "label" columns is recognised, extra columns are ignored). A file
// matches a row by its path as given, its path relative to the CSV's
// directory, or its base name.
func ReadLabelsCSV(path string) (Labeler, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("labels CSV: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.Comment = '#'
	fileCol, labelCol := 0, 1
	byPath := map[string]string{}
	byBase := map[string]string{}
	dupBase := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("labels CSV %s: %w", path, err)
		}
		if line == 1 {
			fc, lc := -1, -1
			for i, h := range rec {
				switch strings.ToLower(strings.TrimSpace(h)) {
				case "file", "path":
					fc = i
				case "label":
					lc = i
				}
			}
			if fc >= 0 && lc >= 0 {
				fileCol, labelCol = fc, lc
				continue
			}
		}
		if len(rec) <= max(fileCol, labelCol) {
			return nil, fmt.Errorf("labels CSV %s line %d: want file,label", path, line)
		}
		file, label := strings.TrimSpace(rec[fileCol]), strings.TrimSpace(rec[labelCol])
		if file == "" || label == "" {
			return nil, fmt.Errorf("labels CSV %s line %d: empty file or label", path, line)
		}
		byPath[filepath.Clean(file)] = label
		base := filepath.Base(file)
		if old, ok := byBase[base]; ok && old != label {
			dupBase[base] = true
		}
		byBase[base] = label
	}
	dir := filepath.Dir(path)
	return func(p string) (string, error) {
		if l, ok := byPath[filepath.Clean(p)]; ok {
			return l, nil
		}
		if rel, err := filepath.Rel(dir, p); err == nil {
			if l, ok := byPath[rel]; ok {
				return l, nil
			}
		}
		base := filepath.Base(p)
		if l, ok := byBase[base]; ok && !dupBase[base] {
			return l, nil
		}
		return "", fmt.Errorf("%s: not listed in labels CSV %s", p, path)
	}, nil
}
