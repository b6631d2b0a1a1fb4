/* Unusual memory accesses: fxsave/fxrstor (VEX turns them into a 160-byte dirty-helper
   access plus separate XMM loads/stores; cachegrind clamps the 160 bytes to its minimum
   line size; the save area starts 48 bytes into a fresh 64-byte line so that the clamp
   value changes the miss counts), lock cmpxchg16b (16-byte CAS),
   lock xadd (read-modify-write), rep movsb / rep stosq (string ops). */
#include <stdio.h>
#include <string.h>
static unsigned char fx[40][1024] __attribute__((aligned(128)));
static __int128 cell[4] __attribute__((aligned(16)));
static long counter;
static char a[4096], b[4096];
int main(void) {
    for (int r = 0; r < 40; r++) {
        unsigned char *p = fx[r] + 48;
        __asm__ volatile("fxsave64 %0" : "=m"(*(unsigned char (*)[512])p));
        __asm__ volatile("fxrstor64 %0" : : "m"(*(unsigned char (*)[512])p));
        __int128 expected = cell[r % 4], desired = expected + r;
        __sync_bool_compare_and_swap(&cell[r % 4], expected, desired);
        __atomic_fetch_add(&counter, r, __ATOMIC_SEQ_CST);
        size_t n = 100 + r * 61;
        void *d = a + (r % 7), *s = b + (r % 5);
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
        unsigned long cnt = 50, val = r;
        void *q = b + 8 * (r % 3);
        __asm__ volatile("rep stosq" : "+D"(q), "+c"(cnt) : "a"(val) : "memory");
    }
    printf("%ld %d %d\n", counter, (int)cell[1], a[300] + b[20]);
    return 0;
}
