// Package ort owns netssm's one native dependency, ONNX Runtime: finding the
// shared library, provisioning it through the npm client when it is missing,
// initialising github.com/yalue/onnxruntime_go once per process, and creating
// sessions from ONNX bytes held in memory on the CPU or CUDA execution
// provider.
//
// Library resolution order (the first that exists wins):
//
//  1. InitOptions.LibPath (the --ort-lib flag),
//  2. the NETSSM_ORT_LIB environment variable,
//  3. the user cache, $XDG_CACHE_HOME/netssm/ort/1.29.0/ (or ~/.cache/…),
//  4. a system install (libonnxruntime.so.1.29.0 in the usual library
//     directories) or the onnxruntime Python package, when its version is 1.29.0.
//
// When none is found and InitOptions.AutoSetup is set, Setup runs: it packs
// onnxruntime-node@1.29.0 with `npm pack`, checks the tarball against the
// integrity hash the registry reports, and extracts the library into the cache
// through a temporary directory and a rename, under a file lock, so concurrent
// processes (parallel tests) never see a half-written library.
//
// I/O binding (Binding, DeviceTensor, Session.Upload/Download) keeps tensors
// that a loop carries from one Run to the next in the provider's memory. It
// calls the few entries of ONNX Runtime's C API that onnxruntime_go does not
// wrap (binding.go: the library's own OrtApi table, reached with dlsym), on
// the session and value handles of onnxruntime_go v1.27.0, whose private
// layout is checked at run time.
//
// It also holds netssm's custom-op domain (FusedDomain): the C kernels
// (fused_*.c, compiled by cgo) that sessions of graphs using them get
// registered, and the worker threads of the decoding kernel BlockStep
// (fused_pool.c), which a session of such a graph uses instead of ONNX
// Runtime's intra-op pool, with no more threads than it was given.
//
// The package does not build graphs (package graph does) and knows nothing of
// models; it moves tensors in and out of ONNX Runtime.
//
// Setting NETSSM_DUMP_ONNX=DIR makes a session whose creation or Run fails
// write its model to DIR for inspection (e.g. with Netron or onnx.checker).
// NETSSM_ORT_PROFILE=PREFIX makes every session write ONNX Runtime's per-op
// profile (Chrome trace JSON) to PREFIX_<date>.json when it is closed.
package ort
