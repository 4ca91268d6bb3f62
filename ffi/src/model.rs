//! `clip_model`: the immutable, thread-shareable model handle; loading from
//! a directory or from memory, options, logging, size queries and `_free`.

use crate::args::{mul, out_arg, path_arg, slice_arg, write_opt};
use crate::status::{guard, guard_value, ClipStatus, FfiError, FfiResult};
use clip::config::ModelConfig;
use clip::image_processing::{AlphaPolicy, CLIPImageProcessor, ImageLimits, ImageProcessorConfig};
use clip::kernels::{Int8Dot, Kernel};
use clip::tokenizer::CLIPTokenizer;
use clip::weights::WeightStore;
use clip::{CLIPModel, CLIPProcessor, Pipeline, Precision};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// `clip_log_fn`: receives the library's diagnostics.
pub type ClipLogFn =
    unsafe extern "C" fn(user_data: *mut c_void, level: i32, message: *const c_char);

/// `CLIP_LOG_*` levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// `CLIP_PRECISION_*` values of `clip_model_options.precision`.
pub const CLIP_PRECISION_FULL: i32 = 0;
/// See [`CLIP_PRECISION_FULL`].
pub const CLIP_PRECISION_INT8: i32 = 1;

/// `clip_model_options` (C layout; see `include/clip.h`). Fields are only
/// ever appended; `struct_size` says which version the caller has (see
/// `ClipModelOptionsV1`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClipModelOptions {
    pub struct_size: usize,
    pub num_threads: u32,
    pub alpha_policy: i32,
    pub log_fn: Option<ClipLogFn>,
    pub log_user_data: *mut c_void,
    /// A `CLIP_PRECISION_*` value; appended to the first layout
    /// (`ClipModelOptionsV1`).
    pub precision: i32,
    /// Largest decoded size of an image file or buffer, in bytes (0: the
    /// default, 512 MiB); appended with the two below to the second layout
    /// (which ended with `precision`, at `V2_SIZE`).
    pub max_image_bytes: u64,
    /// Largest width of an image file or buffer, in pixels (0: 32768).
    pub max_image_width: u32,
    /// Largest height of an image file or buffer, in pixels (0: 32768).
    pub max_image_height: u32,
}

/// The size of the second `clip_model_options` layout (the first with
/// `precision`): where the image limits start.
const V2_SIZE: usize = std::mem::offset_of!(ClipModelOptions, max_image_bytes);

impl Default for ClipModelOptions {
    fn default() -> Self {
        ClipModelOptions {
            struct_size: std::mem::size_of::<ClipModelOptions>(),
            num_threads: 0,
            alpha_policy: 0,
            log_fn: None,
            log_user_data: std::ptr::null_mut(),
            precision: CLIP_PRECISION_FULL,
            max_image_bytes: 0,
            max_image_width: 0,
            max_image_height: 0,
        }
    }
}

/// The first `clip_model_options` layout (before `precision`): what a
/// program built against an older `clip.h` passes, with `struct_size` its
/// size. The fields appended since then take their defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ClipModelOptionsV1 {
    struct_size: usize,
    num_threads: u32,
    alpha_policy: i32,
    log_fn: Option<ClipLogFn>,
    log_user_data: *mut c_void,
}

// The old layout is a prefix of the current one and ends where `precision`
// starts, so `struct_size` tells the two apart.
const _: () = {
    use std::mem::{offset_of, size_of};
    type V1 = ClipModelOptionsV1;
    type Now = ClipModelOptions;
    assert!(offset_of!(V1, num_threads) == offset_of!(Now, num_threads));
    assert!(offset_of!(V1, alpha_policy) == offset_of!(Now, alpha_policy));
    assert!(offset_of!(V1, log_fn) == offset_of!(Now, log_fn));
    assert!(offset_of!(V1, log_user_data) == offset_of!(Now, log_user_data));
    assert!(size_of::<V1>() == offset_of!(Now, precision));
    assert!(size_of::<V1>() < size_of::<Now>());
    // The second layout's size (precision, then tail padding) is where the
    // limits start: they grew the struct rather than fill that padding.
    assert!(V2_SIZE == (offset_of!(Now, precision) + 4).next_multiple_of(8));
    assert!(V2_SIZE < size_of::<Now>());
};

