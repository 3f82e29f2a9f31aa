package tokenizer_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

func specWith(t testing.TB, s tokenizer.Spec, labels ...string) *tokenizer.Spec {
	t.Helper()
	s.Labels = labels
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return &s
}

var (
	a4 = [4]byte{192, 168, 1, 10}
	b4 = [4]byte{10, 0, 0, 53}
)

func TestVocabularyLayout(t *testing.T) {
	s := specWith(t, tokenizer.DefaultSpec(), "web", "dns")
	if s.VocabSize != 256+3+64+2 {
		t.Fatalf("vocabulary %d, want %d", s.VocabSize, 256+3+64+2)
	}
	for tok := 0; tok < 256; tok++ {
		if s.IsDt(tok) || s.IsLabel(tok) {
			t.Fatalf("byte %d also a special", tok)
		}
	}
	if id, ok := s.LabelToken("dns"); !ok || id != s.VocabSize-1 || s.TokenString(id) != "<label:dns>" {
		t.Fatalf("label dns id %d %v %q", id, ok, s.TokenString(id))
	}
	if s.TokenString(tokenizer.TokDt0+63) != "<dt:63>" || s.IsDt(tokenizer.TokDt0+64) {
		t.Fatal("dt range wrong")
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	s := specWith(t, tokenizer.PaperSpec(), "a", "b")
	s.Payload.UDP = 4
	b, err := json.Marshal(*s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokenizer.ParseSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.VocabSize != s.VocabSize || got.Layout != tokenizer.LayoutPaper || got.Payload.UDP != 4 || got.PaperPacketLen != 128 || len(got.Labels) != 2 {
		t.Fatalf("round trip changed the spec: %+v", got)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	m["vocab_size"] = 9999
	bad, _ := json.Marshal(m)
	if _, err := tokenizer.ParseSpec(bad); err == nil {
		t.Fatal("a vocab_size that disagrees with the labels was accepted")
	}
}

func TestDtBucketsAreLogSpacedAndContainTheirTimes(t *testing.T) {
	s := specWith(t, tokenizer.DefaultSpec(), "x")
	if s.DtBucket(0) != 0 || s.DtBucket(1000) != 0 || s.DtBucket(1001) != 1 {
		t.Fatalf("≤1µs must be bucket 0, just above it bucket 1: %d %d %d", s.DtBucket(0), s.DtBucket(1000), s.DtBucket(1001))
	}
	if s.DtBucket(60e9) != 62 || s.DtBucket(60e9+1) != 63 || s.DtBucket(3600e9) != 63 {
		t.Fatalf("≥60 s must reach the last buckets: %d %d", s.DtBucket(60e9), s.DtBucket(3600e9))
	}
	prev := 0
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		dt := int64(float64(100) * float64(int64(1)<<rng.IntN(40)) * rng.Float64())
		k := s.DtBucket(dt)
		lo, hi := s.DtBounds(k)
		if !(dt <= hi && (dt > lo || k == 0)) {
			t.Fatalf("dt %d in bucket %d with bounds (%d, %d]", dt, k, lo, hi)
		}
		if m := s.DtMid(k); s.DtBucket(m) != k {
			t.Fatalf("bucket %d's middle %d falls in bucket %d", k, m, s.DtBucket(m))
		}
	}
	for k := 1; k < 63; k++ {
		lo, hi := s.DtBounds(k)
		if lo >= hi {
			t.Fatalf("bucket %d empty", k)
		}
		_, phi := s.DtBounds(k - 1)
		if phi != lo {
			t.Fatalf("buckets %d and %d leave a gap", k-1, k)
		}
		prev = k
	}
	_ = prev
}

func TestKeepRule(t *testing.T) {
	s := specWith(t, tokenizer.DefaultSpec(), "x")
	tcpOpts := []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0} // MSS, SACK-perm, timestamps
	frag := capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 40))
	binary.BigEndian.PutUint16(frag[6:], 100) // fragment offset ≠ 0
	tso := capturetest.IPv4TCP(a4, b4, nil, make([]byte, 100))
	tso[2], tso[3] = 0, 0 // total length 0, as TCP segmentation offload writes
	withIPOpts := capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 20))
	withIPOpts = append(withIPOpts[:20:20], append([]byte{1, 1, 1, 0}, withIPOpts[20:]...)...)
	withIPOpts[0] = 0x46
	for _, c := range []struct {
		name            string
		ip              []byte
		ipHdr, l4, keep int
	}{
		{"tcp-options-payload-dropped", capturetest.IPv4TCP(a4, b4, tcpOpts, []byte("GET / HTTP/1.1")), 20, 36, 56},
		{"udp-12-payload-bytes", capturetest.IPv4UDP(a4, b4, 53, 53, make([]byte, 100)), 20, 8, 40},
		{"udp-short-payload", capturetest.IPv4UDP(a4, b4, 53, 53, []byte{1, 2, 3}), 20, 8, 31},
		{"ipv4-options", withIPOpts, 24, 8, 44},
		{"ipv6-udp", capturetest.IPv6UDP(false, make([]byte, 50)), 40, 8, 60},
		{"ipv6-hop-by-hop", capturetest.IPv6UDP(true, make([]byte, 50)), 48, 8, 68},
		{"non-first-fragment", frag, 20, 0, 20},
		{"tso-zero-length", tso, 20, 20, 40},
	} {
		l := s.Keep(c.ip)
		if !l.Complete || l.IPHdrLen != c.ipHdr || l.L4HdrLen != c.l4 || l.Keep != c.keep {
			t.Errorf("%s: %+v, want IP header %d, L4 header %d, keep %d", c.name, l, c.ipHdr, c.l4, c.keep)
		}
	}
	if l := s.Keep(capturetest.IPv4TCP(a4, b4, tcpOpts, nil)[:30]); l.Complete {
		t.Error("a packet cut inside its TCP header counts as complete")
	}
}

