/*
 * tag: zero-shot image tagging with libclip.
 *
 *   ./tag --model DIR --labels cat,dog,car [--top K] [--threads N] IMAGE...
 *
 * Prints, for each image, its most probable labels:
 *   photo.jpg: cat 0.912, dog 0.071, car 0.017
 *
 * Build:  gcc tag.c -o tag $(pkg-config --cflags --libs clip)
 */
#include <clip.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s --model DIR --labels a,b,c [--top K] [--threads N] IMAGE...\n", argv0);
}

/* Splits a comma-separated list in place; returns the number of items. */
static size_t split_labels(char *list, const char **out, size_t max) {
    size_t n = 0;
    char *tok = strtok(list, ",");
    while (tok && n < max) {
        if (*tok) out[n++] = tok;
        tok = strtok(NULL, ",");
    }
    return n;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *labels[256];
    char *label_list = NULL;
    const char **images = NULL;
    size_t n_labels, n_images = 0, top = 3, i, k;
    clip_model_options opts;
    clip_model *model = NULL;
    clip_status status, *item_status;
    float *probs;
    int a, exit_code = 0;

    clip_model_options_init(&opts);
    images = (const char **)calloc((size_t)argc, sizeof *images);
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--model") && a + 1 < argc) model_dir = argv[++a];
        else if (!strcmp(argv[a], "--labels") && a + 1 < argc) label_list = argv[++a];
        else if (!strcmp(argv[a], "--top") && a + 1 < argc) top = (size_t)strtoul(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) opts.num_threads = (uint32_t)strtoul(argv[++a], NULL, 10);
        else if (argv[a][0] == '-') { usage(argv[0]); return 2; }
        else images[n_images++] = argv[a];
    }
    if (!model_dir || !label_list || n_images == 0) { usage(argv[0]); return 2; }
    n_labels = split_labels(label_list, labels, sizeof labels / sizeof *labels);
    if (n_labels == 0) { usage(argv[0]); return 2; }

    status = clip_model_load(model_dir, &opts, &model);
    if (status != CLIP_OK) {
        fprintf(stderr, "cannot load %s: %s (%s)\n", model_dir, clip_last_error(), clip_status_name(status));
        return 1;
    }

    probs = (float *)malloc(n_images * n_labels * sizeof *probs);
    item_status = (clip_status *)malloc(n_images * sizeof *item_status);
    for (i = 0; i < n_images; i++) item_status[i] = (clip_status)-1; /* "not reached" */
    /* Built-in prompt templates (templates = NULL, n_templates = 0). */
    status = clip_classify_image_files(model, images, n_images, labels, n_labels, NULL, 0, probs,
                                       n_images * n_labels, item_status);
    if (status != CLIP_OK && item_status[0] == (clip_status)-1) {
        /* the whole call failed (bad labels, ...), not single images */
        fprintf(stderr, "error: %s (%s)\n", clip_last_error(), clip_status_name(status));
        exit_code = 1;
        n_images = 0;
    }
    for (i = 0; i < n_images; i++) {
        const float *p = probs + i * n_labels;
        int used[256] = {0};
        if (item_status[i] != CLIP_OK) {
            printf("%s: error %s\n", images[i], clip_status_name(item_status[i]));
            exit_code = 1;
            continue;
        }
        printf("%s:", images[i]);
        for (k = 0; k < top && k < n_labels; k++) {
            size_t best = 0, j;
            int found = 0;
            for (j = 0; j < n_labels; j++)
                if (!used[j] && (!found || p[j] > p[best])) { best = j; found = 1; }
            used[best] = 1;
            printf("%s %s %.3f", k ? "," : "", labels[best], p[best]);
        }
        printf("\n");
    }
    free(probs);
    free(item_status);
    free(images);
    clip_model_free(model);
    return exit_code;
}