/// The options after validation.
struct LoadOptions {
    raw: ClipModelOptions,
    alpha: AlphaPolicy,
    precision: Precision,
    limits: ImageLimits,
}

/// The `CLIP_PRECISION_*` value of a precision.
fn precision_value(p: Precision) -> i32 {
    match p {
        Precision::Full => CLIP_PRECISION_FULL,
        Precision::Int8 => CLIP_PRECISION_INT8,
    }
}

/// `clip_model_buffers` (C layout; see `include/clip.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClipModelBuffers {
    pub struct_size: usize,
    pub config_json: *const c_char,
    pub config_json_len: usize,
    pub weights: *const u8,
    pub weights_len: usize,
    pub tokenizer_json: *const c_char,
    pub tokenizer_json_len: usize,
    pub vocab_json: *const c_char,
    pub vocab_json_len: usize,
    pub merges_txt: *const c_char,
    pub merges_txt_len: usize,
    pub preprocessor_config_json: *const c_char,
    pub preprocessor_config_json_len: usize,
}

/// The caller's log callback.
#[derive(Clone, Copy)]
struct Logger {
    f: Option<ClipLogFn>,
    user_data: *mut c_void,
}

// SAFETY: the header requires the callback (and its user data) to be usable
// from any thread that calls into the library with this model.
unsafe impl Send for Logger {}
// SAFETY: as above.
unsafe impl Sync for Logger {}

/// `clip_model`: a pipeline (model, processor, thread pool) and a logger.
/// Immutable after loading, so any number of threads may share it.
pub struct ClipModel {
    pub pipeline: Pipeline,
    log: Logger,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ClipModel>();
};

impl ClipModel {
    /// Sends a message to the log callback, if any (on the calling thread).
    pub fn log(&self, level: LogLevel, message: &str) {
        if let Some(f) = self.log.f {
            let c = CString::new(message.replace('\0', "?")).unwrap_or_default();
            // SAFETY: a function pointer the caller registered with its user data;
            // the message lives across the call.
            unsafe { f(self.log.user_data, level as i32, c.as_ptr()) };
        }
    }

    pub fn dim(&self) -> usize {
        self.pipeline.embedding_dim()
    }
}

/// The largest `struct_size` taken: a larger one is not the size of a
/// `clip_model_options` or `clip_model_buffers` of any version (an
/// uninitialised field), and its bytes are not read.
const MAX_STRUCT_SIZE: usize = 4096;

/// Checks the bytes of a caller's struct beyond the `known` bytes of this
/// library's version of it: a newer `clip.h` may append fields, and this
/// library cannot honour them, so they must hold zero (their defaults), as
/// Linux checks `clone3`/`openat2` arguments. (A future field must therefore
/// make `sizeof` grow, not fill the current tail padding.)
///
/// # Safety
/// `ptr` addresses `size` readable bytes when `size <= MAX_STRUCT_SIZE`.
unsafe fn check_newer_fields(
    ptr: *const u8,
    size: usize,
    known: usize,
    what: &str,
) -> FfiResult<()> {
    if size > MAX_STRUCT_SIZE {
        return Err(FfiError::invalid(format!(
            "{what}->struct_size is {size}, not the size of a {what} (uninitialised?); \
             this library's is {known}"
        )));
    }
    if size > known {
        // SAFETY: the caller's struct is `size` bytes, per the contract.
        let tail = unsafe { std::slice::from_raw_parts(ptr.add(known), size - known) };
        if let Some(i) = tail.iter().position(|&b| b != 0) {
            return Err(FfiError::invalid(format!(
                "{what} sets a field this libclip ({}) does not know (byte {} of {size}; this \
                 version's struct is {known} bytes): use the libclip of the clip.h the program \
                 was built with",
                env!("CARGO_PKG_VERSION"),
                known + i
            )));
        }
    }
    Ok(())
}