func encode(t testing.TB, s *tokenizer.Spec, label string, pkts [][]byte, times []time.Time) tokenizer.Trace {
	t.Helper()
	enc, err := s.NewEncoder(label)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if err := enc.Add(times[i], len(p), p); err != nil {
			t.Fatal(err)
		}
	}
	return enc.Finish()
}

func syntheticTrace() ([][]byte, []time.Time) {
	pkts := [][]byte{
		capturetest.IPv4TCP(a4, b4, []byte{2, 4, 5, 0xb4}, []byte("hello")),
		capturetest.IPv4UDP(a4, b4, 5353, 53, make([]byte, 64)),
		capturetest.IPv6UDP(true, []byte("abc")),
	}
	t0 := time.Unix(1700000000, 123456789)
	return pkts, []time.Time{t0, t0.Add(3 * time.Microsecond), t0.Add(2 * time.Second)}
}

// zeroChecksums is what the default spec keeps of a packet's bytes: the
// checksum bytes zeroed.
func zeroChecksums(sp *tokenizer.Spec, p []byte) []byte {
	q := append([]byte(nil), p...)
	if sp.ZeroChecksums() {
		for i := range q {
			if sp.ChecksumAt(q[:i]) {
				q[i] = 0
			}
		}
	}
	return q
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, c := range []struct {
		timing    bool
		checksums string
	}{{true, tokenizer.ChecksumsZero}, {false, tokenizer.ChecksumsZero}, {true, tokenizer.ChecksumsKeep}} {
		timing := c.timing
		s := tokenizer.DefaultSpec()
		s.Timing = timing
		s.Checksums = c.checksums
		sp := specWith(t, s, "web")
		pkts, times := syntheticTrace()
		tr := encode(t, sp, "web", pkts, times)
		if tr.Tokens[len(tr.Tokens)-1] != tokenizer.TokEOS || len(tr.PktOffsets) != 3 {
			t.Fatalf("trace frame wrong: %v", tr.Tokens)
		}
		for i, off := range tr.PktOffsets {
			if tr.Tokens[off] != tokenizer.TokPkt {
				t.Fatalf("packet %d offset does not point at <pkt>", i)
			}
			if tr.TsNs[i] != times[i].Sub(times[0]).Nanoseconds() {
				t.Fatalf("ts_ns %d wrong", i)
			}
		}
		d, err := sp.Decode(tr.Tokens, tokenizer.DecodeOptions{})
		if err != nil || d.Stats.String() != "" || d.Label != "web" || len(d.Packets) != 3 {
			t.Fatalf("decode: %v %q %+v", err, d.Stats, d)
		}
		for i, p := range d.Packets {
			want := zeroChecksums(sp, pkts[i][:sp.Keep(pkts[i]).Keep])
			if !bytes.Equal(p.Bytes, want) {
				t.Fatalf("checksums %s: packet %d bytes differ:\n got % x\nwant % x", c.checksums, i, p.Bytes, want)
			}
			if c.checksums == tokenizer.ChecksumsZero {
				// The checksum bytes are the only ones that change.
				orig := pkts[i][:len(want)]
				diff := 0
				for k := range want {
					if want[k] != orig[k] {
						diff++
					}
				}
				if diff > 4 || (i == 0 && diff == 0) {
					t.Fatalf("packet %d: %d bytes zeroed, want the checksum bytes (2–4, some in the TCP packet)", i, diff)
				}
			}
			if timing {
				dt := times[i].Sub(times[max(i-1, 0)]).Nanoseconds()
				if p.DtBucket != sp.DtBucket(dt) {
					t.Fatalf("packet %d bucket %d, want %d", i, p.DtBucket, sp.DtBucket(dt))
				}
			} else if p.DtBucket != -1 {
				t.Fatal("dt token without timing")
			}
		}
	}
}

