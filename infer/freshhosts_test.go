package infer

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/pcapout"
)

// TestFreshHostsWriterMapsOnlyAddresses writes a flow's two directions and
// an IPv6 packet through the bundle's packet check with fresh hosts: each
// address becomes its Crypto-PAn image (the same in both directions), the
// IPv4 header checksum is valid again, and no other byte changes.
func TestFreshHostsWriterMapsOnlyAddresses(t *testing.T) {
	an, _ := cryptopan.FromPassphrase("fresh")
	ref, _ := cryptopan.FromPassphrase("fresh")
	a, b := [4]byte{192, 168, 1, 10}, [4]byte{10, 0, 0, 53}
	pkts := [][]byte{
		capturetest.IPv4UDP(a, b, 5353, 53, []byte("query")),
		capturetest.IPv4UDP(b, a, 53, 5353, []byte("answer")),
		capturetest.IPv4TCP(a, b, nil, []byte("x")),
		capturetest.IPv6UDP(false, []byte("rtp")),
	}
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf, NewFreshHosts(an).Before(pcapoutCheck), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		q := bytes.Clone(p)
		if err := w.WritePacket(epoch, q); err != nil {
			t.Fatal(err)
		}
		off, n := 12, 4
		if p[0]>>4 == 6 {
			off, n = 8, 16
		}
		for i := range p {
			inAddr := i >= off && i < off+2*n
			if !inAddr && !(n == 4 && (i == 10 || i == 11)) && q[i] != p[i] {
				t.Errorf("%x: byte %d changed", p, i)
			}
		}
		for f := off; f < off+2*n; f += n {
			in, _ := netip.AddrFromSlice(p[f : f+n])
			out, _ := netip.AddrFromSlice(q[f : f+n])
			if want := ref.Addr(in); out != want {
				t.Errorf("%v written as %v, want its Crypto-PAn image %v", in, out, want)
			}
		}
		if n == 4 && pcapout.IPv4Checksum(q[:20]) != 0 {
			t.Errorf("%x: IPv4 header checksum invalid after mapping", q)
		}
	}
}
