/*
 * clip_model_options image limits: one image file (IMAGE, 300 x 451 pixels)
 * encoded by models loaded with the default limits, a width of 299 and of
 * 300, a height of 450, a budget of 1000 bytes, and the options layout of a
 * clip.h older than the limits (struct_size = offsetof(max_image_bytes),
 * the limit fields set to 1 to show they are not read). Prints
 * "<case> <status name>" lines, and the error message of the first refusal,
 * for the Rust test to check; then the layout of the struct.
 *
 * usage: limits MODEL_DIR IMAGE
 */
#include "clip.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static void encode(const char *name, const char *dir, const char *image, size_t struct_size,
                   uint64_t bytes, uint32_t width, uint32_t height) {
    clip_model_options opts;
    clip_model *m = NULL;
    clip_status s;
    float *out;
    clip_model_options_init(&opts);
    if (opts.max_image_bytes != 0 || opts.max_image_width != 0 || opts.max_image_height != 0) {
        fprintf(stderr, "clip_model_options_init left a limit set\n");
        exit(1);
    }
    opts.struct_size = struct_size;
    opts.max_image_bytes = bytes;
    opts.max_image_width = width;
    opts.max_image_height = height;
    s = clip_model_load(dir, &opts, &m);
    if (s != CLIP_OK) {
        fprintf(stderr, "%s: load: %s: %s\n", name, clip_status_name(s), clip_last_error());
        exit(1);
    }
    out = (float *)malloc(clip_model_embedding_dim(m) * sizeof(float));
    s = clip_encode_image_file(m, image, out, clip_model_embedding_dim(m));
    printf("%s %s\n", name, clip_status_name(s));
    if (s != CLIP_OK) printf("%s_message %s\n", name, clip_last_error());
    free(out);
    clip_model_free(m);
}

int main(int argc, char **argv) {
    const size_t now = sizeof(clip_model_options);
    if (argc != 3) {
        fprintf(stderr, "usage: limits MODEL_DIR IMAGE\n");
        return 2;
    }
    encode("default", argv[1], argv[2], now, 0, 0, 0);
    encode("width_299", argv[1], argv[2], now, 0, 299, 0);
    encode("width_300", argv[1], argv[2], now, 0, 300, 451);
    encode("height_450", argv[1], argv[2], now, 0, 0, 450);
    encode("bytes_1000", argv[1], argv[2], now, 1000, 0, 0);
    encode("old_layout", argv[1], argv[2], offsetof(clip_model_options, max_image_bytes), 1, 1, 1);
    printf("limits_layout %zu %zu %zu %zu\n", now, offsetof(clip_model_options, max_image_bytes),
           offsetof(clip_model_options, max_image_width),
           offsetof(clip_model_options, max_image_height));
    return 0;
}
