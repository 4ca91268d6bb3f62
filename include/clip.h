/*
 * clip.h - C API of clip, a pure-Rust CPU inference runtime for OpenAI's CLIP
 * (Hugging Face compatible checkpoints).
 *
 * One header, one library (libclip.so.0 or libclip.a). See docs/c-api.md.
 *
 * Conventions
 * -----------
 * - Every fallible function returns a clip_status. On failure,
 *   clip_last_error() gives a message for the calling thread. Nothing is ever
 *   printed; pass a log callback in clip_model_options to see diagnostics.
 * - A clip_model is immutable after loading: any number of threads may use one
 *   model at the same time, and a call's results do not depend on other
 *   calls. What is reused between calls is memory only: a model keeps the
 *   intermediate buffers of finished passes and the weights it re-laid out on
 *   first use, each thread keeps its scratch buffers, and each thread its
 *   last-error message. The kernel (CLIP_KERNEL, clip_kernel_name) is chosen
 *   once per process.
 * - Outputs go to caller-provided buffers with an explicit length in
 *   elements (floats, ids, ...). A buffer shorter than needed gives
 *   CLIP_ERR_BUFFER_TOO_SMALL and nothing is written. The sizes come from
 *   clip_model_embedding_dim(), clip_model_context_length() and the batch
 *   sizes you pass.
 * - Embeddings are row-major [n, dim] float arrays, not normalised (as
 *   transformers' get_text_features / get_image_features).
 * - An array argument may be NULL only when its count is 0.
 * - Strings are NUL-terminated and must be valid UTF-8 (CLIP_ERR_INVALID_UTF8
 *   otherwise). File paths are passed to the OS as bytes.
 * - No function keeps a pointer you pass in after it returns (the
 *   log callback's user_data excepted).
 * - Every panic inside the library is caught at the boundary and reported as
 *   CLIP_ERR_PANIC.
 */
#ifndef CLIP_H
#define CLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIP_VERSION_MAJOR 0
#define CLIP_VERSION_MINOR 2
#define CLIP_VERSION_PATCH 0
#define CLIP_VERSION_STRING "0.2.0"
/* The soname is libclip.so.CLIP_ABI_VERSION. */
#define CLIP_ABI_VERSION 0

#if defined(_WIN32) && defined(CLIP_DLL)
#  define CLIP_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#  define CLIP_API __attribute__((visibility("default")))
#else
#  define CLIP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

/* The result of every fallible call. Values are stable across versions. */
typedef enum clip_status {
    CLIP_OK = 0,
    CLIP_ERR_NULL_ARGUMENT = 1,    /* a required pointer was NULL */
    CLIP_ERR_INVALID_ARGUMENT = 2, /* a value out of range or inconsistent, e.g.
                                      a token id outside the vocabulary */
    CLIP_ERR_INVALID_UTF8 = 3,     /* a string is not valid UTF-8 */
    CLIP_ERR_IO = 4,               /* a file or directory could not be read */
    CLIP_ERR_FORMAT = 5,           /* malformed config, weights or image */
    CLIP_ERR_UNSUPPORTED = 6,      /* well formed but not implemented */
    CLIP_ERR_LIMIT_EXCEEDED = 7,   /* e.g. an image larger than the limits */
    CLIP_ERR_BUFFER_TOO_SMALL = 8, /* an output buffer is too short */
    CLIP_ERR_OUT_OF_MEMORY = 9,    /* an allocation the library checks failed */
    CLIP_ERR_INTERNAL = 10,        /* a bug: an internal invariant did not hold */
    CLIP_ERR_PANIC = 11            /* a bug: a panic was caught at the boundary */
} clip_status;

/*
 * The message of the last failed call on the calling thread ("" if none).
 * Never NULL. Owned by the library; valid until the next failing call on the
 * same thread. Successful calls leave it unchanged.
 */
CLIP_API const char *clip_last_error(void);

/* The constant's name, e.g. "CLIP_ERR_IO"; "CLIP_ERR_UNKNOWN" for other values.
   Static storage; never NULL. */
