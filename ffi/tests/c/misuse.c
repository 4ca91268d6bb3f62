/*
 * Misuse of the C API: every case gets the right status and message and
 * nothing crashes. Self-checking: exits 1 with a message on the first failure.
 *
 * usage: misuse MODEL_DIR BUILTIN_VOCAB_MODEL_DIR NOT_AN_IMAGE_FILE IMAGE
 *   MODEL_DIR: a model whose tokenizer fits its vocabulary;
 *   BUILTIN_VOCAB_MODEL_DIR: a model with a small vocabulary and no tokenizer
 *   files (the built-in vocabulary gives ids outside it).
 */
#include "clip.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void expect(int line, clip_status got, clip_status want, const char *needle) {
    const char *msg = clip_last_error();
    if (got != want) {
        fprintf(stderr, "line %d: got %s, want %s (%s)\n", line, clip_status_name(got), clip_status_name(want), msg);
        failures++;
    } else if (needle && !strstr(msg, needle)) {
        fprintf(stderr, "line %d: message \"%s\" lacks \"%s\"\n", line, msg, needle);
        failures++;
    }
}
#define EXPECT(call, want, needle) expect(__LINE__, (call), (want), (needle))

static int log_calls = 0;
static void on_log(void *user, int32_t level, const char *message) {
    (void)level;
    if (user == (void *)&log_calls && message && message[0]) log_calls++;
}

