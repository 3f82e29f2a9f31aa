package tokenizer_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

func Example() {
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"dns"}
	if err := spec.Validate(); err != nil {
		panic(err)
	}
	query := capturetest.IPv4UDP([4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 1}, 40000, 53, []byte("a DNS query payload"))
	enc, _ := spec.NewEncoder("dns")
	t0 := time.Unix(1700000000, 0)
	enc.Add(t0, len(query), query)
	enc.Add(t0.Add(250*time.Microsecond), len(query), query)
	tr := enc.Finish()
	var words []string
	for _, tok := range tr.Tokens[:6] {
		words = append(words, spec.TokenString(int(tok)))
	}
	fmt.Println(strings.Join(words, " "), "…")
	fmt.Println("tokens per packet:", int(tr.PktOffsets[1]-tr.PktOffsets[0]), "(<pkt>, <dt>, 20 IP + 8 UDP + 12 payload bytes)")
	fmt.Println("second packet:", spec.TokenString(int(tr.Tokens[tr.PktOffsets[1]+1])))
	dec, _ := spec.Decode(tr.Tokens, tokenizer.DecodeOptions{})
	fmt.Println("decoded:", dec.Label, len(dec.Packets), "packets of", len(dec.Packets[0].Bytes), "bytes")
	// Output:
	// <label:dns> <pkt> <dt:0> 45 00 00 …
	// tokens per packet: 42 (<pkt>, <dt>, 20 IP + 8 UDP + 12 payload bytes)
	// second packet: <dt:20>
	// decoded: dns 2 packets of 40 bytes
}
