/* Run a kcompile artifact from C, with no Python: read the weights and a batch of inputs, call the
 * generated <name>_forward entry point, write the outputs.
 *
 *   cc main.c -I ARTIFACT -L ARTIFACT -ldigits -Wl,-rpath,ARTIFACT -DFEATURES=64 -DCLASSES=10 -o demo
 *   ./demo ARTIFACT inputs.f32 ROWS outputs.f32
 *
 * inputs.f32 / outputs.f32 hold raw little-endian float32 rows (ROWS x FEATURES, ROWS x CLASSES).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "digits.h"

#ifndef FEATURES
#define FEATURES 64
#endif
#ifndef CLASSES
#define CLASSES 10
#endif

/* The entry points want 64-byte aligned parameter and workspace blocks. */
static void *aligned_block(size_t nbytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, nbytes ? nbytes : 64) == 0 ? p : NULL;
}

/* Read exactly nbytes from path into a new aligned block (NULL, with a message, on any mismatch). */
static void *read_exactly(const char *path, size_t nbytes) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    void *block = aligned_block(nbytes);
    size_t got = block ? fread(block, 1, nbytes, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (!block || got != nbytes || extra) {
        fprintf(stderr, "%s: expected exactly %zu bytes\n", path, nbytes);
        free(block);
        return NULL;
    }
    return block;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ARTIFACT_DIR inputs.f32 ROWS outputs.f32\n", argv[0]);
        return 2;
    }
    int64_t rows = atoll(argv[3]);
    if (rows <= 0) {
        fprintf(stderr, "ROWS must be positive\n");
        return 2;
    }
    char weights_path[4096];
    snprintf(weights_path, sizeof weights_path, "%s/weights.bin", argv[1]);
    void *params = read_exactly(weights_path, DIGITS_PARAM_BYTES);
    float *x = read_exactly(argv[2], (size_t)rows * FEATURES * sizeof(float));
    float *y = aligned_block((size_t)rows * CLASSES * sizeof(float));
    void *workspace = aligned_block((size_t)digits_forward_workspace_size(rows));
    if (!params || !x || !y || !workspace)
        return 1;

    const void *inputs[1] = {x};
    void *outputs[1] = {y};
    int32_t status = digits_forward(inputs, outputs, params, workspace, rows, 1 /* thread */);
    if (status != 0) {
        fprintf(stderr, "digits_forward failed with status %d\n", status);
        return 1;
    }

    FILE *out = fopen(argv[4], "wb");
    if (!out || fwrite(y, sizeof(float), (size_t)rows * CLASSES, out) != (size_t)rows * CLASSES) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        return 1;
    }
    fclose(out);
    printf("C: first predicted classes:");
    for (int64_t r = 0; r < rows && r < 10; r++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (y[r * CLASSES + c] > y[r * CLASSES + best]) best = c;
        printf(" %d", best);
    }
    printf("\n");
    free(params), free(x), free(y), free(workspace);
    return 0;
}
