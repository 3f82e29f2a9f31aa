package infer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// The fake token layout: bytes 0–255, then the specials, 8 timing buckets
// and two labels; the model pads its logits to a multiple of 16.
var fakeVocab = Vocabulary{Size: 268, Packet: 256, EOS: 257, DT0: 258, DTBucket: 8, Labels: []int{266, 267}}

const fakeLogits = 272

// fakeHeader is the 28-byte IPv4+UDP packet the fake model prefers; the
// bytes it leaves free (ids, ports, checksums) are where it varies.
var fakeHeader = []byte{
	0x45, 0x00, 0x00, 0x1c, 0, 0, 0x40, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
	0, 0, 0, 53, 0x00, 0x08, 0, 0,
}

// fakeFree marks the header positions where any byte is well-formed.
var fakeFree = map[int]bool{4: true, 5: true, 10: true, 11: true, 15: true, 19: true, 20: true, 21: true, 26: true, 27: true}

// markovModel is a tiny recurrent model written in Go: its state is a hash
// of every token so far (so forked states and slot bookkeeping matter) and
// the position inside the current packet; its logits favour fakeHeader with
// hash-driven noise, so unconstrained decoding sometimes breaks the header.
type markovModel struct {
	noise float64 // logit noise amplitude
	noEOS bool    // never end a trace by itself
	mu    sync.Mutex
	steps int
	sizes []int // the batch sizes asked for, in order
}

func (m *markovModel) Vocab() int { return fakeLogits }

func (m *markovModel) Prefill(prompt []int) ([]float32, State, error) {
	st := State{make([]float32, 2), make([]float32, 1)}
	logits := make([]float32, fakeLogits)
	for _, id := range prompt {
		m.advance(st[0], st[1], id)
	}
	m.logits(st[0], st[1], logits)
	return logits, st, nil
}

// advance updates one sequence's state with token id.
func (m *markovModel) advance(h, pos []float32, id int) {
	x := math.Float32bits(h[0])*2654435761 + uint32(id)*40503 + math.Float32bits(h[1])
	h[0], h[1] = float32(x%100003)/100003, float32(id)
	switch {
	case id == fakeVocab.Packet:
		pos[0] = -1 // the timing token comes next
	case id < 256 || fakeVocab.DT(id) >= 0:
		pos[0]++
	}
}

func (m *markovModel) logits(h, pos []float32, out []float32) {
	p := int(pos[0])
	seed := math.Float32bits(h[0])
	for v := range out {
		z := (seed ^ uint32(v)*0x9e3779b9) * 0x85ebca6b
		z ^= z >> 13
		out[v] = float32(m.noise * (float64(z%1000)/1000 - 0.5))
	}
	for v := fakeVocab.Size; v < len(out); v++ {
		out[v] = -30 // padding ids
	}
	switch {
	case p == -1:
		for k := 0; k < fakeVocab.DTBucket; k++ {
			out[fakeVocab.DT0+k] += 6
		}
	case p >= 0 && p < len(fakeHeader):
		if fakeFree[p] {
			for v := 0; v < 256; v++ {
				out[v] += 4
			}
		} else {
			out[fakeHeader[p]] += 6
		}
	case p >= len(fakeHeader):
		out[fakeVocab.Packet] += 7
		out[fakeVocab.EOS] += 2
	}
	if m.noEOS {
		out[fakeVocab.EOS] = -30
	}
	if int(h[1]) == fakeVocab.Labels[0] || int(h[1]) == fakeVocab.Labels[1] || p < -1 {
		out[fakeVocab.Packet] += 10
	}
}

func (m *markovModel) NewBatch(size int) (Batch, error) {
	m.mu.Lock()
	m.sizes = append(m.sizes, size)
	m.mu.Unlock()
	return &markovBatch{m: m, h: make([]float32, 2*size), pos: make([]float32, size), out: make([]float32, size*fakeLogits)}, nil
}

type markovBatch struct {
	m   *markovModel
	h   []float32
	pos []float32
	out []float32
}

func (b *markovBatch) Load(slot int, st State) error {
	if len(st) != 2 || len(st[0]) != 2 || len(st[1]) != 1 {
		return errors.New("state shape mismatch")
	}
	copy(b.h[2*slot:], st[0])
	b.pos[slot] = st[1][0]
	return nil
}

func (b *markovBatch) Save(slot int) (State, error) {
	return State{slices.Clone(b.h[2*slot : 2*slot+2]), {b.pos[slot]}}, nil
}

