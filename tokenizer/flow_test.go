package tokenizer_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// encodeFile encodes a capture's IP packets as one trace under spec sp.
func encodeFile(t testing.TB, sp *tokenizer.Spec, file string) tokenizer.Trace {
	t.Helper()
	enc, err := sp.NewEncoder(sp.Labels[0])
	if err != nil {
		t.Fatal(err)
	}
	eachIPPacket(t, file, func(p capture.Packet) {
		if err := enc.Add(p.Timestamp, p.IPWireLen(), p.IP); err != nil {
			t.Fatalf("%s packet %d: %v", file, p.Index, err)
		}
	})
	return enc.Finish()
}

// flowAndV1 returns the flow spec and the v1 spec it must agree with.
func flowAndV1(t testing.TB) (flow, v1 *tokenizer.Spec) {
	return specWith(t, tokenizer.FlowSpec(), "x"), specWith(t, tokenizer.DefaultSpec(), "x")
}

// checkFlowRoundTrip encodes each file in both layouts and checks that the
// flow layout decodes to v1's kept bytes, packet for packet; it returns the
// packets and tokens of each layout.
func checkFlowRoundTrip(t *testing.T, files []string, withMask bool) (pkts, flowToks, v1Toks int) {
	flow, v1 := flowAndV1(t)
	return checkFlowRoundTripSpecs(t, flow, v1, files, withMask)
}

