package pipeline_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

// validNetSSMJSONL makes a small NetSSM JSONL file: two traces of Ethernet
// TCP and UDP rows, written as NetSSM writes them.
func validNetSSMJSONL(tb testing.TB) []byte {
	tb.Helper()
	sp := tokenizer.NetSSMSpec(tokenizer.LinkEthernet)
	sp.Labels = []string{"dns", "web"}
	if err := sp.Validate(); err != nil {
		tb.Fatal(err)
	}
	eth := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	for i, label := range sp.Labels {
		e, _ := sp.NewEncoder(label)
		for k := range 3 + i {
			ip := capturetest.IPv4UDP(a4, b4, 53, 53, bytes.Repeat([]byte{byte(k + 1)}, 4*k))
			if label == "web" {
				ip = capturetest.IPv4TCP(a4, b4, []byte{2, 4, 5, 180}, nil)
			}
			if err := e.AddFrame(time.Unix(0, 0), len(ip), tokenizer.LinkEthernet, eth, ip); err != nil {
				tb.Fatal(err)
			}
		}
		tr := e.Finish()
		text, err := sp.NetSSMText(tr.Tokens)
		if err != nil {
			tb.Fatal(err)
		}
		name := "input/" + label + ".pcap"
		rec := pipeline.NetSSMRecord{Data: text, Hash: sha256Hex(name), Filename: name, OrigLen: len(tr.PktOffsets)}
		if err := enc.Encode(rec); err != nil {
			tb.Fatal(err)
		}
	}
	return out.Bytes()
}

var (
	a4 = [4]byte{192, 168, 1, 10}
	b4 = [4]byte{10, 0, 0, 53}
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// FuzzImportJSONL: no input makes the importer panic or accept something
// that does not export; an accepted file exports to a file that imports to
// the same export (a fixed point), and a refused one is named in the error.
// The seeds (a valid file and damaged copies) run in every `go test`.
func FuzzImportJSONL(f *testing.F) {
	valid := validNetSSMJSONL(f)
	f.Add(valid)
	lines := bytes.SplitAfter(valid, []byte("\n"))
	f.Add(lines[0])
	f.Add(bytes.Replace(valid, []byte(" 8 0 69"), []byte(" 8 0 069"), 1))
	f.Add(bytes.Replace(valid, []byte(`"OrigLen":3`), []byte(`"OrigLen":4`), 1))
	f.Add(bytes.Replace(valid, []byte(" <|pkt|> "), []byte(" "), 1))
	f.Add(bytes.Replace(valid, []byte(`"Hash":"`), []byte(`"Hash":"0`), 1))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte("\n"))
	f.Add([]byte(`{"Data":"<|a|> 1","Hash":"","Filename":"","OrigLen":1,"Extra":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.jsonl")
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ds := filepath.Join(dir, "d.parquet")
		_, _, err := pipeline.ImportJSONL([]string{in}, ds, pipeline.ImportJSONLOptions{})
		if err != nil {
			if !strings.Contains(err.Error(), in) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			if _, serr := os.Stat(ds); serr == nil {
				t.Fatal("a dataset was written from a refused file")
			}
			return
		}
		once := exportImported(t, ds, filepath.Join(dir, "once.jsonl"))
		ds2 := filepath.Join(dir, "d2.parquet")
		if _, _, err := pipeline.ImportJSONL([]string{filepath.Join(dir, "once.jsonl")}, ds2, pipeline.ImportJSONLOptions{}); err != nil {
			t.Fatalf("the export of an accepted file is refused: %v", err)
		}
		if twice := exportImported(t, ds2, filepath.Join(dir, "twice.jsonl")); !bytes.Equal(once, twice) {
			t.Fatal("export → import → export is not a fixed point")
		}
	})
}

func exportImported(t *testing.T, ds, out string) []byte {
	t.Helper()
	if _, err := pipeline.ExportJSONL(ds, out, pipeline.ExportJSONLOptions{}); err != nil {
		t.Fatalf("an accepted file does not export: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A NetSSM file made by NetSSM's rules imports and exports unchanged.
func TestNetSSMJSONLImportOfAValidFileExportsItBack(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.jsonl")
	if err := os.WriteFile(p, validNetSSMJSONL(t), 0o644); err != nil {
		t.Fatal(err)
	}
	checkImportExportIdentity(t, p, "")
}

// Each kind of bad line is refused with the file and line named.
func TestNetSSMJSONLImportNamesFileAndLineOfBadInput(t *testing.T) {
	valid := validNetSSMJSONL(t)
	second := bytes.Index(valid, []byte("\n")) + 1
	for name, c := range map[string]struct{ data, want string }{
		"not JSON":          {string(valid[:second]) + "Data: 1\n", "line 2: not a NetSSM record"},
		"unknown field":     {strings.Replace(string(valid), `"OrigLen"`, `"Extra":1,"OrigLen"`, 1), "line 1: not a NetSSM record"},
		"missing field":     {strings.Replace(string(valid), `,"Filename":"input/dns.pcap"`, "", 1), "line 1: a NetSSM record needs"},
		"wrong hash":        {strings.Replace(string(valid), `"Hash":"`, `"Hash":"f`, 1), "line 1: Hash"},
		"wrong OrigLen":     {strings.Replace(string(valid), `"OrigLen":3`, `"OrigLen":2`, 1), "line 1: OrigLen 2, but Data holds 3 packets"},
		"short packet":      {strings.Replace(string(valid), ` 8 0 69`, ` 8 69`, 1), "line 1: packet 1 has 127 byte values"},
		"byte out of range": {strings.Replace(string(valid), ` 8 0 69`, ` 8 0 690`, 1), "line 1: word 15"},
		"blank line":        {string(valid[:second]) + "\n" + string(valid[second:]), "line 2: not a NetSSM record"},
		"bad label":         {strings.Replace(string(valid), `<|dns|>`, `<|d<s|>`, 1), "line 1: tokenizer label"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "bad.jsonl")
			os.WriteFile(in, []byte(c.data), 0o644)
			_, _, err := pipeline.ImportJSONL([]string{in}, filepath.Join(dir, "d.parquet"), pipeline.ImportJSONLOptions{})
			if err == nil || !strings.Contains(err.Error(), in+" "+c.want) {
				t.Fatalf("error %v, want it to name %s %s", err, in, c.want)
			}
		})
	}
}