/// Reads the options (NULL = defaults), checking `struct_size` and enums.
/// A `struct_size` of an older layout (the first, `ClipModelOptionsV1`, or
/// the second, up to `precision`, from an older `clip.h`) reads that much
/// and gives the later fields their defaults.
///
/// # Safety
/// `ptr` is NULL or points to a `clip_model_options` of `struct_size` bytes.
unsafe fn read_options(ptr: *const ClipModelOptions) -> FfiResult<LoadOptions> {
    let opts = if ptr.is_null() {
        ClipModelOptions::default()
    } else {
        // SAFETY: non-null; `struct_size` is the first field of every version.
        let size = unsafe { ptr.cast::<usize>().read_unaligned() };
        let now = std::mem::size_of::<ClipModelOptions>();
        let v1 = std::mem::size_of::<ClipModelOptionsV1>();
        if size >= now {
            // SAFETY: the caller's struct is `size` bytes.
            unsafe { check_newer_fields(ptr.cast(), size, now, "options") }?;
            // SAFETY: the struct is at least as large as this version's.
            unsafe { ptr.read() }
        } else if size >= v1 {
            // SAFETY: the struct is at least as large as the first version,
            // whose layout is a prefix of this one's (same alignment).
            let o = unsafe { ptr.cast::<ClipModelOptionsV1>().read() };
            // The second version appended `precision`; the limits came after.
            let precision = if size >= V2_SIZE {
                // SAFETY: the struct is at least `V2_SIZE` bytes, and
                // `precision` lies before that (no reference is made to the
                // whole struct, which is shorter than this version's).
                unsafe { std::ptr::addr_of!((*ptr).precision).read() }
            } else {
                CLIP_PRECISION_FULL
            };
            ClipModelOptions {
                struct_size: o.struct_size,
                num_threads: o.num_threads,
                alpha_policy: o.alpha_policy,
                log_fn: o.log_fn,
                log_user_data: o.log_user_data,
                precision,
                ..ClipModelOptions::default()
            }
        } else {
            return Err(FfiError::invalid(format!(
                "options->struct_size is {size}, expected sizeof(clip_model_options) = {now} \
                 (or {V2_SIZE} or {v1} from an older clip.h, without the image limits or \
                 the precision field); initialise the options with clip_model_options_init()"
            )));
        }
    };
    let alpha = match opts.alpha_policy {
        0 => AlphaPolicy::CompositeOnWhite,
        1 => AlphaPolicy::Drop,
        a => {
            return Err(FfiError::invalid(format!(
                "options->alpha_policy {a} is not a clip_alpha_policy"
            )))
        }
    };
    let precision = match opts.precision {
        CLIP_PRECISION_FULL => Precision::Full,
        CLIP_PRECISION_INT8 => Precision::Int8,
        p => {
            return Err(FfiError::invalid(format!(
                "options->precision {p} is not a clip_precision \
                 (CLIP_PRECISION_FULL = {CLIP_PRECISION_FULL}, \
                 CLIP_PRECISION_INT8 = {CLIP_PRECISION_INT8})"
            )))
        }
    };
    if opts.num_threads > 4096 {
        return Err(FfiError::invalid(format!(
            "options->num_threads {} is too many",
            opts.num_threads
        )));
    }
    let defaults = ImageLimits::default();
    let or = |v: u32, default: u32| if v == 0 { default } else { v };
    let limits = ImageLimits {
        max_width: or(opts.max_image_width, defaults.max_width),
        max_height: or(opts.max_image_height, defaults.max_height),
        max_alloc_bytes: match opts.max_image_bytes {
            0 => defaults.max_alloc_bytes,
            b => b,
        },
    };
    Ok(LoadOptions { raw: opts, alpha, precision, limits })
}

