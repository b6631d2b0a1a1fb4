/* Linked-list walk over nodes linked in a pseudo-random order (LCG shuffle). */
#include <stdio.h>
#include <stdlib.h>
#define NODES 3000
struct node { struct node *next; long val; char pad[40]; };
int main(void) {
    struct node *nodes = malloc(NODES * sizeof *nodes);
    int *perm = malloc(NODES * sizeof *perm);
    unsigned s = 12345;
    for (int i = 0; i < NODES; i++) perm[i] = i;
    for (int i = NODES - 1; i > 0; i--) {
        s = s * 1103515245u + 12345u;
        int j = (s >> 8) % (i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    for (int i = 0; i < NODES; i++) {
        nodes[perm[i]].next = (i + 1 < NODES) ? &nodes[perm[i + 1]] : NULL;
        nodes[perm[i]].val = i;
    }
    long sum = 0;
    for (int rep = 0; rep < 4; rep++)
        for (struct node *p = &nodes[perm[0]]; p; p = p->next) sum += p->val;
    printf("%ld\n", sum);
    free(perm); free(nodes);
    return 0;
}
