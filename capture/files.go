package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Extensions are the file name endings FindFiles takes in a directory.
var Extensions = []string{".pcap", ".pcapng", ".cap"}

// FindFiles turns command-line arguments (capture files, or directories
// searched recursively) into a de-duplicated file list, each directory's
// files sorted. A file named explicitly is taken whatever its ending.
// Symbolic links to directories are followed, at the top and inside (a
// label directory may be a link), each real directory once; the paths
// found keep the names given, so labels taken from directory names hold.
func FindFiles(args []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such capture file or directory (check the path): %w", a, fs.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", a, err)
		}
		found := []string{a}
		if st.IsDir() {
			found = nil
			if err := findIn(a, map[string]bool{}, &found); err != nil {
				return nil, fmt.Errorf("listing captures under %s: %w", a, err)
			}
			if len(found) == 0 {
				return nil, fmt.Errorf("no capture files (%s) under %s", strings.Join(Extensions, ", "), a)
			}
			sort.Strings(found)
		}
		for _, p := range found {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// findIn adds the capture files under dir to found; visited holds the real
// paths of the directories already searched (a link cycle ends there).
func findIn(dir string, visited map[string]bool, found *[]string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if visited[real] {
		return nil
	}
	visited[real] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(p)
			if err != nil {
				continue // a dangling link
			}
			isDir = st.IsDir()
		}
		if isDir {
			if err := findIn(p, visited, found); err != nil {
				return err
			}
		} else if hasCaptureExtension(e.Name()) {
			*found = append(*found, p)
		}
	}
	return nil
}

func hasCaptureExtension(name string) bool {
	name = strings.ToLower(name)
	for _, ext := range Extensions {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}