fn finish(
    model: CLIPModel,
    mut processor: CLIPProcessor,
    opts: &LoadOptions,
    source: &str,
) -> FfiResult<ClipModel> {
    processor.image_processor.alpha = opts.alpha;
    processor.image_processor.limits = opts.limits;
    let mut pipeline =
        Pipeline::new(model, processor).with_threads(opts.raw.num_threads as usize)?;
    // A quantized checkpoint loads at int8; FULL, the default, leaves it so.
    let quantized = pipeline.model().weights_summary().dtypes.contains_key("I8");
    if !(quantized && opts.precision == Precision::Full) {
        pipeline.set_precision(opts.precision);
    }
    let m = ClipModel {
        pipeline,
        log: Logger { f: opts.raw.log_fn, user_data: opts.raw.log_user_data },
    };
    let size = m.pipeline.processor().image_processor.output_size();
    let precision = match m.pipeline.model().precision() {
        Precision::Int8 => {
            let dot = Precision::int8_dot().map_or("scalar", |d| d.name());
            format!("int8 precision ({dot} products)")
        }
        Precision::Full => "full precision".to_string(),
    };
    m.log(
        LogLevel::Info,
        &format!(
            "loaded {source}: embedding dim {}, image size {}, context length {}, {} threads, {precision}",
            m.dim(),
            size.map_or_else(|| "variable".to_string(), |(h, w)| format!("{h}x{w}")),
            m.pipeline.context_length(),
            m.pipeline.num_threads()
        ),
    );
    Ok(m)
}

/// Logs a load failure through the options' callback (there is no model yet).
fn log_failure(opts: Option<&ClipModelOptions>, message: &str) {
    if let Some(o) = opts {
        let m = Logger { f: o.log_fn, user_data: o.log_user_data };
        if let Some(f) = m.f {
            let c = CString::new(message.replace('\0', "?")).unwrap_or_default();
            // SAFETY: the caller's callback and user data; the message outlives the call.
            unsafe { f(m.user_data, LogLevel::Error as i32, c.as_ptr()) };
        }
    }
}

/// `clip_model_options_init`
///
/// # Safety
/// `options` is NULL or points to a writable `clip_model_options`.
#[no_mangle]
pub unsafe extern "C" fn clip_model_options_init(options: *mut ClipModelOptions) -> ClipStatus {
    guard(|| {
        if options.is_null() {
            return Err(FfiError::null("options"));
        }
        // SAFETY: non-null and writable per the contract.
        unsafe { options.write(ClipModelOptions::default()) };
        Ok(())
    })
}

/// `clip_model_load`
///
/// # Safety
/// `model_dir` is NULL or a NUL-terminated string; `options` NULL or valid;
/// `out_model` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clip_model_load(
    model_dir: *const c_char,
    options: *const ClipModelOptions,
    out_model: *mut *mut ClipModel,
) -> ClipStatus {
    let load = |opts: &LoadOptions| {
        // SAFETY: per the contract.
        let dir = unsafe { path_arg(model_dir, "model_dir") }?;
        let model = CLIPModel::from_pretrained(&dir)?;
        let processor = CLIPProcessor::from_dir(&dir)?;
        finish(model, processor, opts, &format!("model directory {}", dir.display()))
    };
    // SAFETY: forwarded contract.
    guard(|| unsafe { load_into(out_model, options, load) })
}

/// What both loaders share: `*out_model` set to NULL first, the options
/// read, then the model `load` makes (from the options) boxed into
/// `*out_model`, or its error logged through the options' callback and
/// returned.
///
/// # Safety
/// `out_model` is NULL or writable; `options` NULL or valid.
unsafe fn load_into(
    out_model: *mut *mut ClipModel,
    options: *const ClipModelOptions,
    load: impl FnOnce(&LoadOptions) -> FfiResult<ClipModel>,
) -> FfiResult<()> {
    if out_model.is_null() {
        return Err(FfiError::null("out_model"));
    }
    // SAFETY: non-null and writable per the contract.
    unsafe { out_model.write(std::ptr::null_mut()) };
    // SAFETY: per the contract.
    let opts = unsafe { read_options(options) }?;
    match load(&opts) {
        Ok(m) => {
            // SAFETY: checked non-null above.
            unsafe { out_model.write(Box::into_raw(Box::new(m))) };
            Ok(())
        }
        Err(e) => {
            log_failure(Some(&opts.raw), &e.message);
            Err(e)
        }
    }
}

