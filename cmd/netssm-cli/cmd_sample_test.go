package main

import (
	"path/filepath"
	"testing"
)

func TestSampleUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	base := []string{"netssm-cli", "-q", "sample", "--model", filepath.Join(dir, "nobundle"), "--label", "x"}
	cases := map[string][]string{
		"no output":              {},
		"traces into one file":   {"--traces", "3", "-o", filepath.Join(dir, "a.pcap")},
		"shard into one file":    {"--shard", "0/2", "-o", filepath.Join(dir, "a.pcap")},
		"bad shard":              {"--shard", "2/2", "-o", dir},
		"bad top-p":              {"--top-p", "1.5", "-o", filepath.Join(dir, "a.pcap")},
		"bad temperature":        {"--temperature", "-1", "-o", filepath.Join(dir, "a.pcap")},
		"unknown preset":         {"--preset", "fast", "-o", filepath.Join(dir, "a.pcap")},
		"zero batch":             {"--batch", "0", "-o", filepath.Join(dir, "a.pcap")},
		"negative packets":       {"--packets", "-5", "-o", filepath.Join(dir, "a.pcap")},
		"prompt packets alone":   {"--prompt-packets", "4", "-o", filepath.Join(dir, "a.pcap")},
		"not a pcap name":        {"-o", filepath.Join(dir, "a.txt")},
		"bad execution provider": {"--ep", "tpu", "-o", filepath.Join(dir, "a.pcap")},
		"stray argument":         {"-o", filepath.Join(dir, "a.pcap"), "extra"},
		"empty shard":            {"--traces", "1", "--shard", "1/2", "-o", dir},
	}
	for name, extra := range cases {
		t.Run(name, func(t *testing.T) {
			if code := run(append(append([]string{}, base...), extra...)); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
		})
	}
}