func checkFlowRoundTripSpecs(t *testing.T, flow, v1 *tokenizer.Spec, files []string, withMask bool) (pkts, flowToks, v1Toks int) {
	for _, f := range files {
		ft, vt := encodeFile(t, flow, f), encodeFile(t, v1, f)
		fd, err := flow.Decode(ft.Tokens, tokenizer.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vd, _ := v1.Decode(vt.Tokens, tokenizer.DecodeOptions{})
		if fd.Stats != (tokenizer.DecodeStats{}) {
			t.Fatalf("%s: flow decode: %s", f, fd.Stats)
		}
		if len(fd.Packets) != len(vd.Packets) {
			t.Fatalf("%s: %d packets in the flow layout, %d in v1", f, len(fd.Packets), len(vd.Packets))
		}
		for i := range vd.Packets {
			if !bytes.Equal(fd.Packets[i].Bytes, vd.Packets[i].Bytes) || fd.Packets[i].DtBucket != vd.Packets[i].DtBucket {
				t.Fatalf("%s packet %d: flow layout decodes\n%x (dt %d), v1\n%x (dt %d)", f, i,
					fd.Packets[i].Bytes, fd.Packets[i].DtBucket, vd.Packets[i].Bytes, vd.Packets[i].DtBucket)
			}
		}
		if err := grammarAcceptsMask(flow, ft.Tokens, withMask); err != nil {
			t.Fatalf("%s: the grammar refuses the flow layout's tokens: %v", f, err)
		}
		pkts += len(vd.Packets)
		flowToks += len(ft.Tokens)
		v1Toks += len(vt.Tokens)
	}
	t.Logf("%d files, %d packets: %.1f tokens per packet in the flow layout, %.1f in v1",
		len(files), pkts, float64(flowToks)/float64(pkts), float64(v1Toks)/float64(pkts))
	return pkts, flowToks, v1Toks
}

func TestFlowLayoutDecodesToV1KeptBytesOnProjectCaptures(t *testing.T) {
	checkFlowRoundTrip(t, capturetest.ProjectCaptures(t), true)
}

func TestFlowLayoutWithoutTimingOrWithChecksumsDecodesToV1KeptBytes(t *testing.T) {
	for _, c := range []struct {
		timing bool
		sums   string
	}{{false, tokenizer.ChecksumsZero}, {true, tokenizer.ChecksumsKeep}} {
		f, v := tokenizer.FlowSpec(), tokenizer.DefaultSpec()
		f.Timing, v.Timing, f.Checksums, v.Checksums = c.timing, c.timing, c.sums, c.sums
		checkFlowRoundTripSpecs(t, specWith(t, f, "x"), specWith(t, v, "x"), capturetest.ProjectCaptures(t), true)
	}
}

func TestFlowLayoutDecodesToV1KeptBytesOnSharedCaptures(t *testing.T) {
	files := capturetest.SharedCaptures(t)
	if testing.Short() {
		t.Skip("-short")
	}
	pkts, flowToks, _ := checkFlowRoundTrip(t, files, false)
	if per := float64(flowToks) / float64(pkts); per > 20 {
		t.Errorf("%.1f tokens per packet in the flow layout, want ≤ 20", per)
	}
}

func TestFlowGrammarMaskAgreesWithAdvance(t *testing.T) {
	flow, _ := flowAndV1(t)
	for _, strict := range []bool{false, true} {
		checkMaskAgreesWithAdvanceSpec(t, flow, strict, 60, 400, 9)
	}
	// Walks steered into TCP handshakes, so that the handshake rule's masks
	// are checked too (a uniform walk rarely answers a SYN); a small table
	// keeps the clones cheap and evicts flows mid-handshake.
	small := tokenizer.FlowSpec()
	small.FlowTable = 8
	sp := specWith(t, small, "x")
	for seed := range uint64(2) {
		_, pkts := walkFlowWith(t, sp, true, seed, 60, handshakeBias(sp), true)
		hs := followHandshakes(t, pkts)
		t.Logf("seed %d: %+v", seed, hs)
		if hs.opened < 5 || hs.answered < 3 {
			t.Fatalf("seed %d: the walk opened %d flows with a SYN and answered %d: it did not test the handshake rule", seed, hs.opened, hs.answered)
		}
	}
}

// checkMaskAgreesWithAdvanceSpec walks random traces of spec sp and checks
// at every step that Allowed and Advance agree on every token.
func checkMaskAgreesWithAdvanceSpec(t *testing.T, sp *tokenizer.Spec, wellFormed bool, runs, steps int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for run := 0; run < runs; run++ {
		g, _ := sp.NewGrammar()
		if wellFormed {
			g.WellFormed()
		}
		for step := 0; step < steps && !g.Done(); step++ {
			mask := g.Allowed(nil)
			var allowed []uint16
			for tok, ok := range mask {
				err := g.Clone().Advance(uint16(tok))
				if ok != (err == nil) {
					t.Fatalf("token %s after %x: mask says %v, Advance says %v", sp.TokenString(tok), g.PacketBytes(), ok, err)
				}
				if ok {
					allowed = append(allowed, uint16(tok))
				}
			}
			if len(allowed) == 0 {
				t.Fatalf("dead end: no token allowed after %x", g.PacketBytes())
			}
			if err := g.Advance(allowed[rng.IntN(len(allowed))]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// walkFlow draws a flow-layout trace of n packets token by token, each
// token uniformly among those the grammar allows (well-formed rules on when
// strict), ending a packet with probability 1/3 where it may end; it returns
// the tokens and the packets as the grammar held them when they ended.
func walkFlow(t *testing.T, sp *tokenizer.Spec, strict bool, seed uint64, n int) ([]uint16, [][]byte) {
	return walkFlowWith(t, sp, strict, seed, n, nil, false)
}

// walkBias picks a token among ok, the tokens the grammar allows inside the
// packet g is in (inNew: a <flow:new> packet; last: the token before), or
// returns false to leave the choice uniform.
type walkBias func(g *tokenizer.Grammar, inNew bool, last string, ok []uint16, rng *rand.Rand) (uint16, bool)

// walkFlowWith is walkFlow with the choice of a packet's tokens steered by
// bias (nil: uniform), checking at every step that Allowed and Advance agree
// on every token when checkMask.
func walkFlowWith(t *testing.T, sp *tokenizer.Spec, strict bool, seed uint64, n int, bias walkBias, checkMask bool) ([]uint16, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	g, _ := sp.NewGrammar()
	if strict {
		g.WellFormed()
	}
	lbl, _ := sp.LabelToken(sp.Labels[0])
	var toks []uint16
	var pkts [][]byte
	inNew, last := false, ""
	step := func(tok uint16) {
		t.Helper()
		if err := g.Advance(tok); err != nil {
			t.Fatalf("after %d tokens: %v", len(toks), err)
		}
		toks = append(toks, tok)
		last = sp.TokenString(int(tok))
		switch last {
		case "<pkt>":
			inNew = false
		case "<flow:new>":
			inNew = true
		}
	}
	step(uint16(lbl))
	step(tokenizer.TokPkt)
	for len(pkts) < n {
		mask := g.Allowed(nil)
		if checkMask {
			for tok, allowed := range mask {
				if err := g.Clone().Advance(uint16(tok)); allowed != (err == nil) {
					t.Fatalf("token %s after %x: mask says %v, Advance says %v", sp.TokenString(tok), g.PacketBytes(), allowed, err)
				}
			}
		}
		var ok []uint16
		for tok, allowed := range mask {
			if allowed && tok != tokenizer.TokPkt && tok != tokenizer.TokEOS {
				ok = append(ok, uint16(tok))
			}
		}
		if mask[tokenizer.TokPkt] && (rng.IntN(3) == 0 || !g.InPacket() || len(ok) == 0) {
			if g.InPacket() {
				pkts = append(pkts, append([]byte(nil), g.PacketBytes()...))
			}
			if len(pkts) == n {
				step(tokenizer.TokEOS)
				break
			}
			step(tokenizer.TokPkt)
			continue
		}
		if len(ok) == 0 {
			t.Fatalf("dead end after %x", g.PacketBytes())
		}
		if bias != nil {
			if tok, chosen := bias(g, inNew, last, ok, rng); chosen {
				step(tok)
				continue
			}
		}
		step(ok[rng.IntN(len(ok))])
	}
	return toks, pkts
}

func TestFlowGrammarPacketsAreWellFormedAndDecodeAsWalked(t *testing.T) {
	flow, _ := flowAndV1(t)
	toks, walked := walkFlow(t, flow, true, 3, 800)
	d, err := flow.Decode(toks, tokenizer.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Stats.Stray+d.Stats.Incomplete+d.Stats.EmptyPackets+d.Stats.MissingDt > 0 {
		t.Fatalf("decoding a grammar walk: %s", d.Stats)
	}
	refs := 0
	for _, tok := range toks {
		if s := flow.TokenString(int(tok)); len(s) > 6 && s[:6] == "<flow:" && s != "<flow:new>" && s != "<flow:raw>" {
			refs++
		}
	}
	for i, p := range walked {
		if !bytes.Equal(d.Packets[i].Bytes, p) {
			t.Fatalf("packet %d: the grammar held %x, Decode gives %x", i, p, d.Packets[i].Bytes)
		}
		if _, _, err := pcapout.Check(p); err != nil {
			t.Fatalf("packet %d %x: %v", i, p, err)
		}
		l := flow.Keep(p)
		if !l.Complete || l.Malformed || len(p) != l.Keep {
			t.Fatalf("packet %d %x: not a whole packet (%+v)", i, p, l)
		}
		if l.Proto == tokenizer.ProtoTCP && !tokenizer.TCPFlagsValid(p[l.IPHdrLen+13]) {
			t.Fatalf("packet %d %x: TCP flags %#02x", i, p, p[l.IPHdrLen+13])
		}
	}
	t.Logf("%d packets walked, %d of them in known flows", len(walked), refs)
	if refs < len(walked)/4 {
		t.Fatalf("only %d of %d walked packets referred to a known flow: the walk did not test the field rules", refs, len(walked))
	}
}

// One Restarter serves every file, its cache bounded to the largest trace,
// so that traces are dropped and decoded again between files: a restarted
// segment is the same either way, and the cache stays within its bound.
func TestFlowRestartDecodesToTheSamePackets(t *testing.T) {
	flow, _ := flowAndV1(t)
	files := capturetest.ProjectCaptures(t)
	limit, total := 0, 0
	for _, f := range files {
		d, _ := flow.Decode(encodeFile(t, flow, f).Tokens, tokenizer.DecodeOptions{})
		n := 0
		for _, p := range d.Packets {
			n += len(p.Bytes) + len(p.Link) + 64 // as the cache counts
		}
		limit, total = max(limit, n), total+n
	}
	if total <= limit {
		t.Fatalf("the traces (%d bytes) fit the cache bound (%d): nothing would be dropped", total, limit)
	}
	r := flow.NewRestarter()
	r.SetCacheLimit(limit)
	for fi, f := range files {
		tr := encodeFile(t, flow, f)
		full, _ := flow.Decode(tr.Tokens, tokenizer.DecodeOptions{})
		for k := 1; k+3 < len(tr.PktOffsets); k += 7 {
			start, stop := int(tr.PktOffsets[k]), int(tr.PktOffsets[k+3])
			part := append(r.Restart(fi, tr.Tokens, start, stop), tokenizer.TokEOS)
			if c := r.CachedBytes(); c > limit || c == 0 {
				t.Fatalf("the restart cache holds %d bytes; want some, within its limit of %d", c, limit)
			}
			if err := grammarAccepts(flow, part); err != nil {
				t.Fatalf("%s packets %d..%d restarted: %v", f, k, k+3, err)
			}
			d, _ := flow.Decode(part, tokenizer.DecodeOptions{})
			if len(d.Packets) != 3 {
				t.Fatalf("%s packets %d..%d restarted: %d packets", f, k, k+3, len(d.Packets))
			}
			for i, p := range d.Packets {
				if !bytes.Equal(p.Bytes, full.Packets[k+i].Bytes) {
					t.Fatalf("%s packet %d restarted at %d: %x, want %x", f, k+i, k, p.Bytes, full.Packets[k+i].Bytes)
				}
			}
		}
	}
}

func FuzzFlowDecode(f *testing.F) {
	flow := specWith(f, tokenizer.FlowSpec(), "x")
	for _, file := range capturetest.ProjectCaptures(f) {
		tr := encodeFile(f, flow, file)
		f.Add(tokensToBytes(tr.Tokens[:min(len(tr.Tokens), 400)]))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		toks := make([]uint16, len(raw)/2)
		for i := range toks {
			toks[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
		}
		d, err := flow.Decode(toks, tokenizer.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := flow.NewGrammar()
		for _, tok := range toks {
			if g.Advance(tok) != nil {
				break
			}
		}
		_ = d
	})
}

func tokensToBytes(toks []uint16) []byte {
	b := make([]byte, 2*len(toks))
	for i, t := range toks {
		b[2*i], b[2*i+1] = byte(t>>8), byte(t)
	}
	return b
}

// BenchmarkFlowStrictGrammar replays a project capture's flow tokens through
// the strict grammar, asking for the mask before every token as generation
// does; it reports the time per token.
func BenchmarkFlowStrictGrammar(b *testing.B) {
	flow, _ := flowAndV1(b)
	files := capturetest.ProjectCaptures(b)
	tr := encodeFile(b, flow, files[0])
	mask := make([]bool, flow.VocabSize)
	b.ResetTimer()
	for b.Loop() {
		g, _ := flow.NewGrammar()
		g = g.WellFormed()
		for _, tok := range tr.Tokens {
			g.Allowed(mask)
			if err := g.Advance(tok); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.Tokens)), "ns/token")
}

// Spec version 3 names an address of the trace's address table with one
// token; version 2 (no address table) spells every address. Both decode to
// v1's kept bytes, and the address references make version 3 shorter.
func TestFlowAddressReferencesShortenNewFlowsAndDecode(t *testing.T) {
	_, v1 := flowAndV1(t)
	v2 := tokenizer.FlowSpec()
	v2.Version, v2.AddrTable = 2, 0
	v3 := tokenizer.FlowSpec()
	files := capturetest.ProjectCaptures(t)
	_, toks2, _ := checkFlowRoundTripSpecs(t, specWith(t, v2, "x"), v1, files, false)
	_, toks3, _ := checkFlowRoundTripSpecs(t, specWith(t, v3, "x"), v1, files, false)
	refs := map[int]int{}
	sp := specWith(t, v3, "x")
	for _, f := range files {
		for _, tok := range encodeFile(t, sp, f).Tokens {
			if s := sp.TokenString(int(tok)); strings.HasPrefix(s, "<addr:") {
				refs[int(tok)]++
			}
		}
	}
	t.Logf("version 2: %d tokens, version 3: %d; address references %v", toks2, toks3, refs)
	if len(refs) == 0 || toks3 >= toks2 {
		t.Fatalf("version 3 has %d tokens (%d address references), version 2 %d: the address table saved nothing", toks3, len(refs), toks2)
	}
	bad := tokenizer.FlowSpec()
	bad.Version = 2
	if err := bad.Validate(); err == nil {
		t.Fatal("spec version 2 with an address table validated")
	}
}
