//! Buffers handed to C: allocated with malloc, so `MprAdminBufferFree` and
//! `LocalFree` are `free`, and C tools (ASan, valgrind) see them as usual.

use std::ffi::c_void;

/// A malloc'd copy of `items`; NULL for none.
pub fn to_c_array<T: Copy>(items: &[T]) -> *mut T {
    if items.is_empty() {
        return std::ptr::null_mut();
    }
    let bytes = std::mem::size_of_val(items);
    // SAFETY: malloc of a non-zero size; checked for NULL before use, and
    // the copy stays within the `bytes` just allocated.
    unsafe {
        let buffer = libc::malloc(bytes).cast::<T>();
        if !buffer.is_null() {
            std::ptr::copy_nonoverlapping(items.as_ptr(), buffer, items.len());
        }
        buffer
    }
}

/// A malloc'd, NUL-terminated UTF-16 copy of `text`.
pub fn to_c_wide_string(text: &str) -> *mut u16 {
    let wide: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    to_c_array(&wide)
}

/// `text` as UTF-16 in a fixed array, cut to fit with its NUL.
pub fn fill_wide<const N: usize>(text: &str) -> [u16; N] {
    let mut out = [0u16; N];
    for (slot, unit) in out.iter_mut().take(N - 1).zip(text.encode_utf16()) {
        *slot = unit;
    }
    out
}

/// Reads a NUL-terminated UTF-16 string.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated UTF-16 string.
pub unsafe fn from_c_wide_string(text: *const u16) -> Option<String> {
    if text.is_null() {
        return None;
    }
    let mut len = 0;
    while *text.add(len) != 0 {
        len += 1;
    }
    Some(String::from_utf16_lossy(std::slice::from_raw_parts(
        text, len,
    )))
}

/// Frees a buffer this library returned.
///
/// # Safety
/// `buffer` is NULL or came from this library and was not freed yet.
pub unsafe fn free(buffer: *mut c_void) {
    libc::free(buffer)
}
