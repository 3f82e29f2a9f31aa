package infer

import (
	"context"
	"testing"

	"github.com/netssm/netssm/infer/sampling"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/tokenizer"
)

// anyFlagsGrammar is the bundle's grammar with the TCP flag rule taken out:
// at a TCP header's flags byte every byte is allowed and taken under the
// structural rules only. It is the control that shows the rule at work.
type anyFlagsGrammar struct {
	*specGrammar
	spec *tokenizer.Spec
}

func (a anyFlagsGrammar) atTCPFlags() bool {
	p := a.g.PacketBytes()
	l := a.spec.Keep(p)
	return a.g.InPacket() && l.Proto == tokenizer.ProtoTCP && l.IPHdrLen > 0 && len(p) == l.IPHdrLen+13
}

func (a anyFlagsGrammar) Allowed(m []bool) {
	a.specGrammar.Allowed(m)
	if a.atTCPFlags() {
		for b := range tokenizer.NumByteTokens {
			m[b] = true
		}
	}
}

func (a anyFlagsGrammar) Advance(id int) error {
	if a.atTCPFlags() {
		return a.g.AdvanceLenient(uint16(id))
	}
	return a.specGrammar.Advance(id)
}

// tcpFlagCounts counts the TCP segments among packets and those whose flag
// set tokenizer.TCPFlagsValid refuses.
func tcpFlagCounts(spec *tokenizer.Spec, traces map[int][][]byte) (tcp, invalid int) {
	for _, pkts := range traces {
		for _, p := range pkts {
			l := spec.Keep(p)
			if l.Proto != tokenizer.ProtoTCP || len(p) < l.IPHdrLen+14 {
				continue
			}
			tcp++
			if !tokenizer.TCPFlagsValid(p[l.IPHdrLen+13]) {
				invalid++
			}
		}
	}
	return tcp, invalid
}

// TestConstrainedTCPFlagsAreValid samples a random-weight model (logits
// that know nothing of TCP) under the bundle's grammar: no generated TCP
// segment carries a flag set tokenizer.TCPFlagsValid refuses. The same
// sampling with only the flag rule taken out gives many.
func TestConstrainedTCPFlagsAreValid(t *testing.T) {
	orttest.Init(t)
	b, err := OpenBundle(writeTinyBundle(t, t.TempDir()), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := b.Prompt("web", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	run := func(newGrammar func() Grammar) (tcp, invalid int) {
		job := Job{Traces: 16, Batch: 8, Seed: 9, Prompt: prompt, Limits: Limits{Packets: 40}, IgnoreEOS: true,
			Sampling: sampling.Default(), Vocab: b.Vocab, Timing: b.Timing("web"), Start: epoch, NewGrammar: newGrammar}
		sink := newMemSink()
		if _, err := Generate(context.Background(), b.Model, sink, job); err != nil {
			t.Fatal(err)
		}
		return tcpFlagCounts(&b.Spec, sink.packets)
	}
	tcp, invalid := run(b.NewGrammar)
	ctlTCP, ctlInvalid := run(func() Grammar {
		return anyFlagsGrammar{b.NewGrammar().(*specGrammar), &b.Spec}
	})
	t.Logf("TCP segments with an invalid flag set: constrained %d of %d, without the flag rule %d of %d", invalid, tcp, ctlInvalid, ctlTCP)
	if tcp < 50 {
		t.Fatalf("only %d TCP segments generated: too few to judge the flag rule", tcp)
	}
	if invalid != 0 {
		t.Errorf("%d of %d constrained TCP segments carry an invalid flag set", invalid, tcp)
	}
	if ctlInvalid < ctlTCP/4 {
		t.Errorf("without the flag rule only %d of %d TCP segments carry an invalid flag set: the test cannot see the rule work", ctlInvalid, ctlTCP)
	}
}
