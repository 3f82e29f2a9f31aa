package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/bits"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

type pcapRecord struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func pcapRecords(t *testing.T, file []byte) []pcapRecord {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var recs []pcapRecord
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, pcapRecord{ci, data})
	}
}

// addressFields gives where an IP packet's source address starts and the
// address length (0: none).
func addressFields(ip []byte) (off, n int) {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		return 12, 4
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return 8, 16
	}
	return 0, 0
}

// freshImages compares the files of the same job sampled without and with
// --fresh-hosts: the same records, timestamps and bytes but for the
// addresses (and the recomputed IPv4 header checksum, which must be valid);
// it returns what each address became.
func freshImages(t *testing.T, plain, fresh map[string][]byte) map[netip.Addr]netip.Addr {
	t.Helper()
	images := map[netip.Addr]netip.Addr{}
	if len(plain) != len(fresh) {
		t.Fatalf("%d files without --fresh-hosts, %d with", len(plain), len(fresh))
	}
	for name, pf := range plain {
		pr, fr := pcapRecords(t, pf), pcapRecords(t, fresh[name])
		if len(pr) != len(fr) {
			t.Fatalf("%s: %d packets without --fresh-hosts, %d with", name, len(pr), len(fr))
		}
		for i := range pr {
			p, f := pr[i].data, fr[i].data
			pc, fc := pr[i].ci, fr[i].ci
			if !pc.Timestamp.Equal(fc.Timestamp) || pc.CaptureLength != fc.CaptureLength || pc.Length != fc.Length || len(p) != len(f) {
				t.Fatalf("%s packet %d: record %+v became %+v", name, i, pr[i].ci, fr[i].ci)
			}
			off, n := addressFields(p)
			for j := range p {
				addr := j >= off && j < off+2*n
				ipv4Sum := n == 4 && (j == 10 || j == 11)
				if !addr && !ipv4Sum && p[j] != f[j] {
					t.Errorf("%s packet %d: byte %d changed (%#02x → %#02x)", name, i, j, p[j], f[j])
				}
			}
			if n == 4 && pcapout.IPv4Checksum(f[:int(f[0]&0x0f)*4]) != 0 {
				t.Errorf("%s packet %d: IPv4 header checksum invalid", name, i)
			}
			for a := off; n > 0 && a < off+2*n; a += n {
				in, _ := netip.AddrFromSlice(p[a : a+n])
				out, _ := netip.AddrFromSlice(f[a : a+n])
				if prev, seen := images[in]; seen && prev != out {
					t.Errorf("%v written as %v and as %v", in, prev, out)
				}
				images[in] = out
			}
		}
	}
	return images
}

func commonPrefixBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			return n + bits.LeadingZeros8(d)
		}
		n += 8
	}
	return n
}

// TestSampleFreshHostsMapsOnlyAddressesThroughCryptoPAn: the same job with
// and without --fresh-hosts writes the same packets but for their
// addresses, each written as its Crypto-PAn image under the key (so every
// pair of addresses shares exactly as long a prefix after as before); the
// same key gives the same files again, and a 64-hex-digit key is the key
// itself.
func TestSampleFreshHostsMapsOnlyAddressesThroughCryptoPAn(t *testing.T) {
	bundle := sampleBundle(t)
	const phrase = "fresh hosts test phrase"
	plain := sampleDir(t, bundle)
	fresh := sampleDir(t, bundle, "--fresh-hosts", phrase)
	images := freshImages(t, plain, fresh)
	an, _ := cryptopan.FromPassphrase(phrase)
	sharing := 0
	for in, out := range images {
		if want := an.Addr(in); out != want || out == in {
			t.Errorf("%v written as %v, want its Crypto-PAn image %v", in, out, want)
		}
		for in2, out2 := range images {
			if in == in2 || in.Is4() != in2.Is4() {
				continue
			}
			k := commonPrefixBits(in, in2)
			if k2 := commonPrefixBits(out, out2); k2 != k {
				t.Errorf("%v and %v share %d prefix bits, their images %v and %v %d", in, in2, k, out, out2, k2)
			}
			if k > 0 && (!in.Is4() || k > 96) {
				sharing++
			}
		}
	}
	t.Logf("%d addresses mapped, %d ordered pairs sharing a prefix", len(images), sharing)
	if len(images) < 10 || sharing == 0 {
		t.Fatalf("%d addresses, %d pairs sharing a prefix: too few to judge the mapping", len(images), sharing)
	}
	sameSampleFiles(t, "same --fresh-hosts key twice", fresh, sampleDir(t, bundle, "--fresh-hosts", phrase))

	hexKey := strings.Repeat("0123456789abcdef", 4)
	raw, _ := hex.DecodeString(hexKey)
	byHex, _ := cryptopan.New(raw)
	for in, out := range freshImages(t, plain, sampleDir(t, bundle, "--fresh-hosts", hexKey)) {
		if want := byHex.Addr(in); out != want {
			t.Errorf("hex key: %v written as %v, want %v", in, out, want)
		}
	}
}

// TestSampleFreshHostsActsOnPacketsOfAnyLayout: the mapping works on the
// written packets, not on tokens, so the paper layout's packets (padded
// token blocks) get it just the same.
func TestSampleFreshHostsActsOnPacketsOfAnyLayout(t *testing.T) {
	bundle := sampleBundleOf(t, tokenizer.PaperSpec())
	an, _ := cryptopan.FromPassphrase("k")
	images := freshImages(t, sampleDir(t, bundle), sampleDir(t, bundle, "--fresh-hosts", "k"))
	if len(images) == 0 {
		t.Fatal("no address in the paper layout's packets")
	}
	for in, out := range images {
		if out != an.Addr(in) {
			t.Errorf("%v written as %v, want %v", in, out, an.Addr(in))
		}
	}
}
