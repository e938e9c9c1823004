package captcha

import (
	"embed"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gobolditalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
)

// fontFiles are fonts whose licences allow embedding them unmodified:
// DejaVu (Bitstream Vera licence) and Liberation (SIL OFL 1.1); their
// licence texts are beside them.
//
//go:embed fonts/*.ttf
var fontFiles embed.FS

// fontSources names every embedded font. The Go fonts (BSD licence, as Go)
// come from golang.org/x/image.
var fontSources = map[string]func() ([]byte, error){
	"go-regular":            bytesOf(goregular.TTF),
	"go-medium":             bytesOf(gomedium.TTF),
	"go-bold":               bytesOf(gobold.TTF),
	"go-bold-italic":        bytesOf(gobolditalic.TTF),
	"go-mono-bold":          bytesOf(gomonobold.TTF),
	"dejavu-serif-bold":     file("fonts/DejaVuSerif-Bold.ttf"),
	"liberation-sans-bold":  file("fonts/LiberationSans-Bold.ttf"),
	"liberation-serif-bold": file("fonts/LiberationSerif-Bold.ttf"),
}

func bytesOf(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }
func file(name string) func() ([]byte, error) {
	return func() ([]byte, error) { return fontFiles.ReadFile(name) }
}

// FontNames lists the embedded fonts, sorted.
func FontNames() []string {
	names := make([]string, 0, len(fontSources))
	for n := range fontSources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var (
	parsedMu sync.Mutex
	parsed   = map[string]*sfnt.Font{}
)

// loadFont parses a named font once per process; *sfnt.Font is safe for
// concurrent use with separate buffers.
func loadFont(name string) (*sfnt.Font, error) {
	parsedMu.Lock()
	defer parsedMu.Unlock()
	if f, ok := parsed[name]; ok {
		return f, nil
	}
	src, ok := fontSources[name]
	if !ok {
		return nil, fmt.Errorf("unknown font %q (known: %v)", name, FontNames())
	}
	b, err := src()
	if err != nil {
		return nil, fmt.Errorf("font %s: %w", name, err)
	}
	f, err := sfnt.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("font %s: %w", name, err)
	}
	parsed[name] = f
	return f, nil
}
