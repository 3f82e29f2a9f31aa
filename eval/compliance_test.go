package eval

import (
	"math"
	"testing"
)

func TestRefusedResetAndUnansweredHandshakesAreNotJudged(t *testing.T) {
	var isn, rsn uint32 = 1000, 5000
	for name, segs := range map[string][]seg{
		"refused (RST answers the SYN)": {{true, "S", isn, 0, 0}, {false, "RA", 0, isn + 1, 0}, {true, "S", isn, 0, 0}, {false, "RA", 0, isn + 1, 0}},
		"reset after SYN-ACKs":          {{true, "S", isn, 0, 0}, {false, "SA", rsn, isn + 1, 0}, {false, "SA", rsn, isn + 1, 0}, {true, "R", isn + 1, 0, 0}},
		"unanswered SYNs":               {{true, "S", isn, 0, 0}, {true, "S", isn, 0, 0}, {true, "S", isn, 0, 0}},
	} {
		c := analyzeTrace(tcpTrace(t, segs)).comp
		if c.FlowsOpeningWithSYN != 1 || c.HandshakeEligible != 0 {
			t.Errorf("%s: opening with SYN %d, judged %d; want 1, 0", name, c.FlowsOpeningWithSYN, c.HandshakeEligible)
		}
	}
}

func TestRetransmittedAndRetriedHandshakesAreInOrder(t *testing.T) {
	var isn, rsn uint32 = 1000, 5000
	for name, segs := range map[string][]seg{
		// The SYN-ACK was lost on its way: the client sends its SYN again.
		"SYN retransmitted after the SYN-ACK": {{true, "S", isn, 0, 0}, {false, "SA", rsn, isn + 1, 0}, {true, "S", isn, 0, 0}, {false, "SA", rsn, isn + 1, 0}, {true, "A", isn + 1, rsn + 1, 0}},
		// The client gave up and tried again with a new ISN.
		"new ISN": {{true, "S", isn, 0, 0}, {true, "S", isn + 7777, 0, 0}, {false, "SA", rsn, isn + 7778, 0}, {true, "A", isn + 7778, rsn + 1, 0}},
	} {
		c := analyzeTrace(tcpTrace(t, segs)).comp
		if c.HandshakeEligible != 1 || c.HandshakeOK != 1 {
			t.Errorf("%s: %d of %d handshakes in order, want 1 of 1", name, c.HandshakeOK, c.HandshakeEligible)
		}
	}
}

func TestKeepAliveAndNewConnectionOnAReusedPortKeepSequenceMonotone(t *testing.T) {
	var isn, rsn uint32 = 1000, 5000
	open := []seg{{true, "S", isn, 0, 0}, {false, "SA", rsn, isn + 1, 0}, {true, "A", isn + 1, rsn + 1, 0}, {true, "PA", isn + 1, rsn + 1, 100}}
	keepAlive := append(append([]seg(nil), open...), seg{true, "A", isn + 100, rsn + 1, 0}, seg{false, "A", rsn + 1, isn + 101, 0})
	reuse := append(append([]seg(nil), open...), seg{true, "S", 20, 0, 0}, seg{false, "SA", 90, 21, 0}, seg{true, "A", 21, 91, 0})
	for name, segs := range map[string][]seg{"keep-alive probe": keepAlive, "new connection, same 5-tuple": reuse} {
		c := analyzeTrace(tcpTrace(t, segs)).comp
		if c.SeqChecked == 0 || c.SeqOK != c.SeqChecked || c.TCPFlowsSeqMonotone != 1 {
			t.Errorf("%s: %d of %d segments in order, monotone flows %d; want all", name, c.SeqOK, c.SeqChecked, c.TCPFlowsSeqMonotone)
		}
	}
	retransmit := append(append([]seg(nil), open...), seg{true, "PA", isn + 101, rsn + 1, 100}, seg{true, "PA", isn + 1, rsn + 1, 100})
	if c := analyzeTrace(tcpTrace(t, retransmit)).comp; c.SeqOK != c.SeqChecked-1 || c.TCPFlowsSeqJudged != 1 || c.TCPFlowsSeqMonotone != 0 {
		t.Errorf("retransmission: %d of %d segments in order, %d of %d flows monotone; want one segment and the flow behind",
			c.SeqOK, c.SeqChecked, c.TCPFlowsSeqMonotone, c.TCPFlowsSeqJudged)
	}
}

// relativeCounts are compliance counts whose sequence-number share is
// ok/total, everything else perfect.
func relativeCounts(ok, total int64) complianceCounts {
	return complianceCounts{Records: 1000, IP: 1000, IPTransport: 1000, LengthOK: 1000, ReservedZero: 1000,
		TCP: 1000, TCPFlagsOK: 1000, SeqChecked: total, SeqOK: ok, Traces: 1, TracesMultiPacket: 1, TracesWithAdvancingClock: 1,
		InterArrivals: 999, NonNegative: 999}
}

func TestRelativeCheckIsJudgedAgainstTheRealRate(t *testing.T) {
	seqCheck := func(c Compliance) Check {
		for _, ch := range c.Checks {
			if ch.Name == "tcp_seq_monotone" {
				return ch
			}
		}
		t.Fatal("no tcp_seq_monotone check")
		return Check{}
	}
	// Real traffic at 90 %: the bound is 1 − (2·0.10 + 0.15) = 0.65.
	real := relativeCounts(900, 1000)
	for _, c := range []struct {
		ok   int64
		pass bool
	}{{660, true}, {640, false}, {950, true}} {
		ch := seqCheck(judgeAgainst(relativeCounts(c.ok, 1000), real))
		if ch.Kind != CheckRelative || ch.Reference == nil || ch.Reference.Value != 0.9 || math.Abs(*ch.Min-0.65) > 1e-12 {
			t.Fatalf("check %+v: want relative, reference 0.9, bound 0.65", ch)
		}
		if ch.Pass != c.pass {
			t.Errorf("synthetic %d/1000 against real 900/1000: pass %v, want %v", c.ok, ch.Pass, c.pass)
		}
	}
	// 80 % passes against real traffic at 90 %, fails against 100 %.
	if ch := seqCheck(judgeAgainst(relativeCounts(800, 1000), relativeCounts(1000, 1000))); ch.Pass || math.Abs(*ch.Min-0.85) > 1e-12 {
		t.Errorf("80 %% against a real 100 %%: pass %v bound %v, want a failure at 0.85", ch.Pass, *ch.Min)
	}
	// Too small a reference: the fixed bound (0.80) applies.
	if ch := seqCheck(judgeAgainst(relativeCounts(790, 1000), relativeCounts(5, 5))); ch.Pass || *ch.Min != 0.80 {
		t.Errorf("reference of 5 observations: pass %v bound %v, want the fixed 0.80, failed", ch.Pass, *ch.Min)
	}
	// The real side is the reference: its relative checks are not judged.
	if c := judgeReference(relativeCounts(100, 1000)); !c.Pass || seqCheck(c).Reference != nil {
		t.Errorf("real side judged on a relative check: %+v", seqCheck(c))
	}
}

func TestFixedChecksHoldOnTheRealSide(t *testing.T) {
	bad := relativeCounts(1000, 1000)
	bad.ReservedZero = 900
	c := judgeReference(bad)
	if c.Pass || len(c.Failed()) != 1 || c.Failed()[0] != "reserved_bits_zero" {
		t.Errorf("real side with reserved bits set in 10 %% of packets: failed %v, want reserved_bits_zero", c.Failed())
	}
}
