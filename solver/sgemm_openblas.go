//go:build openblas

package solver

// #cgo LDFLAGS: -lopenblas
// #include <cblas.h>
import "C"

import (
	"os"
	"unsafe"
)

// One OpenBLAS thread per call unless the environment says otherwise
// (OPENBLAS_NUM_THREADS, or OMP_NUM_THREADS, which OpenBLAS also reads): the
// solver's parallelism is its workers, one product per goroutine, and
// OpenBLAS's own threads spin while they wait, so a worker per core with
// several BLAS threads each oversubscribes the cores. Measured on the 2-core
// machine, 16 default captchas on both workers (BenchmarkGenerateManyDefault):
// 4.3 captchas/s with one thread, 1.8 with two.
func init() {
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" && os.Getenv("OMP_NUM_THREADS") == "" {
		C.openblas_set_num_threads(1)
	}
}

// sgemm is C = alpha·op(A)·op(B) + beta·C on row-major matrices (op(A) m×k,
// op(B) k×n, C m×n), in OpenBLAS: the engine's matrix products. The slices
// start at the matrices' first elements; the caller keeps them long enough.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = uint32(C.CblasTrans)
	}
	if transB {
		tb = uint32(C.CblasTrans)
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb),
		C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// sgemmAllocates: OpenBLAS's threads are its own; a product allocates
// nothing in Go.
const sgemmAllocates = false
