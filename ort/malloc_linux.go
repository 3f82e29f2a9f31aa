//go:build linux && cgo

package ort

/*
#include <malloc.h>

static int netssm_limit_malloc_arenas(int n) {
#ifdef M_ARENA_MAX
	return mallopt(M_ARENA_MAX, n);
#else
	return 0;
#endif
}
*/
import "C"

// LimitMallocArenas caps the number of C malloc arenas (glibc's
// M_ARENA_MAX) and reports whether the C library took the setting. ONNX
// Runtime allocates through malloc from whichever OS thread calls it, and
// glibc gives each new thread its own arena (up to eight per core), so a
// long run of small Runs spreads its freed memory over many arenas that
// cannot lend it to each other: resident memory then depends on thread
// scheduling. It must be called before the threads that allocate start
// (before Init); arenas already created are kept.
func LimitMallocArenas(n int) bool {
	return C.netssm_limit_malloc_arenas(C.int(n)) == 1
}
