// Package orttest gives tests a ready ONNX Runtime: it finds the library in
// the documented order or provisions it through the npm client (cached in the
// user cache, under a lock, so parallel test binaries share one download), and
// fails the test with the reason when neither works.
package orttest

import (
	"testing"

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
