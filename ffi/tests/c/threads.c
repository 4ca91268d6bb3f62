/*
 * 8 threads share one model; each repeats the same calls and must get
 * results bit-identical to a serial run. After clip_model_free, the model's
 * own threads are gone (Linux: "Threads:" in /proc/self/status is back to
 * its count before the load; an emulator such as qemu-user has threads of
 * its own, so the baseline is measured, not assumed to be 1).
 *
 * Natively the count is read once, right after the free. Under qemu-user a
 * guest pthread_join returns when the guest thread has cleared its tid, while
 * qemu's host thread is still on its way out, so the count lags behind: there,
 * CLIP_TEST_THREAD_GRACE_MS (exported by scripts/cross-aarch64.sh) lets the test
 * re-read the count for that long before it fails.
 *
 * usage: threads MODEL_DIR IMAGE...
 */
#include "clip.h"

#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define ROUNDS 3
#define MAX_DIM 1024

static const char *texts[] = {"a b c", "hello, world!", "x"};
static const char *labels[] = {"cat", "dog", "rocket"};
enum { N_TEXTS = 3, N_LABELS = 3 };

typedef struct {
    const clip_model *model;
    const char *const *paths;
    size_t n_images;
    float *text_f, *img_f, *probs;
    int failed;
} job;

static size_t dim;

static int run(job *j) {
    if (clip_encode_texts(j->model, texts, N_TEXTS, j->text_f, N_TEXTS * dim) != CLIP_OK) return 1;
    if (clip_encode_image_files(j->model, j->paths, j->n_images, j->img_f, j->n_images * dim, NULL) != CLIP_OK) return 1;
    if (clip_classify_image_files(j->model, j->paths, j->n_images, labels, N_LABELS, NULL, 0, j->probs,
                                  j->n_images * N_LABELS, NULL) != CLIP_OK)
        return 1;
    return 0;
}

static job serial;

static void *worker(void *arg) {
    job *j = (job *)arg;
    int r;
    for (r = 0; r < ROUNDS && !j->failed; r++) {
        if (run(j)) {
            fprintf(stderr, "thread call failed: %s\n", clip_last_error());
            j->failed = 1;
        } else if (memcmp(j->text_f, serial.text_f, N_TEXTS * dim * sizeof(float)) ||
                   memcmp(j->img_f, serial.img_f, j->n_images * dim * sizeof(float)) ||
                   memcmp(j->probs, serial.probs, j->n_images * N_LABELS * sizeof(float))) {
            fprintf(stderr, "thread result differs from the serial run\n");
            j->failed = 1;
        }
    }
    return NULL;
}

static void alloc(job *j) {
    j->text_f = (float *)calloc(N_TEXTS * dim, sizeof(float));
    j->img_f = (float *)calloc(j->n_images * dim, sizeof(float));
    j->probs = (float *)calloc(j->n_images * N_LABELS, sizeof(float));
}

static void release(job *j) {
    free(j->text_f);
    free(j->img_f);
    free(j->probs);
}

/* The process's thread count, or -1 where /proc/self/status is missing. */
static int os_threads(void) {
    char line[256];
    int n = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

/* The thread count once it is at most `before`, or the last count read
 * within CLIP_TEST_THREAD_GRACE_MS milliseconds (default 0: one read). */
static int threads_after(int before) {
    const char *env = getenv("CLIP_TEST_THREAD_GRACE_MS");
    long grace_ms = env ? strtol(env, NULL, 10) : 0, waited = 0;
    int n = os_threads();
    while (n > before && waited < grace_ms) {
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
        waited++;
        n = os_threads();
    }
    return n;
}

int main(int argc, char **argv) {
    clip_model *model = NULL;
    clip_model_options opts;
    pthread_t tid[THREADS];
    job jobs[THREADS];
    int i, failed = 0, after;
    int before = os_threads();

    if (argc < 3) { fprintf(stderr, "usage: %s MODEL_DIR IMAGE...\n", argv[0]); return 2; }
    clip_model_options_init(&opts);
    opts.num_threads = 2;
    if (clip_model_load(argv[1], &opts, &model) != CLIP_OK) { fprintf(stderr, "%s\n", clip_last_error()); return 1; }
    dim = clip_model_embedding_dim(model);
    memset(&serial, 0, sizeof serial);
    serial.model = model;
    serial.paths = (const char *const *)(argv + 2);
    serial.n_images = (size_t)argc - 2;
    alloc(&serial);
    if (run(&serial)) { fprintf(stderr, "serial run failed: %s\n", clip_last_error()); return 1; }
    for (i = 0; i < THREADS; i++) {
        jobs[i] = serial;
        jobs[i].failed = 0;
        alloc(&jobs[i]);
        if (pthread_create(&tid[i], NULL, worker, &jobs[i]) != 0) { perror("pthread_create"); return 1; }
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        failed |= jobs[i].failed;
        release(&jobs[i]);
    }
    release(&serial);
    clip_model_free(model);
    if (failed) return 1;
    after = threads_after(before);
    if (after > before) {
        fprintf(stderr, "%d threads run after clip_model_free, %d before the load\n", after, before);
        return 1;
    }
    printf("threads: %d threads x %d rounds identical to the serial run\n", THREADS, ROUNDS);
    return 0;
}
