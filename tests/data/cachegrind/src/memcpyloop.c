/* memcpy/memset-heavy loop: glibc's vectorised string functions, odd sizes and offsets. */
#include <stdio.h>
#include <string.h>
static char src[20000], dst[20000];
int main(void) {
    memset(src, 'x', sizeof src);
    unsigned long sum = 0;
    for (int r = 0; r < 30; r++) {
        size_t off = (r * 7) % 61, len = 1000 + r * 397;
        memcpy(dst + off, src + (r % 13), len);
        memmove(dst + off + 3, dst + off, len / 2);
        memset(dst + (r % 17), r, 333 + r);
        sum += dst[off + len / 3] + strlen(dst + 19000 - r * 50);
    }
    printf("%lu\n", sum);
    return 0;
}