/// A UTF-8 text buffer of a `clip_model_buffers` (optional unless `required`).
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes.
unsafe fn buf<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
    required: bool,
) -> FfiResult<Option<&'a [u8]>> {
    if ptr.is_null() && len == 0 && !required {
        return Ok(None);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: forwarded contract.
    let s = unsafe { slice_arg(ptr.cast::<u8>(), len, what) }?;
    if s.is_empty() {
        return Err(FfiError::invalid(format!("{what} is empty")));
    }
    Ok(Some(s))
}

fn utf8<'a>(b: &'a [u8], what: &str) -> FfiResult<&'a str> {
    std::str::from_utf8(b).map_err(|e| {
        FfiError::new(ClipStatus::InvalidUtf8, format!("{what} is not valid UTF-8: {e}"))
    })
}

/// `clip_model_load_from_memory`
///
/// # Safety
/// `buffers` is NULL or a valid `clip_model_buffers` whose pointers address
/// their stated lengths; `options` and `out_model` as in `clip_model_load`.
#[no_mangle]
pub unsafe extern "C" fn clip_model_load_from_memory(
    buffers: *const ClipModelBuffers,
    options: *const ClipModelOptions,
    out_model: *mut *mut ClipModel,
) -> ClipStatus {
    let load = |opts: &LoadOptions| {
        if buffers.is_null() {
            return Err(FfiError::null("buffers"));
        }
        // SAFETY: non-null; `struct_size` is the first field.
        let size = unsafe { buffers.cast::<usize>().read_unaligned() };
        let known = std::mem::size_of::<ClipModelBuffers>();
        if size < known {
            return Err(FfiError::invalid(format!(
                "buffers->struct_size is {size}, expected sizeof(clip_model_buffers) = {known}"
            )));
        }
        // SAFETY: the caller's struct is `size` bytes.
        unsafe { check_newer_fields(buffers.cast(), size, known, "buffers") }?;
        // SAFETY: non-null and large enough.
        let b = unsafe { buffers.read() };
        let field = |ptr: *const c_char, len: usize, what: &str, required: bool| {
            // SAFETY: each pointer of `b` addresses its length per the contract.
            unsafe { buf(ptr, len, what, required) }
        };
        let config = field(b.config_json, b.config_json_len, "buffers->config_json", true)?
            .unwrap_or_default();
        let weights =
            field(b.weights.cast(), b.weights_len, "buffers->weights", true)?.unwrap_or_default();
        let tokenizer_json =
            field(b.tokenizer_json, b.tokenizer_json_len, "buffers->tokenizer_json", false)?;
        let vocab = field(b.vocab_json, b.vocab_json_len, "buffers->vocab_json", false)?;
        let merges = field(b.merges_txt, b.merges_txt_len, "buffers->merges_txt", false)?;
        let pre = field(
            b.preprocessor_config_json,
            b.preprocessor_config_json_len,
            "buffers->preprocessor_config_json",
            false,
        )?;

        let config = match ModelConfig::from_json(utf8(config, "buffers->config_json")?)? {
            ModelConfig::Clip(c) => c,
            _ => {
                return Err(FfiError::invalid(
                    "buffers->config_json describes a single tower, not a CLIPModel",
                ))
            }
        };
        let mut owned = Vec::new();
        owned.try_reserve_exact(weights.len()).map_err(|_| FfiError::oom("the weights copy"))?;
        owned.extend_from_slice(weights);
        let store = WeightStore::from_bytes("buffers->weights", owned)?;
        let model = CLIPModel::from_store(&config, &store)?;
        let tokenizer = match (tokenizer_json, vocab, merges) {
            (Some(t), None, None) => CLIPTokenizer::from_tokenizer_json(t)?,
            (None, Some(v), Some(m)) => CLIPTokenizer::from_vocab_merges(v, m)?,
            (None, None, None) => CLIPTokenizer::builtin()?,
            _ => {
                return Err(FfiError::invalid(
                    "give either tokenizer_json, or vocab_json and merges_txt, or none of them",
                ))
            }
        };
        let image_config = match pre {
            Some(p) => ImageProcessorConfig::from_json(p)?,
            None => ImageProcessorConfig::default(),
        };
        let image_processor = CLIPImageProcessor::new(image_config);
        image_processor.validate()?;
        finish(model, CLIPProcessor { tokenizer, image_processor }, opts, "model buffers")
    };
    // SAFETY: forwarded contract.
    guard(|| unsafe { load_into(out_model, options, load) })
}