func TestPaperLayoutPadsEveryPacketTo128(t *testing.T) {
	sp := specWith(t, tokenizer.PaperSpec(), "web")
	pkts, times := syntheticTrace()
	tr := encode(t, sp, "web", pkts, times)
	for i, off := range tr.PktOffsets {
		end := len(tr.Tokens) - 1
		if i+1 < len(tr.PktOffsets) {
			end = int(tr.PktOffsets[i+1])
		}
		if n := end - int(off) - 1; n != 128 {
			t.Fatalf("packet %d spans %d tokens, want 128", i, n)
		}
	}
	d, _ := sp.Decode(tr.Tokens, tokenizer.DecodeOptions{})
	if !bytes.Equal(d.Packets[1].Bytes, pkts[1][:40]) {
		t.Fatal("pads not stripped on decode")
	}
	g, _ := sp.NewGrammar()
	for i, tok := range tr.Tokens {
		if err := g.Advance(tok); err != nil {
			t.Fatalf("grammar refuses paper token %d: %v", i, err)
		}
	}
}

func TestDecodeCountsGrammarBreaksWithoutFailing(t *testing.T) {
	sp := specWith(t, tokenizer.DefaultSpec(), "web")
	toks := []uint16{0x45, tokenizer.TokPkt, tokenizer.TokPkt, uint16(tokenizer.TokDt0), 0x45, 0}
	d, err := sp.Decode(toks, tokenizer.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Stats.Stray != 1 || d.Stats.EmptyPackets != 1 || d.Stats.MissingDt != 1 || !d.Stats.NoEOS || !d.Stats.NoLabel || len(d.Packets) != 2 {
		t.Fatalf("stats %+v, %d packets", d.Stats, len(d.Packets))
	}
}

// grammarAccepts feeds every token of a trace to a fresh grammar.
func grammarAccepts(sp *tokenizer.Spec, toks []uint16) error {
	return grammarAcceptsMask(sp, toks, true)
}

// grammarAcceptsMask checks Advance on every token, and Allowed too when mask.
func grammarAcceptsMask(sp *tokenizer.Spec, toks []uint16, withMask bool) error {
	g, err := sp.NewGrammar()
	if err != nil {
		return err
	}
	mask := make([]bool, sp.VocabSize)
	for _, tok := range toks {
		if withMask {
			mask = g.Allowed(mask)
		}
		if withMask && !mask[tok] {
			return errors.New(sp.TokenString(int(tok)) + " masked out")
		}
		if err := g.Advance(tok); err != nil {
			return err
		}
	}
	if !g.Done() {
		return errors.New("trace did not end")
	}
	return nil
}

// eachWholePacket encodes every IP packet of the files as a trace of its
// own and calls fn with those whose kept bytes were all captured; it returns
// how many were captured short (skipped).
func eachWholePacket(t *testing.T, sp *tokenizer.Spec, files []string, fn func(file string, index int, tr tokenizer.Trace)) (short int) {
	t.Helper()
	for _, f := range files {
		eachIPPacket(t, f, func(p capture.Packet) {
			enc, _ := sp.NewEncoder(sp.Labels[0])
			enc.Add(p.Timestamp, p.IPWireLen(), p.IP)
			tr := enc.Finish()
			if tr.Stats.Truncated > 0 || tr.Stats.Malformed > 0 {
				short++
				return
			}
			fn(f, p.Index, tr)
		})
	}
	return short
}

// eachIPPacket calls fn with every IP packet of a capture file.
func eachIPPacket(t testing.TB, file string, fn func(p capture.Packet)) {
	t.Helper()
	r, err := capture.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if p.IP != nil {
			fn(p)
		}
	}
}

