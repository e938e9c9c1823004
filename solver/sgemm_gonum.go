//go:build !openblas

package solver

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// sgemm is C = alpha·op(A)·op(B) + beta·C on row-major matrices (op(A) m×k,
// op(B) k×n, C m×n), in gonum's pure-Go BLAS: the engine's matrix products
// in a build without the openblas tag.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	blas32.Implementation().Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemmAllocates: gonum's Sgemm allocates for the goroutines it splits a
// large product over.
const sgemmAllocates = true
