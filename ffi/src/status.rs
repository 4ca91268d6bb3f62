//! Status codes, the thread-local last-error message and the panic boundary
//! every exported function goes through.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// `clip_status`: the result of every fallible call. Values are stable ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClipStatus {
    /// `CLIP_OK`
    Ok = 0,
    /// `CLIP_ERR_NULL_ARGUMENT`: a required pointer was NULL.
    NullArgument = 1,
    /// `CLIP_ERR_INVALID_ARGUMENT`: a value is out of range or inconsistent.
    InvalidArgument = 2,
    /// `CLIP_ERR_INVALID_UTF8`: a string is not valid UTF-8.
    InvalidUtf8 = 3,
    /// `CLIP_ERR_IO`: a file could not be read.
    Io = 4,
    /// `CLIP_ERR_FORMAT`: a file or buffer is malformed.
    Format = 5,
    /// `CLIP_ERR_UNSUPPORTED`: well formed but not implemented.
    Unsupported = 6,
    /// `CLIP_ERR_LIMIT_EXCEEDED`: a configured limit was exceeded.
    LimitExceeded = 7,
    /// `CLIP_ERR_BUFFER_TOO_SMALL`: an output buffer is too short.
    BufferTooSmall = 8,
    /// `CLIP_ERR_OUT_OF_MEMORY`: an allocation failed.
    OutOfMemory = 9,
    /// `CLIP_ERR_INTERNAL`: a bug in the library (an invariant did not hold).
    Internal = 10,
    /// `CLIP_ERR_PANIC`: a panic was caught at the boundary (a bug).
    Panic = 11,
}

impl ClipStatus {
    /// The name of the C constant.
    pub fn name(self) -> &'static std::ffi::CStr {
        match self {
            ClipStatus::Ok => c"CLIP_OK",
            ClipStatus::NullArgument => c"CLIP_ERR_NULL_ARGUMENT",
            ClipStatus::InvalidArgument => c"CLIP_ERR_INVALID_ARGUMENT",
            ClipStatus::InvalidUtf8 => c"CLIP_ERR_INVALID_UTF8",
            ClipStatus::Io => c"CLIP_ERR_IO",
            ClipStatus::Format => c"CLIP_ERR_FORMAT",
            ClipStatus::Unsupported => c"CLIP_ERR_UNSUPPORTED",
            ClipStatus::LimitExceeded => c"CLIP_ERR_LIMIT_EXCEEDED",
            ClipStatus::BufferTooSmall => c"CLIP_ERR_BUFFER_TOO_SMALL",
            ClipStatus::OutOfMemory => c"CLIP_ERR_OUT_OF_MEMORY",
            ClipStatus::Internal => c"CLIP_ERR_INTERNAL",
            ClipStatus::Panic => c"CLIP_ERR_PANIC",
        }
    }

    /// Every status, in value order.
    pub const ALL: [ClipStatus; 12] = [
        ClipStatus::Ok,
        ClipStatus::NullArgument,
        ClipStatus::InvalidArgument,
        ClipStatus::InvalidUtf8,
        ClipStatus::Io,
        ClipStatus::Format,
        ClipStatus::Unsupported,
        ClipStatus::LimitExceeded,
        ClipStatus::BufferTooSmall,
        ClipStatus::OutOfMemory,
        ClipStatus::Internal,
        ClipStatus::Panic,
    ];
}

/// The status of a [`clip::ErrorKind`] (one-to-one).
pub fn status_of(kind: clip::ErrorKind) -> ClipStatus {
    use clip::ErrorKind as K;
    match kind {
        K::InvalidArgument => ClipStatus::InvalidArgument,
        K::Io => ClipStatus::Io,
        K::Format => ClipStatus::Format,
        K::Unsupported => ClipStatus::Unsupported,
        K::LimitExceeded => ClipStatus::LimitExceeded,
        K::Internal => ClipStatus::Internal,
        _ => ClipStatus::Internal,
    }
}

/// An error on its way to the C caller: a status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfiError {
    pub status: ClipStatus,
    pub message: String,
}

impl FfiError {
    pub fn new(status: ClipStatus, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into() }
    }

    pub fn null(what: &str) -> Self {
        Self::new(ClipStatus::NullArgument, format!("{what} is NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ClipStatus::InvalidArgument, message)
    }

    pub fn too_small(what: &str, needed: usize, got: usize) -> Self {
        Self::new(
            ClipStatus::BufferTooSmall,
            format!("{what} holds {got} elements, {needed} are needed"),
        )
    }

    pub fn oom(what: &str) -> Self {
        Self::new(ClipStatus::OutOfMemory, format!("out of memory allocating {what}"))
    }
}

impl From<clip::Error> for FfiError {
    fn from(e: clip::Error) -> Self {
        FfiError::new(status_of(e.kind()), e.to_string())
    }
}

pub type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Depth of libclip calls on this thread (for the panic hook).
    static IN_CALL: Cell<u32> = const { Cell::new(0) };
}

/// Records `message` as this thread's last error.
pub fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "?")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// This thread's last error message; valid until the next failing call on
/// this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Installs, once per process, a panic hook that keeps panics raised inside
/// libclip calls (on the calling thread or on a model's `clip-N` pool
/// threads) from printing to stderr; they become `CLIP_ERR_PANIC` and a
/// message. Panics elsewhere in the process go to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = IN_CALL.with(Cell::get) > 0
                || std::thread::current().name().is_some_and(|n| n.starts_with("clip-"));
            if !ours {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f` behind the panic boundary: errors and panics become a status
/// and this thread's last-error message.
pub fn guard(f: impl FnOnce() -> FfiResult<()>) -> ClipStatus {
    match guard_value(f) {
        Ok(()) => ClipStatus::Ok,
        Err(status) => status,
    }
}

/// Runs `f` behind the panic boundary, returning its value, or `Err(status)`
/// (with the last-error message set) on error or panic.
pub fn guard_value<T>(f: impl FnOnce() -> FfiResult<T>) -> Result<T, ClipStatus> {
    install_panic_hook();
    IN_CALL.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_CALL.with(|c| c.set(c.get() - 1));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            set_last_error(&e.message);
            Err(e.status)
        }
        Err(payload) => {
            set_last_error(&format!(
                "internal panic (a bug in libclip): {}",
                panic_message(&*payload)
            ));
            Err(ClipStatus::Panic)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: the pointer is this thread's live last-error string.
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_string()
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        let s = guard(|| panic!("boom {}", 42));
        assert_eq!(s, ClipStatus::Panic);
        assert!(last().contains("boom 42"), "{}", last());
    }

    #[test]
    fn errors_set_the_message_and_success_keeps_it() {
        assert_eq!(guard(|| Err(FfiError::null("texts"))), ClipStatus::NullArgument);
        assert_eq!(last(), "texts is NULL");
        assert_eq!(guard(|| Ok(())), ClipStatus::Ok);
        assert_eq!(last(), "texts is NULL");
    }

    #[test]
    fn every_error_kind_has_its_own_status() {
        use clip::ErrorKind as K;
        let kinds =
            [K::InvalidArgument, K::Io, K::Format, K::Unsupported, K::LimitExceeded, K::Internal];
        let mut seen: Vec<ClipStatus> = kinds.iter().map(|&k| status_of(k)).collect();
        seen.dedup();
        assert_eq!(seen.len(), kinds.len());
    }

    #[test]
    fn status_values_are_stable() {
        for (i, s) in ClipStatus::ALL.iter().enumerate() {
            assert_eq!(*s as i32, i as i32);
        }
    }
}
