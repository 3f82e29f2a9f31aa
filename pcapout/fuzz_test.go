package pcapout_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// FuzzDetokenize writes arbitrary token streams as pcaps: nothing may panic,
// every decoded packet is either written or counted invalid, and the file
// reads back with as many records as were written.
func FuzzDetokenize(f *testing.F) {
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"web"}
	spec.Validate()
	enc, _ := spec.NewEncoder("web")
	enc.Add(time.Unix(1, 0), 60, capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 32)))
	enc.Add(time.Unix(2, 0), 60, capturetest.IPv6UDP(false, []byte("x")))
	tr := enc.Finish()
	raw := make([]byte, 2*len(tr.Tokens))
	for i, t := range tr.Tokens {
		binary.LittleEndian.PutUint16(raw[2*i:], t)
	}
	f.Add(raw)
	f.Add([]byte{1, 1, 0x45, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		toks := make([]uint16, len(data)/2)
		for i := range toks {
			toks[i] = binary.LittleEndian.Uint16(data[2*i:]) % uint16(spec.VocabSize+5)
		}
		var buf bytes.Buffer
		w, err := pcapout.NewWriter(&buf, "fuzz.pcap", pcapout.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := pcapout.WriteTraceTo(w, &spec, toks, pcapout.TraceOptions{})
		if err != nil {
			t.Fatalf("WriteTraceTo: %v", err)
		}
		if rep.Written+rep.Invalid != rep.Decoded {
			t.Fatalf("%d decoded, %d written, %d invalid", rep.Decoded, rep.Written, rep.Invalid)
		}
		r, err := capture.NewReader("fuzz.pcap", &buf)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if p.IP == nil {
				t.Fatalf("record %d is not IP", p.Index)
			}
			got++
		}
		if got != rep.Written {
			t.Fatalf("read back %d records, wrote %d", got, rep.Written)
		}
	})
}