/// `clip_model_free`
///
/// # Safety
/// `model` is NULL or a handle from `clip_model_load*` not yet freed, and no
/// other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn clip_model_free(model: *mut ClipModel) {
    let _ = guard(|| {
        if !model.is_null() {
            // SAFETY: a live handle from Box::into_raw, freed once per the contract.
            drop(unsafe { Box::from_raw(model) });
        }
        Ok(())
    });
}

/// The caller's buffer for `n` embeddings of `m` (`[n, dim]` floats),
/// checked (`count` names `n` in the overflow message, e.g. "n_images").
///
/// # Safety
/// `out` is NULL or addresses `out_len` writable floats.
pub unsafe fn embeddings_out<'a>(
    m: &ClipModel,
    out: *mut f32,
    out_len: usize,
    n: usize,
    count: &str,
) -> FfiResult<&'a mut [f32]> {
    let needed = mul(n, m.dim(), &format!("{count} x dim"))?;
    // SAFETY: forwarded contract.
    unsafe { out_arg(out, out_len, needed, "out") }
}

/// A model argument, checked for NULL.
///
/// # Safety
/// `model` is NULL or a live handle.
pub unsafe fn model_arg<'a>(model: *const ClipModel) -> FfiResult<&'a ClipModel> {
    // SAFETY: NULL or a live handle per the contract.
    unsafe { model.as_ref() }.ok_or_else(|| FfiError::null("model"))
}

/// A `size_t` query: the value, or 0 (with the last error set) for a NULL model.
///
/// # Safety
/// `model` is NULL or a live handle.
unsafe fn query(model: *const ClipModel, f: impl FnOnce(&ClipModel) -> usize) -> usize {
    guard_value(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_arg(model) }?;
        Ok(f(m))
    })
    .unwrap_or(0)
}

/// `clip_model_embedding_dim`
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn clip_model_embedding_dim(model: *const ClipModel) -> usize {
    // SAFETY: forwarded contract.
    unsafe { query(model, |m| m.dim()) }
}

/// `clip_model_context_length`
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn clip_model_context_length(model: *const ClipModel) -> usize {
    // SAFETY: forwarded contract.
    unsafe { query(model, |m| m.pipeline.context_length()) }
}

/// `clip_model_num_threads`
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn clip_model_num_threads(model: *const ClipModel) -> usize {
    // SAFETY: forwarded contract.
    unsafe { query(model, |m| m.pipeline.num_threads()) }
}

/// `clip_model_precision`: the `CLIP_PRECISION_*` value the model was loaded
/// with, or 0 (with the last error set) for a NULL model.
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn clip_model_precision(model: *const ClipModel) -> i32 {
    guard_value(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_arg(model) }?;
        Ok(precision_value(m.pipeline.model().precision()))
    })
    .unwrap_or(CLIP_PRECISION_FULL)
}

/// `clip_int8_supported`: 1 if this CPU runs `CLIP_PRECISION_INT8` with int8
/// arithmetic, else 0.
#[no_mangle]
pub extern "C" fn clip_int8_supported() -> c_int {
    guard_value(|| Ok(c_int::from(Precision::int8_supported()))).unwrap_or(0)
}

/// `clip_kernel_name`: the kernel this process computes with, as a static
/// NUL-terminated name; NULL (with the last error set) when `CLIP_KERNEL`
/// names a kernel that does not exist or that this CPU cannot run.
#[no_mangle]
pub extern "C" fn clip_kernel_name() -> *const c_char {
    guard_value(|| Ok(kernel_cname(clip::kernels::active_kernel()?))).unwrap_or(std::ptr::null())
}

