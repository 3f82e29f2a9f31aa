package capture_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

// FuzzReadAndTokenize feeds arbitrary bytes to the capture reader and every
// IP packet it yields to the tokenizer: nothing may panic, every packet the
// encoder keeps in full must pass the packet grammar, and decoding gives the
// kept bytes back.
func FuzzReadAndTokenize(f *testing.F) {
	for _, p := range capturetest.ProjectCaptures(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 4096 {
			b = b[:4096]
		}
		f.Add(b)
	}
	ip := capturetest.IPv4TCP([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, []byte{2, 4, 5, 0xb4}, []byte("data"))
	f.Add(capturetest.PcapBytes(101, 65535, []capturetest.Record{{Time: time.Unix(1, 0), Data: ip}}))
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"fuzz"}
	if err := spec.Validate(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := capture.NewReader("fuzz.pcap", bytes.NewReader(data))
		if err != nil {
			return
		}
		for n := 0; n < 1000; n++ {
			p, err := r.Next()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			if p.IP == nil {
				continue
			}
			enc, _ := spec.NewEncoder("fuzz")
			if err := enc.Add(p.Timestamp, p.IPWireLen(), p.IP); err != nil {
				continue
			}
			tr := enc.Finish()
			dec, err := spec.Decode(tr.Tokens, tokenizer.DecodeOptions{})
			if err != nil || len(dec.Packets) != 1 {
				t.Fatalf("decode: %v, %d packets", err, len(dec.Packets))
			}
			want := spec.KeptBytes(p.IP)
			if !bytes.Equal(dec.Packets[0].Bytes, want) {
				t.Fatalf("decoded bytes differ from the kept bytes")
			}
			if tr.Stats.Truncated > 0 || tr.Stats.Malformed > 0 {
				continue
			}
			g, _ := spec.NewGrammar()
			for i, tok := range tr.Tokens {
				if err := g.Advance(tok); err != nil {
					t.Fatalf("grammar refuses token %d of an encoded packet: %v", i, err)
				}
			}
		}
	})
}
