//! C ABI of the clip runtime: `libclip.so` / `libclip.a` and
//! `include/clip.h`. See `docs/c-api.md`.
//!
//! Module map: [`status`] (status codes, last error, panic boundary),
//! [`args`] (checked pointers, strings and buffers), [`model`] (the handle,
//! loading, options, queries), [`text`], [`image`], [`zero_shot`].
//!
//! Every exported function runs behind [`status::guard`]: no panic crosses
//! the boundary, nothing is printed, and failures give a status plus a
//! thread-local message (`clip_last_error`).

#![allow(clippy::missing_safety_doc)] // each function's safety contract is in include/clip.h
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod args;
pub mod image;
pub mod model;
pub mod status;
pub mod text;
pub mod zero_shot;

use status::ClipStatus;
use std::ffi::{c_char, CStr};

/// The library version, `CLIP_VERSION_STRING` of the header it was built with.
pub const VERSION: &CStr = c"0.2.0";

/// `clip_version`
#[no_mangle]
pub extern "C" fn clip_version() -> *const c_char {
    VERSION.as_ptr()
}

/// `clip_last_error`
#[no_mangle]
pub extern "C" fn clip_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// `clip_status_name`: takes an `int` so that any value is safe to pass.
#[no_mangle]
pub extern "C" fn clip_status_name(status: i32) -> *const c_char {
    usize::try_from(status)
        .ok()
        .and_then(|i| ClipStatus::ALL.get(i))
        .map_or(c"CLIP_ERR_UNKNOWN".as_ptr(), |s| s.name().as_ptr())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_matches_the_crate() {
        assert_eq!(super::VERSION.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