/// `clip_int8_dot_name`: the instructions of the int8 products, as a static
/// NUL-terminated name; NULL (with the last error set) as
/// [`clip_kernel_name`].
#[no_mangle]
pub extern "C" fn clip_int8_dot_name() -> *const c_char {
    guard_value(|| {
        clip::kernels::active_kernel()?;
        let dot = Precision::int8_dot();
        let name: &'static CStr = match dot {
            None => c"none",
            Some(Int8Dot::Vnni) => c"vnni",
            Some(Int8Dot::Maddubs) => c"maddubs",
            Some(Int8Dot::I8mm) => c"i8mm",
            Some(Int8Dot::Sdot) => c"sdot",
            Some(Int8Dot::Smull) => c"smull",
            Some(Int8Dot::Scalar) => c"scalar",
            Some(_) => c"unknown",
        };
        debug_assert_eq!(name.to_str(), Ok(dot.map_or("none", |d| d.name())));
        Ok(name.as_ptr())
    })
    .unwrap_or(std::ptr::null())
}

/// The kernel's name as a static C string.
fn kernel_cname(kernel: Kernel) -> *const c_char {
    let name: &'static CStr = match kernel {
        Kernel::Avx512 => c"avx512",
        Kernel::Avx2 => c"avx2",
        Kernel::Neon => c"neon",
        Kernel::Gemm => c"gemm",
        _ => c"unknown",
    };
    debug_assert_eq!(name.to_str(), Ok(kernel.name()));
    name.as_ptr()
}

/// `clip_model_image_size`
///
/// # Safety
/// `model` NULL or live; `height`, `width` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clip_model_image_size(
    model: *const ClipModel,
    height: *mut usize,
    width: *mut usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_arg(model) }?;
        if height.is_null() {
            return Err(FfiError::null("height"));
        }
        if width.is_null() {
            return Err(FfiError::null("width"));
        }
        let vision = &m.pipeline.model().config().vision_config;
        let (h, w) = m
            .pipeline
            .processor()
            .image_processor
            .output_size()
            .unwrap_or((vision.image_size, vision.image_size));
        // SAFETY: both checked non-null, writable per the contract.
        unsafe {
            write_opt(height, h);
            write_opt(width, w);
        }
        Ok(())
    })
}

