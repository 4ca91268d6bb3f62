/*
 * clip_model_options.precision: the same texts and images encoded by models
 * loaded at full precision, with the options layout of a clip.h older than
 * the precision field (struct_size = offsetof(clip_model_options,
 * precision), precision left at INT8 to show it is not read), and at int8
 * precision. Prints "<name> <values...>" lines; the Rust test compares them
 * with the Rust API and checks int8 against full precision.
 *
 * usage: precision MODEL_DIR IMAGE...
 */
#include "clip.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                             \
    do {                                                                                        \
        clip_status s_ = (call);                                                                \
        if (s_ != CLIP_OK) {                                                                    \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,                 \
                    clip_status_name(s_), clip_last_error());                                   \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static const char *texts[] = {"a red circle", "a photo of a blue square", "a green star",
                              "a yellow triangle on a plain background"};
enum { N_TEXTS = 4 };

static char info[1024];

static void on_log(void *user, int32_t level, const char *message) {
    (void)user;
    if (level == CLIP_LOG_INFO) {
        strncpy(info, message, sizeof info - 1);
        info[sizeof info - 1] = '\0';
    }
}

static void print_floats(const char *name, const float *v, size_t n) {
    size_t i;
    printf("%s", name);
    for (i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        printf(" %08x", (unsigned)bits);
    }
    printf("\n");
}

/* Loads MODEL_DIR with 2 threads, the given struct_size and precision, and
   prints the model's precision and its "loaded ..." log line. */
static clip_model *load(const char *name, const char *dir, size_t struct_size, int32_t precision) {
    clip_model_options opts;
    clip_model *m = NULL;
    CHECK(clip_model_options_init(&opts));
    if (opts.struct_size != sizeof opts || opts.precision != CLIP_PRECISION_FULL) {
        fprintf(stderr, "clip_model_options_init: struct_size %zu, precision %d\n", opts.struct_size,
                (int)opts.precision);
        exit(1);
    }
    opts.num_threads = 2;
    opts.log_fn = on_log;
    opts.struct_size = struct_size;
    opts.precision = precision;
    info[0] = '\0';
    CHECK(clip_model_load(dir, &opts, &m));
    printf("precision_%s %d\n", name, (int)clip_model_precision(m));
    printf("log_%s %s\n", name, info);
    return m;
}

static void encode(const char *name, const clip_model *m, const char *const *paths, size_t n_images) {
    size_t dim = clip_model_embedding_dim(m);
    float *t = (float *)malloc(N_TEXTS * dim * sizeof(float));
    float *im = (float *)malloc(n_images * dim * sizeof(float));
    char key[64];
    CHECK(clip_encode_texts(m, texts, N_TEXTS, t, N_TEXTS * dim));
    sprintf(key, "%s_texts", name);
    print_floats(key, t, N_TEXTS * dim);
    CHECK(clip_encode_image_files(m, paths, n_images, im, n_images * dim, NULL));
    sprintf(key, "%s_images", name);
    print_floats(key, im, n_images * dim);
    free(t);
    free(im);
}

int main(int argc, char **argv) {
    clip_model *full, *old, *int8;
    const char *const *paths = (const char *const *)(argv + 2);
    size_t n_images;

    if (argc < 3) { fprintf(stderr, "usage: %s MODEL_DIR IMAGE...\n", argv[0]); return 2; }
    n_images = (size_t)argc - 2;
    printf("int8_supported %d\n", clip_int8_supported());
    printf("options_layout %zu %zu %zu %zu %zu %zu %zu\n", sizeof(clip_model_options),
           offsetof(clip_model_options, struct_size), offsetof(clip_model_options, num_threads),
           offsetof(clip_model_options, alpha_policy), offsetof(clip_model_options, log_fn),
           offsetof(clip_model_options, log_user_data), offsetof(clip_model_options, precision));

    full = load("full", argv[1], sizeof(clip_model_options), CLIP_PRECISION_FULL);
    old = load("old_layout", argv[1], offsetof(clip_model_options, precision), CLIP_PRECISION_INT8);
    int8 = load("int8", argv[1], sizeof(clip_model_options), CLIP_PRECISION_INT8);
    encode("full", full, paths, n_images);
    encode("old_layout", old, paths, n_images);
    encode("int8", int8, paths, n_images);
    clip_model_free(full);
    clip_model_free(old);
    clip_model_free(int8);
    return 0;
}
