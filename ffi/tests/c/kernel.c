/*
 * clip_kernel_name(), clip_int8_dot_name() and the CLIP_KERNEL and
 * CLIP_INT8_DOT environment variables: prints the kernel's name and its int8
 * instructions' (or "NULL" and the last error), then loads MODEL_DIR and
 * prints the status name (and the error message on failure).
 *
 * usage: kernel MODEL_DIR
 */
#include "clip.h"

#include <stdio.h>

int main(int argc, char **argv) {
    clip_model_options opts;
    clip_model *model = NULL;
    clip_status s;
    const char *name;

    if (argc != 2) { fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]); return 2; }
    name = clip_kernel_name();
    if (name) {
        printf("kernel %s\n", name);
    } else {
        printf("kernel NULL\n");
        printf("kernel_error %s\n", clip_last_error());
    }
    name = clip_int8_dot_name();
    if (name) {
        printf("int8 %s\n", name);
    } else {
        printf("int8 NULL\n");
        printf("int8_error %s\n", clip_last_error());
    }
    clip_model_options_init(&opts);
    s = clip_model_load(argv[1], &opts, &model);
    printf("load %s\n", clip_status_name(s));
    if (s != CLIP_OK) {
        printf("load_error %s\n", clip_last_error());
    }
    clip_model_free(model);
    return 0;
}
