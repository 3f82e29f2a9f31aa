package train

import (
	"fmt"

	"github.com/netssm/netssm/ort"
)

// bindByName lays values out in a session's input or output order: dst[i]
// becomes valueOf(names[i]). A name valueOf does not know is an error that
// names it; the train step (Engine) and validation (Validator) both bind
// their buffers through it.
func bindByName(dst []ort.Value, names []string, valueOf func(name string) (ort.Value, bool), what string) error {
	for i, name := range names {
		v, ok := valueOf(name)
		if !ok {
			return fmt.Errorf("%s %q has no value", what, name)
		}
		dst[i] = v
	}
	return nil
}
