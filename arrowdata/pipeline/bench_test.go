package pipeline_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/capture/labels"
	"github.com/netssm/netssm/tokenizer"
)

// bareRead is the baseline: a plain pcapgo read loop over the files.
func bareRead(b *testing.B, files []string) int {
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		var next func() ([]byte, error)
		if r, err := pcapgo.NewReader(fh); err == nil {
			next = func() ([]byte, error) { d, _, err := r.ZeroCopyReadPacketData(); return d, err }
		} else {
			fh.Seek(0, io.SeekStart)
			ng, err := pcapgo.NewNgReader(fh, pcapgo.NgReaderOptions{WantMixedLinkType: true})
			if err != nil {
				b.Fatal(err)
			}
			next = func() ([]byte, error) { d, _, err := ng.ZeroCopyReadPacketData(); return d, err }
		}
		for {
			if _, err := next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
			n++
		}
		fh.Close()
	}
	return n
}

// tokenizeFiles reads with package capture and encodes with the tokenizer
// (everything tokenize does except writing Parquet).
func tokenizeFiles(b *testing.B, files []string, spec *tokenizer.Spec) (pkts, toks int) {
	for _, f := range files {
		r, err := capture.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		enc, _ := spec.NewEncoder("x")
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if p.IP == nil {
				continue
			}
			enc.Add(p.Timestamp, p.IPWireLen(), p.IP)
			pkts++
		}
		toks += len(enc.Finish().Tokens)
		r.Close()
	}
	return pkts, toks
}

// BenchmarkTokenizeVsPcapgo measures, in one run over ../shared/data, the
// packets/s of a bare pcapgo read loop, of reading + tokenizing, and of the
// whole `tokenize` (with the Parquet file), and reports each as a ratio to
// the bare loop.
func BenchmarkTokenizeVsPcapgo(b *testing.B) {
	files := capturetest.SharedCaptures(b)
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"x"}
	spec.Validate()
	out := filepath.Join(b.TempDir(), "d.parquet")
	var tBare, tTok, tAll time.Duration
	var nBare, nTok, nAll int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		nBare += bareRead(b, files)
		t1 := time.Now()
		n, _ := tokenizeFiles(b, files, &spec)
		nTok += n
		t2 := time.Now()
		rep, err := pipeline.Tokenize(out, files, pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec(), Labels: labels.Fixed("x")})
		if err != nil {
			b.Fatal(err)
		}
		nAll += rep.Packets
		tAll += time.Since(t2)
		tTok += t2.Sub(t1)
		tBare += t1.Sub(t0)
	}
	bare := float64(nBare) / tBare.Seconds()
	tok := float64(nTok) / tTok.Seconds()
	all := float64(nAll) / tAll.Seconds()
	b.ReportMetric(bare, "pcapgo-pkts/s")
	b.ReportMetric(tok, "tokenize-pkts/s")
	b.ReportMetric(all, "tokenize+parquet-pkts/s")
	b.ReportMetric(tok/bare, "tokenize/pcapgo")
	b.ReportMetric(all/bare, "tokenize+parquet/pcapgo")
}