CLIP_API const char *clip_status_name(clip_status status);

/* The library's version, e.g. "0.2.0" (compare with CLIP_VERSION_STRING).
   Static storage. */
CLIP_API const char *clip_version(void);

/* ------------------------------------------------------------------------ */
/* Model handle                                                             */
/* ------------------------------------------------------------------------ */

/* An immutable model with its tokenizer, image preprocessing and thread pool.
   Thread-safe: share one among any number of threads. */
typedef struct clip_model clip_model;

typedef enum clip_log_level {
    CLIP_LOG_DEBUG = 0,
    CLIP_LOG_INFO = 1,
    CLIP_LOG_WARN = 2,
    CLIP_LOG_ERROR = 3
} clip_log_level;

/*
 * Receives diagnostics (level is a clip_log_level). Called on the thread that
 * made the library call, while the call runs; message is valid only during
 * the callback. With a model shared by several threads it may be called
 * concurrently. It must not call back into the library with the same model
 * being freed, and must not unwind (C++ exceptions, longjmp).
 */
typedef void (*clip_log_fn)(void *user_data, int32_t level, const char *message);

/* How an alpha channel becomes RGB. */
typedef enum clip_alpha_policy {
    /* Composite on opaque white (transformers 5, the default). */
    CLIP_ALPHA_COMPOSITE_ON_WHITE = 0,
    /* Drop alpha, keep the stored colour (transformers 4, OpenAI clip). */
    CLIP_ALPHA_DROP = 1
} clip_alpha_policy;

/*
 * How the model's linear layers compute. Chosen when the model is loaded
 * (clip_model_options.precision) and fixed for the handle's lifetime, so that
 * threads sharing a model never see it change.
 */
typedef enum clip_precision {
    /* f32 arithmetic on the weights as stored, f32 accumulation: the numbers
       transformers gives (the default). */
    CLIP_PRECISION_FULL = 0,
    /* Int8 weights (one scale per output feature) times int8 activations (one
       scale per row), summed exactly in 32 bits: faster, slightly less
       accurate, the same numbers on every CPU. Every linear layer but the
       patch embedding. A quantized checkpoint (docs/quantized.md) computes
       at INT8 when loaded with FULL, the default. */
    CLIP_PRECISION_INT8 = 1
} clip_precision;

/* 1: every CPU runs CLIP_PRECISION_INT8 with int8 arithmetic (the avx512
   kernel on a CPU without AVX-512 VNNI runs it on the avx2 kernel's). Kept
   for programs written when some computed INT8 as FULL. */
CLIP_API int clip_int8_supported(void);

/* The kernel this process computes with: "avx512", "avx2", "neon" or "gemm"
   (the gemm crate, no kernel of this library's own); a static string, never
   freed. Chosen once per process: the fastest this CPU supports, or the one
   the CLIP_KERNEL environment variable names (read at the first call that
   needs it). NULL, with clip_last_error() saying why, when CLIP_KERNEL names
   a kernel that does not exist or that this CPU cannot run, or CLIP_INT8_DOT
   int8 instructions (see clip_int8_dot_name); clip_model_load then fails too
   (CLIP_ERR_INVALID_ARGUMENT or CLIP_ERR_UNSUPPORTED). */
CLIP_API const char *clip_kernel_name(void);

/* The instructions the kernel's int8 products run: "vnni" (AVX-512 VNNI or
   AVX-VNNI), "maddubs" (AVX2 alone), "i8mm" (aarch64 smmla), "sdot"
   (aarch64 dot product), "smull" (aarch64 widening multiplies) or "scalar" (the gemm kernel); a static
   string. A kernel without int8 products of its own (avx512 without AVX-512
   VNNI) runs the avx2 kernel's "maddubs". Every one gives the same numbers,
   bit for bit. The CLIP_INT8_DOT
   environment variable forces one the kernel has; NULL, with
   clip_last_error() saying why, when CLIP_KERNEL or CLIP_INT8_DOT is
   invalid (clip_model_load then fails too). */
