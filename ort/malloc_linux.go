//go:build linux && cgo

package ort

/*
#include <malloc.h>

static int netssm_keep_freed_blocks(int mmap_threshold, int trim_threshold) {
	return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
}

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

// glibc's largest mmap threshold (32 MiB on 64-bit systems), and how much
// free memory a malloc arena keeps before it gives some back.
const (
	mmapThreshold = 32 << 20
	trimThreshold = 1 << 30
)

// keepFreedBlocks makes glibc keep the blocks a training or decoding step
// frees for the next step instead of returning them to the kernel. By
// default glibc serves a block of more than 128 KiB (raised, after a
// free, to the size freed) with its own mmap and trims the top of an arena
// when more than twice that is free, so the same tens of megabytes (the
// SSD kernels' chunk states, ONNX Runtime's intermediate tensors) are
// unmapped after every node and page-faulted back, zero-filled, at the
// next: a third of a small-preset train step on a virtual machine. Blocks
// under 32 MiB now come from the arenas, which keep up to 1 GiB free; the
// peak resident memory stays the peak of what is live, freed memory is
// reused rather than released. It reports whether glibc took the settings.
func keepFreedBlocks() bool {
	return C.netssm_keep_freed_blocks(C.int(mmapThreshold), C.int(trimThreshold)) == 1
}
