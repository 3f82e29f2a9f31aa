//go:build !linux || !cgo

package ort

// LimitMallocArenas is a no-op where the C library is not glibc's (see the
// Linux version): it reports false.
func LimitMallocArenas(n int) bool { return false }

// keepFreedBlocks is a no-op where the C library is not glibc's.
func keepFreedBlocks() bool { return false }