CLIP_API const char *clip_int8_dot_name(void);

/*
 * Load options. Initialise with clip_model_options_init(), then set fields.
 * Fields are only ever appended: a program built against an older clip.h
 * passes its smaller struct_size and the newer fields take their defaults
 * (a struct_size ending before precision gives CLIP_PRECISION_FULL). With a
 * library older than the program's clip.h, the fields that library does not
 * know must be zero (their defaults), else the call fails with
 * CLIP_ERR_INVALID_ARGUMENT rather than ignore what the program asked for.
 */
typedef struct clip_model_options {
    size_t struct_size;    /* sizeof(clip_model_options), set by _init */
    uint32_t num_threads;  /* threads of the model's own pool; 0 = one per core.
                              During an encoding call they spin between its
                              parallel steps (no sleeping); they sleep between calls. */
    int32_t alpha_policy;  /* a clip_alpha_policy */
    clip_log_fn log_fn;    /* NULL = no diagnostics */
    void *log_user_data;   /* passed to log_fn */
    int32_t precision;     /* a clip_precision; other values give
                              CLIP_ERR_INVALID_ARGUMENT */
    /* Limits on the images the model decodes (files and encoded buffers;
       raw pixel views are the caller's memory already), checked from the
       image's header before any pixel is decoded: a larger image gives
       CLIP_ERR_LIMIT_EXCEEDED. 0 = the default; any other value replaces it
       (lower for untrusted input on a small device, higher for trusted
       large scans). A struct_size ending before max_image_bytes gives the
       defaults. */
    uint64_t max_image_bytes;  /* bytes of decoded pixels; default 512 MiB */
    uint32_t max_image_width;  /* pixels; default 32768 */
    uint32_t max_image_height; /* pixels; default 32768 */
} clip_model_options;

/* Fills *options with the defaults (precision CLIP_PRECISION_FULL, the
   default image limits). */
CLIP_API clip_status clip_model_options_init(clip_model_options *options);

/*
 * Loads a Hugging Face model directory: config.json, *.safetensors (memory
 * mapped), tokenizer.json or vocab.json + merges.txt (else the built-in CLIP
 * vocabulary) and preprocessor_config.json (else CLIP's 224-pixel defaults).
 * options may be NULL for the defaults. On success *out_model is a new
 * handle to release with clip_model_free(); on failure it is set to NULL.
 * Errors: CLIP_ERR_IO (missing directory or file), CLIP_ERR_FORMAT,
 * CLIP_ERR_UNSUPPORTED, ...
 */
CLIP_API clip_status clip_model_load(const char *model_dir, const clip_model_options *options,
                                     clip_model **out_model);

/* The files of a model directory, in memory. Zero-initialise, set
   struct_size = sizeof(clip_model_buffers), and fill the fields. Lengths are
   in bytes; the texts need not be NUL-terminated. Fields appended by a newer
   clip.h must be zero for an older library (as for clip_model_options). */
typedef struct clip_model_buffers {
    size_t struct_size;
    const char *config_json; /* required */
    size_t config_json_len;
    const uint8_t *weights; /* required: one safetensors file (copied) */
    size_t weights_len;
    const char *tokenizer_json; /* optional: tokenizer.json, or */
    size_t tokenizer_json_len;
    const char *vocab_json; /* optional: vocab.json and merges.txt together, */
    size_t vocab_json_len;
    const char *merges_txt;
    size_t merges_txt_len;          /* (none of them: built-in vocabulary) */
    const char *preprocessor_config_json; /* optional (else CLIP defaults) */
    size_t preprocessor_config_json_len;
} clip_model_buffers;

/* As clip_model_load(), from memory. The buffers are not referenced after the
   call returns (the weights are copied). */
CLIP_API clip_status clip_model_load_from_memory(const clip_model_buffers *buffers,
                                                 const clip_model_options *options,
                                                 clip_model **out_model);

/* Releases a model. NULL is ignored. No other thread may be using it. Returns
   once the model's own threads have exited, so the library may be unloaded
   (dlclose) right after. */