func (b *markovBatch) Step(tokens []int) ([]float32, error) {
	for i, id := range tokens {
		h, pos := b.h[2*i:2*i+2], b.pos[i:i+1]
		b.m.advance(h, pos, id)
		b.m.logits(h, pos, b.out[i*fakeLogits:(i+1)*fakeLogits])
	}
	b.m.mu.Lock()
	b.m.steps++
	b.m.mu.Unlock()
	return b.out, nil
}

func (b *markovBatch) Close() error { return nil }

// fakeGrammar is the fake format's packet grammar: label, then packets of
// `<pkt>` `<dt:k>` and a 28-byte IPv4/UDP header whose fixed bytes are those
// of fakeHeader, then `<eos>` (or the next packet).
type fakeGrammar struct {
	pos     int // -3 before the label, -2 between packets, -1 after <pkt>, 0… header bytes
	packets int
	scratch [272]bool
}

func newFakeGrammar() Grammar { return &fakeGrammar{pos: -3} }

func (g *fakeGrammar) Allowed(a []bool) {
	clear(a)
	switch {
	case g.pos == -3:
		for _, l := range fakeVocab.Labels {
			a[l] = true
		}
	case g.pos == -2 || g.pos == len(fakeHeader):
		a[fakeVocab.Packet] = true
		a[fakeVocab.EOS] = g.packets > 0 || g.pos == len(fakeHeader)
	case g.pos == -1:
		for k := 0; k < fakeVocab.DTBucket; k++ {
			a[fakeVocab.DT0+k] = true
		}
	case fakeFree[g.pos]:
		for v := 0; v < 256; v++ {
			a[v] = true
		}
	default:
		a[fakeHeader[g.pos]] = true
	}
}

func (g *fakeGrammar) Advance(id int) error {
	a := g.scratch[:fakeVocab.Size]
	g.Allowed(a)
	if id < 0 || id >= len(a) || !a[id] {
		return fmt.Errorf("token %d not allowed at position %d", id, g.pos)
	}
	switch {
	case id == fakeVocab.Packet:
		if g.pos >= 0 {
			g.packets++
		}
		g.pos = -1
	case id == fakeVocab.EOS:
		g.pos = -4
	case g.pos == -3:
		g.pos = -2
	default:
		g.pos++
	}
	return nil
}

// memSink keeps every trace's packets in memory, as pcap bytes.
type memSink struct {
	mu      sync.Mutex
	files   map[int]*bytes.Buffer
	packets map[int][][]byte
	times   map[int][]time.Time
}

func newMemSink() *memSink {
	return &memSink{files: map[int]*bytes.Buffer{}, packets: map[int][][]byte{}, times: map[int][]time.Time{}}
}

type memTrace struct {
	s  *memSink
	t  int
	w  PacketWriter
	bf *bytes.Buffer
}

func (s *memSink) OpenTrace(t int) (TraceFile, error) {
	bf := &bytes.Buffer{}
	w, err := RawPcapWriter(bf)
	if err != nil {
		return nil, err
	}
	return &memTrace{s: s, t: t, w: w, bf: bf}, nil
}

func (m *memTrace) WritePacket(ts time.Time, ip []byte) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.packets[m.t] = append(m.s.packets[m.t], bytes.Clone(ip))
	m.s.times[m.t] = append(m.s.times[m.t], ts)
	return m.w.WritePacket(ts, ip)
}

func (m *memTrace) Close() error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if _, dup := m.s.files[m.t]; dup {
		return fmt.Errorf("trace %d written twice", m.t)
	}
	m.s.files[m.t] = m.bf
	return nil
}

func (m *memTrace) Abort() {}

// discardSink counts packets and keeps nothing (memory tests).
type discardSink struct{ packets int }

func (d *discardSink) OpenTrace(int) (TraceFile, error) { return discardTrace{d}, nil }

type discardTrace struct{ d *discardSink }

func (t discardTrace) WritePacket(time.Time, []byte) error { t.d.packets++; return nil }
func (t discardTrace) Close() error                        { return nil }
func (t discardTrace) Abort()                              {}

// endlessGrammar is fakeGrammar without `<eos>`: traces run to their limit.
type endlessGrammar struct{ fakeGrammar }

func newEndlessGrammar() Grammar { return &endlessGrammar{fakeGrammar{pos: -3}} }

func (g *endlessGrammar) Allowed(a []bool) {
	g.fakeGrammar.Allowed(a)
	a[fakeVocab.EOS] = false
}
