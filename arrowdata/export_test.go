package arrowdata

import "bytes"

// OpenBytes opens the dataset held in b (tests and fuzzing need no file).
func OpenBytes(path string, b []byte, opts ...ReaderOption) (*Dataset, error) {
	return openReader(path, bytes.NewReader(b), int64(len(b)), opts...)
}

// ErrPanicked marks an error made from a recovered panic.
var ErrPanicked = errPanicked