CLIP_API void clip_model_free(clip_model *model);

/* Width of every embedding (projection dim); 0 if model is NULL. */
CLIP_API size_t clip_model_embedding_dim(const clip_model *model);

/* Token rows are this long (BOS and EOS included; longer texts are
   truncated); 0 if model is NULL. */
CLIP_API size_t clip_model_context_length(const clip_model *model);

/* Threads a call uses; 0 if model is NULL. */
CLIP_API size_t clip_model_num_threads(const clip_model *model);

/* The clip_precision the model computes at: the one it was loaded with,
   except that a quantized checkpoint (docs/quantized.md) loaded with FULL
   computes at INT8; 0 (CLIP_PRECISION_FULL) if model is NULL. */
CLIP_API int32_t clip_model_precision(const clip_model *model);

/* The preprocessed image size the vision tower sees (informational: images of
   any size are accepted and resized). */
CLIP_API clip_status clip_model_image_size(const clip_model *model, size_t *height, size_t *width);

/* The learned temperature in log space: similarities are cosines times
   exp(*out). */
CLIP_API clip_status clip_model_logit_scale(const clip_model *model, float *out);

/* ------------------------------------------------------------------------ */
/* Texts                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Tokenizes n_texts texts into rows of clip_model_context_length(model) ids:
 * BOS, the text's tokens (truncated), EOS, then padding. input_ids receives
 * n_texts * context_length ids; attention_mask (may be NULL) as many 1/0
 * flags; out_len is the length of each buffer in elements.
 */
CLIP_API clip_status clip_tokenize(const clip_model *model, const char *const *texts, size_t n_texts,
                                   uint32_t *input_ids, uint32_t *attention_mask, size_t out_len);

/* Text embeddings: out receives n_texts * dim floats (out_len >= that). */
CLIP_API clip_status clip_encode_texts(const clip_model *model, const char *const *texts,
                                       size_t n_texts, float *out, size_t out_len);

/* One text: out receives dim floats. */
CLIP_API clip_status clip_encode_text(const clip_model *model, const char *text, float *out,
                                      size_t out_len);

/*
 * Text embeddings from token ids: n_texts rows of row_len ids (e.g. from
 * clip_tokenize), with an optional attention mask of the same shape (NULL =
 * all ones), pooled at the end-of-text token as transformers does. An id
 * outside the model's vocabulary gives CLIP_ERR_INVALID_ARGUMENT.
 */
CLIP_API clip_status clip_encode_token_ids(const clip_model *model, const uint32_t *input_ids,
                                           const uint32_t *attention_mask, size_t n_texts,
                                           size_t row_len, float *out, size_t out_len);

/* ------------------------------------------------------------------------ */
/* Images                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Batch image calls report per image. out receives n_images * dim floats; the
 * row of an image that failed is all zeros. item_status (may be NULL)
 * receives one clip_status per image. The call returns CLIP_OK if every
 * image succeeded, else the status of the first failure, and
 * clip_last_error() names that image.
 *
 * Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by
 * content. Images beyond the model's limits (by default 32768 x 32768 pixels
 * and 512 MiB decoded; see clip_model_options) give CLIP_ERR_LIMIT_EXCEEDED.
 * No EXIF rotation is applied.
 */
CLIP_API clip_status clip_encode_image_files(const clip_model *model, const char *const *paths,
                                             size_t n_images, float *out, size_t out_len,
                                             clip_status *item_status);

/* One image file: out receives dim floats. */
CLIP_API clip_status clip_encode_image_file(const clip_model *model, const char *path, float *out,
                                            size_t out_len);

/* Encoded images (file contents) in memory: data[i] has sizes[i] bytes. */
CLIP_API clip_status clip_encode_image_buffers(const clip_model *model, const uint8_t *const *data,
                                               const size_t *sizes, size_t n_images, float *out,
                                               size_t out_len, clip_status *item_status);