// checkCaptures checks the grammar accepts each packet of the files whose
// kept bytes were captured, one packet per trace.
func checkCaptures(t *testing.T, files []string, withMask bool) {
	for _, timing := range []bool{true, false} {
		s := tokenizer.DefaultSpec()
		s.Timing = timing
		sp := specWith(t, s, "x")
		accepted := 0
		truncated := eachWholePacket(t, sp, files, func(f string, index int, tr tokenizer.Trace) {
			if err := grammarAcceptsMask(sp, tr.Tokens, withMask); err != nil {
				t.Fatalf("%s packet %d (timing %v): %v", f, index, timing, err)
			}
			accepted++
		})
		t.Logf("timing %v: grammar accepted %d packets token by token; %d captured short of their kept bytes (skipped)", timing, accepted, truncated)
		if accepted == 0 {
			t.Fatal("no packet checked")
		}
	}
}

func TestGrammarAcceptsEveryEncodedProjectPacket(t *testing.T) {
	checkCaptures(t, capturetest.ProjectCaptures(t), true)
}

func TestGrammarAcceptsEveryEncodedSharedPacket(t *testing.T) {
	files := capturetest.SharedCaptures(t)
	if testing.Short() {
		t.Skip("-short")
	}
	checkCaptures(t, files, false)
}

func TestGrammarRefusesImpossiblePackets(t *testing.T) {
	s := tokenizer.DefaultSpec()
	s.Timing = false
	sp := specWith(t, s, "x")
	lbl, _ := sp.LabelToken("x")
	prefix := []uint16{uint16(lbl), tokenizer.TokPkt}
	udp := capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 30))
	tcp := capturetest.IPv4TCP(a4, b4, nil, nil)
	tcpBadOff := append([]byte(nil), tcp...)
	tcpBadOff[32] = 0x40 // data offset 4
	for _, c := range []struct {
		name string
		pkt  []byte
		end  []uint16
	}{
		{"ipv4-ihl-4", append([]byte{0x44}, udp[1:]...), []uint16{tokenizer.TokEOS}},
		{"version-5", append([]byte{0x55}, udp[1:]...), []uint16{tokenizer.TokEOS}},
		{"tcp-data-offset-4", tcpBadOff, []uint16{tokenizer.TokEOS}},
		{"ends-inside-udp-header", udp[:25], []uint16{tokenizer.TokEOS}},
		{"bytes-past-the-kept-length", udp[:41], []uint16{tokenizer.TokEOS}},
	} {
		toks := append([]uint16(nil), prefix...)
		for _, b := range zeroChecksums(sp, c.pkt) {
			toks = append(toks, uint16(b))
		}
		toks = append(toks, c.end...)
		if err := grammarAccepts(sp, toks); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	ok := append([]uint16(nil), prefix...)
	for _, b := range zeroChecksums(sp, udp[:40]) {
		ok = append(ok, uint16(b))
	}
	if err := grammarAccepts(sp, append(ok, tokenizer.TokEOS)); err != nil {
		t.Fatalf("the well-formed control packet is refused: %v", err)
	}
}

func TestGrammarMaskAgreesWithAdvance(t *testing.T) {
	checkMaskAgreesWithAdvance(t, false, 200, 300, 5)
}

// checkMaskAgreesWithAdvance walks random traces (runs of up to steps
// tokens, each drawn among the allowed ones) and checks at every step that
// Allowed and Advance agree on every token of the vocabulary.
func checkMaskAgreesWithAdvance(t *testing.T, wellFormed bool, runs, steps int, seed uint64) {
	checkMaskAgreesWithAdvanceSpec(t, specWith(t, tokenizer.DefaultSpec(), "a", "b"), wellFormed, runs, steps, seed)
}