/// `clip_model_logit_scale`
///
/// # Safety
/// `model` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clip_model_logit_scale(
    model: *const ClipModel,
    out: *mut f32,
) -> ClipStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_arg(model) }?;
        // SAFETY: forwarded contract.
        let o = unsafe { out_arg(out, 1, 1, "out") }?;
        o[0] = m.pipeline.model().logit_scale();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The offsets C gives `clip_model_options` (natural alignment; `p` is
    /// the size of a pointer and of `size_t`).
    #[test]
    fn options_layout_is_the_c_layout() {
        let p = size_of::<usize>();
        assert_eq!(offset_of!(ClipModelOptions, struct_size), 0);
        assert_eq!(offset_of!(ClipModelOptions, num_threads), p);
        assert_eq!(offset_of!(ClipModelOptions, alpha_policy), p + 4);
        assert_eq!(offset_of!(ClipModelOptions, log_fn), p + 8);
        assert_eq!(offset_of!(ClipModelOptions, log_user_data), 2 * p + 8);
        assert_eq!(offset_of!(ClipModelOptions, precision), 3 * p + 8);
        let limits = (3 * p + 12).next_multiple_of(8);
        assert_eq!(offset_of!(ClipModelOptions, max_image_bytes), limits);
        assert_eq!(offset_of!(ClipModelOptions, max_image_width), limits + 8);
        assert_eq!(offset_of!(ClipModelOptions, max_image_height), limits + 12);
        assert_eq!(size_of::<ClipModelOptions>(), limits + 16);
        assert_eq!(size_of::<ClipModelOptionsV1>(), 3 * p + 8);
        assert_eq!(V2_SIZE, limits);
    }

    /// The second layout (up to `precision`) keeps its precision and gets
    /// the default limits whatever lies beyond its `struct_size`.
    #[test]
    fn the_second_layout_loads_with_default_limits() {
        let mut o = ClipModelOptions {
            struct_size: V2_SIZE,
            precision: CLIP_PRECISION_INT8,
            max_image_bytes: 1,
            max_image_width: 1,
            max_image_height: 1,
            ..ClipModelOptions::default()
        };
        // SAFETY: points to a struct at least `struct_size` bytes long.
        let read = unsafe { read_options(&o) }.unwrap();
        assert_eq!(read.precision, Precision::Int8);
        assert_eq!(read.limits, ImageLimits::default());
        o.struct_size = size_of::<ClipModelOptions>();
        // SAFETY: as above.
        let read = unsafe { read_options(&o) }.unwrap();
        let one = ImageLimits { max_width: 1, max_height: 1, max_alloc_bytes: 1 };
        assert_eq!(read.limits, one);
    }

    #[test]
    fn the_first_layout_loads_with_full_precision() {
        let v1 = ClipModelOptionsV1 {
            struct_size: size_of::<ClipModelOptionsV1>(),
            num_threads: 3,
            alpha_policy: 1,
            log_fn: None,
            log_user_data: std::ptr::null_mut(),
        };
        // SAFETY: points to a first-layout struct of its struct_size.
        let o = unsafe { read_options((&v1 as *const ClipModelOptionsV1).cast()) }.unwrap();
        assert_eq!(o.precision, Precision::Full);
        assert_eq!(o.raw.precision, CLIP_PRECISION_FULL);
        assert_eq!(o.raw.num_threads, 3);
        assert_eq!(o.alpha, AlphaPolicy::Drop);
    }

    #[test]
    fn precision_is_read_and_checked() {
        let mut opts = ClipModelOptions { precision: CLIP_PRECISION_INT8, ..Default::default() };
        // SAFETY: a whole current-layout struct.
        let o = unsafe { read_options(&opts) }.unwrap();
        assert_eq!(o.precision, Precision::Int8);
        for bad in [2, 7, -1] {
            opts.precision = bad;
            // SAFETY: as above.
            let e = unsafe { read_options(&opts) }.err().unwrap();
            assert_eq!(e.status, ClipStatus::InvalidArgument);
            assert!(e.message.contains(&format!("options->precision {bad}")), "{}", e.message);
        }
        opts.struct_size = size_of::<ClipModelOptionsV1>() - 1;
        // SAFETY: as above (larger than it claims).
        let e = unsafe { read_options(&opts) }.err().unwrap();
        assert!(e.message.contains("struct_size"), "{}", e.message);
        // SAFETY: NULL means the defaults.
        let o = unsafe { read_options(std::ptr::null()) }.unwrap();
        assert_eq!(o.precision, Precision::Full);
    }

    /// A struct from a newer `clip.h` (fields appended) is taken while the
    /// fields this version does not know hold zero, refused otherwise, and a
    /// wild `struct_size` is refused without reading.
    #[test]
    fn newer_fields_must_be_zero() {
        #[repr(C)]
        struct Newer {
            opts: ClipModelOptions,
            appended: [u8; 16],
        }
        let mut newer = Newer {
            opts: ClipModelOptions { num_threads: 2, ..Default::default() },
            appended: [0; 16],
        };
        newer.opts.struct_size = size_of::<Newer>();
        let ptr = |n: &Newer| (n as *const Newer).cast::<ClipModelOptions>();
        // SAFETY: points to `struct_size` bytes.
        let o = unsafe { read_options(ptr(&newer)) }.unwrap();
        assert_eq!(o.raw.num_threads, 2);
        newer.appended[5] = 1;
        // SAFETY: as above.
        let e = unsafe { read_options(ptr(&newer)) }.err().unwrap();
        assert_eq!(e.status, ClipStatus::InvalidArgument);
        let at = size_of::<ClipModelOptions>() + 5;
        assert!(e.message.contains(&format!("does not know (byte {at} of")), "{}", e.message);
        newer.opts.struct_size = 1 << 40;
        // SAFETY: a size this large is refused before any byte past the first field is read.
        let e = unsafe { read_options(ptr(&newer)) }.err().unwrap();
        assert!(e.message.contains("uninitialised"), "{}", e.message);
    }
}
