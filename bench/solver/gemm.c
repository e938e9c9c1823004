// SGEMM through OpenBLAS from C: the machine's measured matrix-product peak for
// bench/solver/run.sh, on the shapes in bench/solver/blas.py (1024³ and the
// solver's second convolution as im2col, one image and a batch of 32).
// Best of reps, at 1 and 2 OpenBLAS threads; one line per shape and thread count:
//   peak c-sgemm MxNxK threads T G GFLOP/s core CORE
//
//   cc -O2 -o gemm bench/solver/gemm.c -lopenblas && ./gemm [reps]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
	int reps = argc > 1 ? atoi(argv[1]) : 10;
	int shapes[][3] = {{1024, 1024, 1024}, {128, 750, 576}, {128, 24000, 576}};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
		float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n),
		      *c = malloc(sizeof(float) * m * n);
		srand(1);
		for (long i = 0; i < (long)m * k; i++) a[i] = rand() / (float)RAND_MAX;
		for (long i = 0; i < (long)k * n; i++) b[i] = rand() / (float)RAND_MAX;
		for (int threads = 1; threads <= 2; threads++) {
			openblas_set_num_threads(threads);
			double best = 1e30;
			for (int r = 0; r <= reps; r++) { // r == 0 warms up
				double t = now();
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
				t = now() - t;
				if (r > 0 && t < best) best = t;
			}
			printf("peak c-sgemm %dx%dx%d threads %d %.1f GFLOP/s core %s\n", m, n, k, threads,
			       2.0 * m * n * k / best / 1e9, openblas_get_corename());
		}
		free(a), free(b), free(c);
	}
	return 0;
}