/* One encoded image in memory. */
CLIP_API clip_status clip_encode_image_buffer(const clip_model *model, const uint8_t *data,
                                              size_t size, float *out, size_t out_len);

/* Layouts of raw pixel buffers. */
typedef enum clip_pixel_format {
    CLIP_PIXEL_GRAY8 = 0,       /* 1 byte per pixel */
    CLIP_PIXEL_GRAY_ALPHA8 = 1, /* 2 bytes: gray, alpha */
    CLIP_PIXEL_RGB8 = 2,        /* 3 bytes: R, G, B */
    CLIP_PIXEL_BGR8 = 3,        /* 3 bytes: B, G, R */
    CLIP_PIXEL_RGBA8 = 4,       /* 4 bytes: R, G, B, A (straight alpha) */
    CLIP_PIXEL_BGRA8 = 5        /* 4 bytes: B, G, R, A (straight alpha) */
} clip_pixel_format;

/* A decoded image: height rows of width pixels, row y starting at byte
   y * stride of pixels (stride >= width * bytes per pixel; padding ignored).
   The buffer must hold stride * (height - 1) + width * bytes per pixel bytes. */
typedef struct clip_image_view {
    const uint8_t *pixels;
    size_t width;
    size_t height;
    size_t stride;        /* bytes from one row to the next */
    int32_t pixel_format; /* a clip_pixel_format */
} clip_image_view;

/* Embeddings of raw images: out receives n_images * dim floats. Any invalid
   view fails the whole call (its index is in the message). */
CLIP_API clip_status clip_encode_raw_images(const clip_model *model, const clip_image_view *images,
                                            size_t n_images, float *out, size_t out_len);

/* One raw image. */
CLIP_API clip_status clip_encode_raw_image(const clip_model *model, const clip_image_view *image,
                                           float *out, size_t out_len);

/* ------------------------------------------------------------------------ */
/* Similarity and zero-shot classification                                  */
/* ------------------------------------------------------------------------ */

/*
 * Scaled cosine similarities (transformers' logits_per_image):
 * out[i * n_texts + j] = exp(logit_scale) * cos(image i, text j), from
 * embeddings as returned by the encode calls ([n, dim] each).
 */
CLIP_API clip_status clip_similarity(const clip_model *model, const float *image_features,
                                     size_t n_images, const float *text_features, size_t n_texts,
                                     float *out, size_t out_len);

/* The number of built-in prompt templates, and the index-th one ("a photo of
   a {}." ...), static storage; NULL if index is out of range. */
CLIP_API size_t clip_default_template_count(void);
CLIP_API const char *clip_default_template(size_t index);

/*
 * One L2-normalised embedding per label (out: n_labels * dim floats): each
 * template, with its "{}" replaced by the label, is encoded and normalised;
 * the results are averaged and normalised again. templates = NULL with
 * n_templates = 0 uses the built-in templates; each template must contain
 * "{}".
 */
CLIP_API clip_status clip_label_embeddings(const clip_model *model, const char *const *labels,
                                           size_t n_labels, const char *const *templates,
                                           size_t n_templates, float *out, size_t out_len);

/* Zero-shot probabilities (out_probs: n_images * n_labels floats, each row
   sums to 1): softmax over labels of the scaled cosine similarities. */
CLIP_API clip_status clip_zero_shot(const clip_model *model, const float *image_features,
                                    size_t n_images, const float *label_embeddings, size_t n_labels,
                                    float *out_probs, size_t out_len);

/*
 * Labels + templates + image files -> probabilities, in one call
 * (clip_label_embeddings, clip_encode_image_files, clip_zero_shot). Per-image
 * failures as in clip_encode_image_files: the row of a failed image is all
 * zeros and item_status (may be NULL) says why.
 */
CLIP_API clip_status clip_classify_image_files(const clip_model *model, const char *const *paths,
                                               size_t n_images, const char *const *labels,
                                               size_t n_labels, const char *const *templates,
                                               size_t n_templates, float *out_probs,
                                               size_t out_len, clip_status *item_status);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CLIP_H */
