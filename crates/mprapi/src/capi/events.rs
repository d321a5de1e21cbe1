//! `CreateEventW`, `SetEvent`, `ResetEvent`, `WaitForSingleObject`,
//! `WaitForMultipleObjects`, `CloseHandle`, and `MprEventGetFd`.

use super::handles::HandleTable;
use super::set_last_error;
use crate::event::{wait_for_multiple, Event, MAXIMUM_WAIT_OBJECTS};
use ddm_proto::WinError;
use std::ffi::c_void;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

pub(super) static EVENTS: HandleTable<Event> = HandleTable::new(1);

const TRUE: i32 = 1;
const FALSE: i32 = 0;
const INFINITE: u32 = 0xFFFF_FFFF;
const WAIT_OBJECT_0: u32 = 0;
const WAIT_TIMEOUT: u32 = 258;
const WAIT_FAILED: u32 = 0xFFFF_FFFF;

/// The event behind a handle, or ERROR_INVALID_HANDLE as the last error.
pub(super) fn event(handle: *const c_void) -> Option<Arc<Event>> {
    let event = EVENTS.get(handle);
    if event.is_none() {
        set_last_error(WinError::ERROR_INVALID_HANDLE.0);
    }
    event
}

fn succeeded(done: bool) -> i32 {
    if done {
        TRUE
    } else {
        FALSE
    }
}

fn timeout(milliseconds: u32) -> Option<Duration> {
    (milliseconds != INFINITE).then(|| Duration::from_millis(milliseconds.into()))
}

/// `CreateEventW`. Only unnamed events exist: a name gives NULL with
/// ERROR_NOT_SUPPORTED.
#[export_name = "ddm_CreateEventW"]
pub extern "C" fn create_event(
    _attributes: *mut c_void,
    manual_reset: i32,
    initial_state: i32,
    name: *const u16,
) -> *mut c_void {
    if !name.is_null() {
        set_last_error(WinError::ERROR_NOT_SUPPORTED.0);
        return std::ptr::null_mut();
    }
    match Event::new(manual_reset != 0, initial_state != 0) {
        Ok(event) => {
            set_last_error(0);
            EVENTS.insert(event)
        }
        Err(_) => {
            set_last_error(WinError::ERROR_NOT_ENOUGH_MEMORY.0);
            std::ptr::null_mut()
        }
    }
}

#[export_name = "ddm_SetEvent"]
pub extern "C" fn set_event(handle: *mut c_void) -> i32 {
    succeeded(event(handle).map(|e| e.set()).is_some())
}

#[export_name = "ddm_ResetEvent"]
pub extern "C" fn reset_event(handle: *mut c_void) -> i32 {
    succeeded(event(handle).map(|e| e.reset()).is_some())
}

/// `CloseHandle`, for event handles. Server handles close with
/// `MprAdminServerDisconnect`.
#[export_name = "ddm_CloseHandle"]
pub extern "C" fn close_handle(handle: *mut c_void) -> i32 {
    let closed = EVENTS.remove(handle).is_some();
    if !closed {
        set_last_error(WinError::ERROR_INVALID_HANDLE.0);
    }
    succeeded(closed)
}

#[export_name = "ddm_WaitForSingleObject"]
pub extern "C" fn wait_for_single_object(handle: *mut c_void, milliseconds: u32) -> u32 {
    let handles = [handle.cast_const()];
    // SAFETY: one valid element.
    unsafe { wait_for_multiple_objects(1, handles.as_ptr(), FALSE, milliseconds) }
}

/// `WaitForMultipleObjects`.
///
/// # Safety
/// `handles` points to `count` handles (any values: invalid ones are
/// reported, not followed).
#[export_name = "ddm_WaitForMultipleObjects"]
pub unsafe extern "C" fn wait_for_multiple_objects(
    count: u32,
    handles: *const *const c_void,
    wait_all: i32,
    milliseconds: u32,
) -> u32 {
    if handles.is_null() || count == 0 || count as usize > MAXIMUM_WAIT_OBJECTS {
        set_last_error(WinError::ERROR_INVALID_PARAMETER.0);
        return WAIT_FAILED;
    }
    let handles = std::slice::from_raw_parts(handles, count as usize);
    let Some(events) = handles
        .iter()
        .map(|h| event(*h))
        .collect::<Option<Vec<Arc<Event>>>>()
    else {
        return WAIT_FAILED;
    };
    let borrowed: Vec<&Event> = events.iter().map(Arc::as_ref).collect();
    match wait_for_multiple(&borrowed, wait_all != 0, timeout(milliseconds)) {
        Ok(Some(index)) => WAIT_OBJECT_0 + index as u32,
        Ok(None) => WAIT_TIMEOUT,
        Err(error) => {
            set_last_error(error.0);
            WAIT_FAILED
        }
    }
}

/// The event's descriptor, readable while it is signaled; -1 for an
/// invalid handle. It stays the event's: do not close it.
#[no_mangle]
pub extern "C" fn MprEventGetFd(handle: *mut c_void) -> i32 {
    event(handle).map_or(-1, |e| e.as_raw_fd())
}

super::versioned!(
    "ddm_CreateEventW",
    "ddm_SetEvent",
    "ddm_ResetEvent",
    "ddm_CloseHandle",
    "ddm_WaitForSingleObject",
    "ddm_WaitForMultipleObjects",
    "MprEventGetFd",
);
