// Package orttest gives tests a ready ONNX Runtime: it finds the library in
// the documented order or provisions it through the npm client (cached in the
// user cache, under a lock, so parallel test binaries share one download), and
// fails the test with the reason when neither works.
package orttest

import (
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
)

// Init initialises ONNX Runtime for a test or benchmark, or fails it.
func Init(tb testing.TB) ort.Info {
	tb.Helper()
	info, err := ort.Init(ort.InitOptions{AutoSetup: true})
	if err != nil {
		tb.Fatalf("ONNX Runtime: %v", err)
	}
	return info
}

// Session serialises g (with opts) and loads it into ONNX Runtime on one
// thread, or fails the test; the session is closed when the test ends.
func Session(tb testing.TB, g *graph.Graph, opts ...graph.BuildOption) *ort.Session {
	tb.Helper()
	b, err := g.Serialize(opts...)
	if err != nil {
		tb.Fatalf("serialise %s: %v", g.Name(), err)
	}
	return SessionBytes(tb, b)
}

// SessionBytes loads a serialized model as Session does.
func SessionBytes(tb testing.TB, model []byte) *ort.Session {
	tb.Helper()
	Init(tb)
	s, err := ort.NewSession(model, ort.SessionOptions{Threads: 1})
	if err != nil {
		tb.Fatalf("session: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Run runs s on feeds or fails the test.
func Run(tb testing.TB, s *ort.Session, feeds map[string]*ort.Tensor) map[string]*ort.Tensor {
	tb.Helper()
	out, err := s.Run(feeds)
	if err != nil {
		tb.Fatalf("run: %v", err)
	}
	return out
}
