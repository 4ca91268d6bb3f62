//! Checked conversion of C arguments: pointers, strings, arrays and output
//! buffers. Every function here turns a caller mistake into an `FfiError`.

use crate::status::{ClipStatus, FfiError, FfiResult};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// A NUL-terminated string, checked for NULL and UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        FfiError::new(
            ClipStatus::InvalidUtf8,
            format!("{what} is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// A file path: any bytes on Unix (paths need not be UTF-8), UTF-8 elsewhere.
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn path_arg(ptr: *const c_char, what: &str) -> FfiResult<PathBuf> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: non-null and NUL-terminated per the caller's contract.
        let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded contract.
        Ok(PathBuf::from(unsafe { str_arg(ptr, what) }?))
    }
}

/// An input array of `n` elements; NULL is accepted only when `n == 0`.
///
/// # Safety
/// `ptr` is NULL or points to `n` initialised elements that outlive `'a`.
pub unsafe fn slice_arg<'a, T>(ptr: *const T, n: usize, what: &str) -> FfiResult<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    match n.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => {}
        _ => return Err(FfiError::invalid(format!("{what}: {n} elements is too many"))),
    }
    // SAFETY: non-null, `n` elements per the caller's contract, size checked above.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// `n` strings, each checked for NULL and UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to `n` pointers, each NULL or to a NUL-terminated string.
pub unsafe fn strs_arg<'a>(
    ptr: *const *const c_char,
    n: usize,
    what: &str,
) -> FfiResult<Vec<&'a str>> {
    // SAFETY: forwarded contract.
    let ptrs = unsafe { slice_arg(ptr, n, what) }?;
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| FfiError::oom(what))?;
    for (i, &p) in ptrs.iter().enumerate() {
        // SAFETY: forwarded contract.
        out.push(unsafe { str_arg(p, &format!("{what}[{i}]")) }?);
    }
    Ok(out)
}

/// `n` paths (see [`path_arg`]).
///
/// # Safety
/// As [`strs_arg`].
pub unsafe fn paths_arg(
    ptr: *const *const c_char,
    n: usize,
    what: &str,
) -> FfiResult<Vec<PathBuf>> {
    // SAFETY: forwarded contract.
    let ptrs = unsafe { slice_arg(ptr, n, what) }?;
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| FfiError::oom(what))?;
    for (i, &p) in ptrs.iter().enumerate() {
        // SAFETY: forwarded contract.
        out.push(unsafe { path_arg(p, &format!("{what}[{i}]")) }?);
    }
    Ok(out)
}

/// `a * b`, or an `InvalidArgument` error on overflow.
pub fn mul(a: usize, b: usize, what: &str) -> FfiResult<usize> {
    a.checked_mul(b).ok_or_else(|| FfiError::invalid(format!("{what}: {a} x {b} overflows")))
}

/// A caller-provided output buffer of `len` elements, of which `needed` are
/// written: checked for NULL (allowed only when `needed == 0`) and length.
///
/// # Safety
/// `ptr` is NULL or points to `len` writable elements that outlive `'a` and
/// alias no other argument.
pub unsafe fn out_arg<'a, T>(
    ptr: *mut T,
    len: usize,
    needed: usize,
    what: &str,
) -> FfiResult<&'a mut [T]> {
    if needed == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len < needed {
        return Err(FfiError::too_small(what, needed, len));
    }
    // SAFETY: non-null, at least `needed` writable elements per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, needed) })
}

/// Writes `value` through an out-pointer, if it is not NULL.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub unsafe fn write_opt<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-null and writable per the caller's contract.
        unsafe { ptr.write(value) };
    }
}
