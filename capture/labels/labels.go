// Package labels names the workload of a capture file: one label for
// every file, the name of the directory that holds it, or a CSV of
// file,label rows. The data stage (tokenize) and evaluation (eval --real)
// read labels through it; it does not read captures.
package labels

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Labeler gives each capture file its workload label.
type Labeler func(path string) (string, error)

// Fixed labels every file the same.
func Fixed(name string) Labeler {
	return func(string) (string, error) { return name, nil }
}

// FromDir labels a file by the name of the directory holding it.
func FromDir(path string) (string, error) {
	dir := filepath.Base(filepath.Dir(path))
	if dir == "." || dir == "/" || dir == "" {
		return "", fmt.Errorf("%s: no directory name to use as its label; pass --label or --labels", path)
	}
	return dir, nil
}

// ReadCSV reads a CSV of file,label rows (a header row naming "file"
// and "label" columns is recognised, extra columns are ignored). A file
// matches a row by its path as given, its path relative to the CSV's
// directory, or its base name.
func ReadCSV(path string) (Labeler, error) {
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
