/*
 * Prints every kind of result of the C API as hex float bits, one line per
 * result: "<name> <hex> <hex> ...". The Rust test computes the same results
 * with the Rust API and compares them bit for bit.
 *
 * usage: abi_values MODEL_DIR IMAGE...
 */
#include "clip.h"

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

static void print_u32(const char *name, const uint32_t *v, size_t n) {
    size_t i;
    printf("%s", name);
    for (i = 0; i < n; i++) printf(" %u", (unsigned)v[i]);
    printf("\n");
}

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (uint8_t *)malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(1); }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* The deterministic raw test image the Rust test rebuilds: w x h pixels of
   format fmt (bpp bytes), rows `stride` bytes apart, padding bytes 0xEE. */
static uint8_t *pattern(size_t w, size_t h, size_t stride, size_t bpp) {
    uint8_t *p = (uint8_t *)malloc(stride * h);
    size_t x, y, c;
    memset(p, 0xEE, stride * h);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (c = 0; c < bpp; c++) p[y * stride + x * bpp + c] = (uint8_t)((x * 7 + y * 13 + c * 61) & 0xFF);
    return p;
}

int main(int argc, char **argv) {
    static const char *texts[] = {"a b c", "hello, world!", "x", ""};
    static const char *labels[] = {"cat", "dog", "rocket"};
    const size_t n_texts = sizeof texts / sizeof *texts, n_labels = sizeof labels / sizeof *labels;
    clip_model_options opts;
    clip_model *model = NULL;
    size_t dim, ctx, h, w, i, n_images;
    float *text_f, *one, *img_f, *buf_f, *lab, *probs, *sims, *raw_f, scale;
    uint32_t *ids, *mask;
    uint8_t **bufs;
    size_t *sizes;
    clip_status *st;
    clip_image_view views[2];
    uint8_t *px0, *px1;

    if (argc < 3) { fprintf(stderr, "usage: %s MODEL_DIR IMAGE...\n", argv[0]); return 2; }
    n_images = (size_t)argc - 2;
    CHECK(clip_model_options_init(&opts));
    opts.num_threads = 2;
    CHECK(clip_model_load(argv[1], &opts, &model));
    dim = clip_model_embedding_dim(model);
    ctx = clip_model_context_length(model);
    CHECK(clip_model_image_size(model, &h, &w));
    CHECK(clip_model_logit_scale(model, &scale));
    printf("version %s\n", clip_version());
    printf("sizes %zu %zu %zu %zu %zu\n", dim, ctx, h, w, clip_model_num_threads(model));
    print_floats("logit_scale", &scale, 1);

    /* texts, batch and single */
    text_f = (float *)malloc(n_texts * dim * sizeof(float));
    one = (float *)malloc(dim * sizeof(float));
    CHECK(clip_encode_texts(model, texts, n_texts, text_f, n_texts * dim));
    print_floats("texts", text_f, n_texts * dim);
    CHECK(clip_encode_text(model, texts[1], one, dim));
    print_floats("text1", one, dim);

    /* token ids */
    ids = (uint32_t *)malloc(n_texts * ctx * sizeof(uint32_t));
    mask = (uint32_t *)malloc(n_texts * ctx * sizeof(uint32_t));
    CHECK(clip_tokenize(model, texts, n_texts, ids, mask, n_texts * ctx));
    print_u32("ids", ids, n_texts * ctx);
    print_u32("mask", mask, n_texts * ctx);
    CHECK(clip_encode_token_ids(model, ids, mask, n_texts, ctx, text_f, n_texts * dim));
    print_floats("token_ids", text_f, n_texts * dim);

    /* image files, buffers */
    img_f = (float *)malloc(n_images * dim * sizeof(float));
    buf_f = (float *)malloc(n_images * dim * sizeof(float));
    st = (clip_status *)malloc(n_images * sizeof(clip_status));
    CHECK(clip_encode_image_files(model, (const char *const *)(argv + 2), n_images, img_f, n_images * dim, st));
    print_floats("image_files", img_f, n_images * dim);
    CHECK(clip_encode_image_file(model, argv[2], one, dim));
    print_floats("image_file0", one, dim);
    bufs = (uint8_t **)malloc(n_images * sizeof(uint8_t *));
    sizes = (size_t *)malloc(n_images * sizeof(size_t));
    for (i = 0; i < n_images; i++) bufs[i] = read_file(argv[2 + i], &sizes[i]);
    CHECK(clip_encode_image_buffers(model, (const uint8_t *const *)bufs, sizes, n_images, buf_f, n_images * dim, st));
    print_floats("image_buffers", buf_f, n_images * dim);
    CHECK(clip_encode_image_buffer(model, bufs[0], sizes[0], one, dim));
    print_floats("image_buffer0", one, dim);

    /* raw pixels: RGB with row padding, BGRA tight */
    px0 = pattern(37, 29, 37 * 3 + 5, 3);
    px1 = pattern(20, 45, 20 * 4, 4);
    views[0].pixels = px0; views[0].width = 37; views[0].height = 29; views[0].stride = 37 * 3 + 5;
    views[0].pixel_format = CLIP_PIXEL_RGB8;
    views[1].pixels = px1; views[1].width = 20; views[1].height = 45; views[1].stride = 20 * 4;
    views[1].pixel_format = CLIP_PIXEL_BGRA8;
    raw_f = (float *)malloc(2 * dim * sizeof(float));
    CHECK(clip_encode_raw_images(model, views, 2, raw_f, 2 * dim));
    print_floats("raw_images", raw_f, 2 * dim);
    CHECK(clip_encode_raw_image(model, &views[1], one, dim));
    print_floats("raw_image1", one, dim);

    /* labels, zero-shot, similarity, classification */
    lab = (float *)malloc(n_labels * dim * sizeof(float));
    probs = (float *)malloc(n_images * n_labels * sizeof(float));
    sims = (float *)malloc(n_images * n_texts * sizeof(float));
    CHECK(clip_label_embeddings(model, labels, n_labels, NULL, 0, lab, n_labels * dim));
    print_floats("labels", lab, n_labels * dim);
    CHECK(clip_zero_shot(model, img_f, n_images, lab, n_labels, probs, n_images * n_labels));
    print_floats("zero_shot", probs, n_images * n_labels);
    CHECK(clip_classify_image_files(model, (const char *const *)(argv + 2), n_images, labels, n_labels, NULL, 0,
                                    probs, n_images * n_labels, st));
    print_floats("classify", probs, n_images * n_labels);
    CHECK(clip_encode_texts(model, texts, n_texts, text_f, n_texts * dim));
    CHECK(clip_similarity(model, img_f, n_images, text_f, n_texts, sims, n_images * n_texts));
    print_floats("similarity", sims, n_images * n_texts);

    for (i = 0; i < n_images; i++) free(bufs[i]);
    free(bufs); free(sizes); free(st); free(px0); free(px1); free(raw_f);
    free(text_f); free(one); free(ids); free(mask); free(img_f); free(buf_f);
    free(lab); free(probs); free(sims);
    clip_model_free(model);
    return 0;
}
