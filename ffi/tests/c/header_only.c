/* The header compiles on its own (C99 and C++17, warnings as errors). */
#include "clip.h"

#if CLIP_VERSION_MAJOR != 0 || !defined(CLIP_VERSION_STRING) || !defined(CLIP_ABI_VERSION)
#error "version macros"
#endif

int clip_header_only_check(void);
int clip_header_only_check(void) {
    clip_status s = CLIP_OK;
    clip_precision p = CLIP_PRECISION_INT8;
    clip_model_options o;
    clip_image_view v;
    clip_model_buffers b;
    (void)p;
    (void)o;
    (void)v;
    (void)b;
    return (int)s + (int)sizeof(clip_model *);
}
