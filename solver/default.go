package solver

import "errors"

// Default returns the model shipped with this build.
func Default() (*Model, error) {
	return nil, errors.New("no default solver model is shipped in this build yet: pass --model")
}
