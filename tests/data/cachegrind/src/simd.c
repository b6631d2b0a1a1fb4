/* Explicit 16-byte (SSE) and 32-byte (AVX) loads/stores, aligned and unaligned,
   including accesses that straddle cache lines. */
#include <immintrin.h>
#include <stdio.h>
static float buf[8192] __attribute__((aligned(64)));
static float out[8192] __attribute__((aligned(64)));
int main(void) {
    for (int i = 0; i < 8192; i++) buf[i] = (float)i;
    __m256 acc = _mm256_setzero_ps();
    __m128 acc4 = _mm_setzero_ps();
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i + 8 <= 8192; i += 8)          /* aligned 32 B */
            acc = _mm256_add_ps(acc, _mm256_load_ps(buf + i));
        for (int i = 1; i + 9 <= 8192; i += 12)         /* unaligned 32 B, straddles */
            _mm256_storeu_ps(out + i, _mm256_loadu_ps(buf + i + rep));
        for (int i = 3; i + 4 <= 8192; i += 5)          /* unaligned 16 B */
            acc4 = _mm_add_ps(acc4, _mm_loadu_ps(buf + i));
        for (int i = 0; i + 4 <= 8192; i += 16)         /* 16 B read-modify-write */
            _mm_store_ps(out + i, _mm_add_ps(_mm_load_ps(out + i), acc4));
    }
    float r[8];
    _mm256_storeu_ps(r, acc);
    printf("%g %g %g\n", r[0], r[7], _mm_cvtss_f32(acc4) + out[100]);
    return 0;
}
