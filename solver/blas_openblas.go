//go:build openblas

package solver

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// With the openblas build tag the matrix products — most of the solver's time
// — run in OpenBLAS (Debian's libopenblas-dev) instead of gonum's pure Go.
func init() { G.Use(netlib.Implementation{}) }

// BLAS names the matrix-multiply implementation in use, for benchmarks and logs.
const BLAS = "openblas"
