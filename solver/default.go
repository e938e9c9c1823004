package solver

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// models holds the models built into the binary; models/README.md says
// how each was trained and what it measured.
//
//go:embed models
var models embed.FS

// ErrNoDefaultModel is returned by Default in a build without a built-in model.
var ErrNoDefaultModel = errors.New("this build has no built-in solver model")

var loadDefault = sync.OnceValues(func() (*Model, error) {
	b, err := models.ReadFile("models/default.crnn")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoDefaultModel
	}
	if err != nil {
		return nil, err
	}
	m, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("the built-in solver model: %w", err)
	}
	return m, nil
})

// Default returns the model built into this build, or ErrNoDefaultModel. It
// is decoded once; callers share it and must not modify it.
func Default() (*Model, error) { return loadDefault() }