int main(int argc, char **argv) {
    clip_model *m = NULL, *m2 = (clip_model *)&failures;
    clip_model_options opts;
    clip_model_buffers bufs;
    float out[64 * 4];
    uint32_t ids[64];
    size_t h, w, dim;
    const char *bad_utf8[] = {"fine", "caf\xc3"};
    const char *with_null[] = {"a", NULL};
    const char *labels[] = {"cat", "dog"};
    const char *no_braces[] = {"a photo"};
    clip_status st[2];
    const char *paths[2];
    clip_image_view v;
    uint8_t px[12] = {0};

    if (argc != 5) { fprintf(stderr, "usage: %s MODEL_DIR BUILTIN_VOCAB_DIR NOT_IMAGE IMAGE\n", argv[0]); return 2; }

    /* loading */
    EXPECT(clip_model_load(argv[1], NULL, NULL), CLIP_ERR_NULL_ARGUMENT, "out_model");
    EXPECT(clip_model_load(NULL, NULL, &m2), CLIP_ERR_NULL_ARGUMENT, "model_dir");
    if (m2 != NULL) { fprintf(stderr, "out_model not reset to NULL\n"); failures++; }
    EXPECT(clip_model_load("/nonexistent/clip-model", NULL, &m), CLIP_ERR_IO, "/nonexistent/clip-model");
    EXPECT(clip_model_load(argv[3], NULL, &m), CLIP_ERR_IO, NULL);
    EXPECT(clip_model_options_init(NULL), CLIP_ERR_NULL_ARGUMENT, "options");
    memset(&opts, 0, sizeof opts);
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_ERR_INVALID_ARGUMENT, "struct_size");
    clip_model_options_init(&opts);
    opts.alpha_policy = 7;
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_ERR_INVALID_ARGUMENT, "alpha_policy");
    clip_model_options_init(&opts);
    opts.precision = 7;
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_ERR_INVALID_ARGUMENT, "options->precision 7");
    opts.precision = -1;
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_ERR_INVALID_ARGUMENT, "precision");
    if (m != NULL) { fprintf(stderr, "out_model not NULL after a rejected precision\n"); failures++; }
    clip_model_options_init(&opts);
    opts.struct_size = offsetof(clip_model_options, precision) - 1; /* shorter than any layout */
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_ERR_INVALID_ARGUMENT, "struct_size");
    clip_model_options_init(&opts);
    opts.log_fn = on_log;
    opts.log_user_data = &log_calls;
    EXPECT(clip_model_load("/nonexistent/clip-model", &opts, &m), CLIP_ERR_IO, NULL);
    if (log_calls != 1) { fprintf(stderr, "load failure not logged\n"); failures++; }
    EXPECT(clip_model_load_from_memory(NULL, NULL, &m), CLIP_ERR_NULL_ARGUMENT, "buffers");
    memset(&bufs, 0, sizeof bufs);
    bufs.struct_size = sizeof bufs;
    EXPECT(clip_model_load_from_memory(&bufs, NULL, &m), CLIP_ERR_NULL_ARGUMENT, "config_json");
    bufs.config_json = "{not json";
    bufs.config_json_len = 9;
    bufs.weights = px;
    bufs.weights_len = sizeof px;
    EXPECT(clip_model_load_from_memory(&bufs, NULL, &m), CLIP_ERR_FORMAT, NULL);
    bufs.config_json = "\xff\xfe";
    bufs.config_json_len = 2;
    EXPECT(clip_model_load_from_memory(&bufs, NULL, &m), CLIP_ERR_INVALID_UTF8, "config_json");

    /* a good model, with the log callback */
    log_calls = 0;
    EXPECT(clip_model_load(argv[1], &opts, &m), CLIP_OK, NULL);
    if (!m || log_calls != 1) { fprintf(stderr, "load failed or not logged\n"); return 1; }
    dim = clip_model_embedding_dim(m);
    paths[0] = argv[4];
    paths[1] = argv[3];

    /* NULL model everywhere */
    EXPECT(clip_model_embedding_dim(NULL) == 0 ? CLIP_ERR_NULL_ARGUMENT : CLIP_OK, CLIP_ERR_NULL_ARGUMENT, "model is NULL");
    if (clip_model_context_length(NULL) != 0 || clip_model_num_threads(NULL) != 0) { fprintf(stderr, "NULL queries\n"); failures++; }
    EXPECT(clip_model_precision(NULL) == CLIP_PRECISION_FULL ? CLIP_ERR_NULL_ARGUMENT : CLIP_OK, CLIP_ERR_NULL_ARGUMENT, "model is NULL");
    if (clip_model_precision(m) != CLIP_PRECISION_FULL) { fprintf(stderr, "default precision\n"); failures++; }
    if (clip_int8_supported() != 0 && clip_int8_supported() != 1) { fprintf(stderr, "clip_int8_supported\n"); failures++; }
    EXPECT(clip_model_image_size(NULL, &h, &w), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_model_image_size(m, NULL, &w), CLIP_ERR_NULL_ARGUMENT, "height");
    EXPECT(clip_model_logit_scale(m, NULL), CLIP_ERR_NULL_ARGUMENT, "out");
    EXPECT(clip_encode_text(NULL, "a", out, dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_texts(NULL, labels, 2, out, 2 * dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_tokenize(NULL, labels, 2, ids, NULL, 64), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_token_ids(NULL, ids, NULL, 1, 4, out, dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_image_file(NULL, argv[4], out, dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_image_files(NULL, paths, 1, out, dim, NULL), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_image_buffer(NULL, px, 1, out, dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_encode_raw_image(NULL, &v, out, dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_label_embeddings(NULL, labels, 2, NULL, 0, out, 2 * dim), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_zero_shot(NULL, out, 1, out, 1, out, 1), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_similarity(NULL, out, 1, out, 1, out, 1), CLIP_ERR_NULL_ARGUMENT, "model");
    EXPECT(clip_classify_image_files(NULL, paths, 1, labels, 2, NULL, 0, out, 2, NULL), CLIP_ERR_NULL_ARGUMENT, "model");

    /* NULL arguments */
    EXPECT(clip_encode_text(m, NULL, out, dim), CLIP_ERR_NULL_ARGUMENT, "text is NULL");
    EXPECT(clip_encode_text(m, "a", NULL, dim), CLIP_ERR_NULL_ARGUMENT, "out is NULL");
    EXPECT(clip_encode_texts(m, NULL, 2, out, 2 * dim), CLIP_ERR_NULL_ARGUMENT, "texts is NULL");
    EXPECT(clip_encode_texts(m, with_null, 2, out, 2 * dim), CLIP_ERR_NULL_ARGUMENT, "texts[1] is NULL");
    EXPECT(clip_encode_texts(m, NULL, 0, NULL, 0), CLIP_OK, NULL); /* empty batch */
    EXPECT(clip_tokenize(m, labels, 2, NULL, NULL, 64), CLIP_ERR_NULL_ARGUMENT, "input_ids");
    EXPECT(clip_encode_token_ids(m, NULL, NULL, 1, 4, out, dim), CLIP_ERR_NULL_ARGUMENT, "input_ids");
    EXPECT(clip_encode_image_file(m, NULL, out, dim), CLIP_ERR_NULL_ARGUMENT, "path");
    EXPECT(clip_encode_image_buffer(m, NULL, 10, out, dim), CLIP_ERR_NULL_ARGUMENT, "data");
    EXPECT(clip_encode_image_buffers(m, NULL, NULL, 1, out, dim, NULL), CLIP_ERR_NULL_ARGUMENT, "data");
    EXPECT(clip_encode_raw_image(m, NULL, out, dim), CLIP_ERR_NULL_ARGUMENT, "image");
    EXPECT(clip_label_embeddings(m, NULL, 2, NULL, 0, out, 2 * dim), CLIP_ERR_NULL_ARGUMENT, "labels");
    EXPECT(clip_zero_shot(m, NULL, 1, out, 1, out, 1), CLIP_ERR_NULL_ARGUMENT, "image_features");

    /* invalid UTF-8 */
    EXPECT(clip_encode_text(m, "caf\xc3", out, dim), CLIP_ERR_INVALID_UTF8, "UTF-8");
    EXPECT(clip_encode_texts(m, bad_utf8, 2, out, 2 * dim), CLIP_ERR_INVALID_UTF8, "texts[1]");
    EXPECT(clip_label_embeddings(m, bad_utf8, 2, NULL, 0, out, 2 * dim), CLIP_ERR_INVALID_UTF8, "labels[1]");

    /* too-small buffers */
    EXPECT(clip_encode_text(m, "a", out, dim - 1), CLIP_ERR_BUFFER_TOO_SMALL, "needed");
    EXPECT(clip_encode_texts(m, labels, 2, out, 2 * dim - 1), CLIP_ERR_BUFFER_TOO_SMALL, NULL);
    EXPECT(clip_tokenize(m, labels, 2, ids, NULL, 3), CLIP_ERR_BUFFER_TOO_SMALL, "input_ids");
    EXPECT(clip_encode_image_file(m, argv[4], out, 1), CLIP_ERR_BUFFER_TOO_SMALL, NULL);
    EXPECT(clip_label_embeddings(m, labels, 2, NULL, 0, out, dim), CLIP_ERR_BUFFER_TOO_SMALL, NULL);
    EXPECT(clip_classify_image_files(m, paths, 1, labels, 2, NULL, 0, out, 1, NULL), CLIP_ERR_BUFFER_TOO_SMALL, NULL);

    /* invalid arguments */
    EXPECT(clip_label_embeddings(m, labels, 2, no_braces, 1, out, 2 * dim), CLIP_ERR_INVALID_ARGUMENT, "{}");
    EXPECT(clip_label_embeddings(m, labels, 0, NULL, 0, out, 2 * dim), CLIP_ERR_INVALID_ARGUMENT, "no labels");
    ids[0] = 5; ids[1] = 100000; ids[2] = 7; ids[3] = 8;
    EXPECT(clip_encode_token_ids(m, ids, NULL, 1, 4, out, dim), CLIP_ERR_INVALID_ARGUMENT, NULL);
    v.pixels = px; v.width = 2; v.height = 2; v.stride = 6; v.pixel_format = 42;
    EXPECT(clip_encode_raw_image(m, &v, out, dim), CLIP_ERR_INVALID_ARGUMENT, "pixel_format");
    v.pixel_format = CLIP_PIXEL_RGB8; v.stride = 5;
    EXPECT(clip_encode_raw_image(m, &v, out, dim), CLIP_ERR_INVALID_ARGUMENT, "stride");
    v.stride = 6; v.width = 0;
    EXPECT(clip_encode_raw_image(m, &v, out, dim), CLIP_ERR_INVALID_ARGUMENT, "zero");
    v.width = 2; v.pixels = NULL;
    EXPECT(clip_encode_raw_image(m, &v, out, dim), CLIP_ERR_NULL_ARGUMENT, "pixels");
    v.pixels = px; v.width = 40000; v.height = 1; v.stride = 120000;
    EXPECT(clip_encode_raw_image(m, &v, out, dim), CLIP_ERR_LIMIT_EXCEEDED, "limit");

    /* bad images, per item */
    paths[0] = argv[4];
    paths[1] = argv[3];
    st[0] = st[1] = CLIP_ERR_PANIC;
    EXPECT(clip_encode_image_files(m, paths, 2, out, 2 * dim, st), CLIP_ERR_FORMAT, "image 1");
    if (st[0] != CLIP_OK || st[1] != CLIP_ERR_FORMAT || out[dim] != 0.0f || out[0] == 0.0f) {
        fprintf(stderr, "per-item statuses %s %s\n", clip_status_name(st[0]), clip_status_name(st[1]));
        failures++;
    }
    paths[1] = "/nonexistent/image.png";
    EXPECT(clip_classify_image_files(m, paths, 2, labels, 2, NULL, 0, out, 4, st), CLIP_ERR_IO, "/nonexistent/image.png");
    if (st[0] != CLIP_OK || st[1] != CLIP_ERR_IO || out[2] != 0.0f || out[0] + out[1] < 0.99f) {
        fprintf(stderr, "classify per-item results\n");
        failures++;
    }
    EXPECT(clip_encode_image_buffer(m, px, sizeof px, out, dim), CLIP_ERR_FORMAT, NULL);

    /* status names */
    if (strcmp(clip_status_name(CLIP_ERR_BUFFER_TOO_SMALL), "CLIP_ERR_BUFFER_TOO_SMALL") != 0 ||
        strcmp(clip_status_name((clip_status)99), "CLIP_ERR_UNKNOWN") != 0 ||
        strcmp(clip_status_name((clip_status)-1), "CLIP_ERR_UNKNOWN") != 0) {
        fprintf(stderr, "clip_status_name\n");
        failures++;
    }
    if (clip_default_template_count() < 1 || clip_default_template(clip_default_template_count()) != NULL ||
        !strstr(clip_default_template(0), "{}")) {
        fprintf(stderr, "default templates\n");
        failures++;
    }

    /* freed, then NULL */
    clip_model_free(m);
    m = NULL;
    clip_model_free(m);
    clip_model_free(NULL);
    EXPECT(clip_encode_text(m, "a", out, 64), CLIP_ERR_NULL_ARGUMENT, "model is NULL");

    /* the built-in vocabulary on a 1000-token model: ids outside the vocabulary */
    EXPECT(clip_model_load(argv[2], NULL, &m), CLIP_OK, NULL);
    EXPECT(clip_encode_text(m, "a photo of a cat", out, 64), CLIP_ERR_INVALID_ARGUMENT, "vocab");
    clip_model_free(m);

    if (failures) { fprintf(stderr, "%d failures\n", failures); return 1; }
    printf("misuse: all checks passed\n");
    return 0;
}
