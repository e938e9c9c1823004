//go:build !openblas

package solver

// BLAS names the matrix-multiply implementation in use, for benchmarks and logs.
const BLAS = "gonum"
