//! The `MprAdmin*` calls, with the Win32 structures they fill.

use super::events::event;
use super::handles::HandleTable;
use super::memory::{fill_wide, free, from_c_wide_string, to_c_array, to_c_wide_string};
use crate::{Connect, InterfaceInfo, Server};
use ddm_proto::WinError;
use std::ffi::c_void;
use std::sync::Arc;

static SERVERS: HandleTable<Server> = HandleTable::new(2);

/// `MAX_INTERFACE_NAME_LEN`.
const MAX_INTERFACE_NAME_LEN: usize = 256;

/// `MPR_SERVER_0`, laid out as on Windows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MprServer0 {
    pub lan_only_mode: i32,
    pub up_time: u32,
    pub total_ports: u32,
    pub ports_in_use: u32,
}

/// `MPR_INTERFACE_0`, laid out as on Windows x64 with 16-bit WCHAR.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MprInterface0 {
    pub name: [u16; MAX_INTERFACE_NAME_LEN + 1],
    pub interface: *mut c_void,
    pub enabled: i32,
    pub if_type: u32,
    pub connection_state: u32,
    pub unreachability_reasons: u32,
    pub last_error: u32,
}

impl From<&InterfaceInfo> for MprInterface0 {
    fn from(i: &InterfaceInfo) -> Self {
        MprInterface0 {
            name: fill_wide(&i.name),
            interface: i.handle as usize as *mut c_void,
            enabled: i32::from(i.enabled),
            if_type: i.if_type,
            connection_state: i.state as u32,
            unreachability_reasons: i.unreachability_reasons,
            last_error: i.last_error,
        }
    }
}

/// Runs a call that returns a Win32 error number.
fn status(result: Result<(), WinError>) -> u32 {
    result.err().unwrap_or(WinError::NO_ERROR).0
}

fn server(handle: *const c_void) -> Result<Arc<Server>, WinError> {
    SERVERS.get(handle).ok_or(WinError::RPC_S_INVALID_BINDING)
}

/// The server of a level-0 call that fills `*buffer`, after the checks
/// every such call makes.
fn getter(
    handle: *const c_void,
    level: u32,
    buffer: *mut *mut u8,
) -> Result<Arc<Server>, WinError> {
    let server = server(handle)?;
    if level != 0 {
        return Err(WinError::ERROR_NOT_SUPPORTED);
    }
    if buffer.is_null() {
        return Err(WinError::ERROR_INVALID_PARAMETER);
    }
    Ok(server)
}

/// Writes through an out-pointer the caller must supply.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), WinError> {
    if out.is_null() {
        return Err(WinError::ERROR_INVALID_PARAMETER);
    }
    out.write(value);
    Ok(())
}

/// `MprAdminServerConnect`. NULL or an empty name is the local service
/// (its socket: `DDM_SOCKET`, else the default); a remote name gives
/// ERROR_NOT_SUPPORTED until remote access exists.
///
/// # Safety
/// `server_name` is NULL or a NUL-terminated UTF-16 string; `out` is NULL
/// or valid for writing a handle.
#[no_mangle]
pub unsafe extern "C" fn MprAdminServerConnect(
    server_name: *const u16,
    out: *mut *mut c_void,
) -> u32 {
    if out.is_null() {
        return WinError::RPC_S_INVALID_BINDING.0;
    }
    let name = from_c_wide_string(server_name).filter(|n| !n.is_empty());
    status(Server::connect(name.as_deref()).map(|s| out.write(SERVERS.insert(s))))
}

/// `MprAdminServerDisconnect`: drops every registration made through it.
#[no_mangle]
pub extern "C" fn MprAdminServerDisconnect(handle: *mut c_void) {
    SERVERS.remove(handle);
}

/// `MprAdminIsServiceRunning`.
///
/// # Safety
/// `server_name` is NULL or a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "C" fn MprAdminIsServiceRunning(server_name: *const u16) -> i32 {
    let name = from_c_wide_string(server_name).filter(|n| !n.is_empty());
    i32::from(crate::is_service_running(name.as_deref()))
}

/// `MprAdminServerGetInfo`, level 0: a malloc'd `MPR_SERVER_0`.
///
/// # Safety
/// `buffer` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn MprAdminServerGetInfo(
    handle: *mut c_void,
    level: u32,
    buffer: *mut *mut u8,
) -> u32 {
    status((|| {
        let server = getter(handle, level, buffer)?;
        let info = server.server_info()?;
        let info = MprServer0 {
            lan_only_mode: i32::from(info.lan_only_mode),
            up_time: info.up_time.as_secs() as u32,
            total_ports: info.total_ports,
            ports_in_use: info.ports_in_use,
        };
        put(buffer, to_c_array(&[info]).cast())
    })())
}

/// `MprAdminInterfaceEnum`, level 0. `pref_max_len` is in bytes;
/// `(DWORD)-1` asks for everything. When more remain the result is
/// ERROR_MORE_DATA and `*resume` continues the enumeration.
///
/// # Safety
/// Every pointer is NULL or valid for writing its type; `resume`, when not
/// NULL, is also read.
#[no_mangle]
pub unsafe extern "C" fn MprAdminInterfaceEnum(
    handle: *mut c_void,
    level: u32,
    buffer: *mut *mut u8,
    pref_max_len: u32,
    entries_read: *mut u32,
    total_entries: *mut u32,
    resume: *mut u32,
) -> u32 {
    let server = match getter(handle, level, buffer) {
        Ok(server) => server,
        Err(e) => return e.0,
    };
    if entries_read.is_null() || total_entries.is_null() {
        return WinError::ERROR_INVALID_PARAMETER.0;
    }
    let start = if resume.is_null() { 0 } else { resume.read() };
    let page = if pref_max_len == u32::MAX {
        server.interfaces().map(|all| (all.len() as u32, all, None))
    } else {
        let fit = (pref_max_len as usize / std::mem::size_of::<MprInterface0>()).max(1);
        server
            .interface_enum(fit as u32, start)
            .map(|page| (page.total_entries, page.interfaces, page.resume_handle))
    };
    let (total, interfaces, next) = match page {
        Ok(page) => page,
        Err(e) => return e.0,
    };
    let entries: Vec<MprInterface0> = interfaces.iter().map(MprInterface0::from).collect();
    buffer.write(to_c_array(&entries).cast());
    entries_read.write(entries.len() as u32);
    total_entries.write(total);
    if !resume.is_null() {
        resume.write(next.unwrap_or(0));
    }
    match next {
        Some(_) => WinError::ERROR_MORE_DATA.0,
        None => WinError::NO_ERROR.0,
    }
}

/// `MprAdminInterfaceGetInfo`, level 0, by the `hInterface` that
/// `MprAdminInterfaceEnum` returned.
///
/// # Safety
/// `buffer` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn MprAdminInterfaceGetInfo(
    handle: *mut c_void,
    interface: *mut c_void,
    level: u32,
    buffer: *mut *mut u8,
) -> u32 {
    status((|| {
        let server = getter(handle, level, buffer)?;
        let info = server.interface(interface_handle(interface)?)?;
        put(buffer, to_c_array(&[MprInterface0::from(&info)]).cast())
    })())
}

/// `MprAdminInterfaceGetHandle`. `include_client_interfaces` changes
/// nothing: ddm has no dial-in client interfaces.
///
/// # Safety
/// `name` is NULL or a NUL-terminated UTF-16 string; `interface` is NULL or
/// valid for writing a HANDLE.
#[no_mangle]
pub unsafe extern "C" fn MprAdminInterfaceGetHandle(
    handle: *mut c_void,
    name: *const u16,
    interface: *mut *mut c_void,
    _include_client_interfaces: i32,
) -> u32 {
    status((|| {
        let server = server(handle)?;
        // SAFETY: a non-NULL name is a NUL-terminated UTF-16 string.
        let name = unsafe { from_c_wide_string(name) };
        let (Some(name), false) = (name, interface.is_null()) else {
            return Err(WinError::RPC_X_NULL_REF_POINTER);
        };
        let found = server.interface_handle(&name)?;
        // SAFETY: checked non-NULL; the caller passes a writable HANDLE.
        unsafe { interface.write(found as usize as *mut c_void) };
        Ok(())
    })())
}

/// The interface handle behind a C HANDLE (the handle number itself).
fn interface_handle(interface: *mut c_void) -> Result<u32, WinError> {
    u32::try_from(interface as usize).map_err(|_| WinError::ERROR_INVALID_HANDLE)
}

/// `MprAdminInterfaceConnect`. With `event`: PENDING, and the event is set
/// when the attempt completes, either way. Without, synchronous: the
/// attempt's own result. Without, not synchronous: PENDING. NO_ERROR when
/// already connected.
#[no_mangle]
pub extern "C" fn MprAdminInterfaceConnect(
    handle: *mut c_void,
    interface: *mut c_void,
    event_handle: *mut c_void,
    synchronous: i32,
) -> u32 {
    let started = server(handle).and_then(|server| {
        let interface = interface_handle(interface)?;
        if event_handle.is_null() {
            if synchronous != 0 {
                return server
                    .interface_connect_wait(interface)
                    .map(|()| Connect::Connected);
            }
            return server.interface_connect(interface);
        }
        let event = event(event_handle).ok_or(WinError::ERROR_INVALID_PARAMETER)?;
        server.interface_connect_signaling(interface, &event)
    });
    match started {
        Ok(Connect::Connected) => WinError::NO_ERROR.0,
        Ok(Connect::Pending) => WinError::PENDING.0,
        Err(e) => e.0,
    }
}

/// `MprAdminInterfaceDisconnect`.
#[no_mangle]
pub extern "C" fn MprAdminInterfaceDisconnect(handle: *mut c_void, interface: *mut c_void) -> u32 {
    status(
        server(handle).and_then(|server| server.interface_disconnect(interface_handle(interface)?)),
    )
}

/// `MprAdminInterfaceSetInfo`, level 0: `fEnabled` of the MPR_INTERFACE_0
/// at `buffer` is applied; its other fields are not settable.
///
/// # Safety
/// `buffer` is NULL or points to an MPR_INTERFACE_0.
#[no_mangle]
pub unsafe extern "C" fn MprAdminInterfaceSetInfo(
    handle: *mut c_void,
    interface: *mut c_void,
    level: u32,
    buffer: *const u8,
) -> u32 {
    status((|| {
        let server = server(handle)?;
        if level != 0 {
            return Err(WinError::ERROR_NOT_SUPPORTED);
        }
        if buffer.is_null() {
            return Err(WinError::ERROR_INVALID_PARAMETER);
        }
        // SAFETY: a non-NULL buffer points to an MPR_INTERFACE_0, which may
        // not be aligned.
        let info = unsafe { buffer.cast::<MprInterface0>().read_unaligned() };
        server.interface_set_enabled(interface_handle(interface)?, info.enabled != 0)
    })())
}

/// Runs a registration call on a server handle and an event handle; an
/// event handle that is NULL, closed or forged is ERROR_INVALID_PARAMETER.
fn with_event(
    handle: *mut c_void,
    event_handle: *mut c_void,
    call: impl FnOnce(&Server, &crate::Event) -> Result<(), WinError>,
) -> u32 {
    status(server(handle).and_then(|server| {
        let event = event(event_handle).ok_or(WinError::ERROR_INVALID_PARAMETER)?;
        call(&server, &event)
    }))
}

/// `MprAdminRegisterConnectionNotification`.
#[no_mangle]
pub extern "C" fn MprAdminRegisterConnectionNotification(
    handle: *mut c_void,
    event_handle: *mut c_void,
) -> u32 {
    with_event(
        handle,
        event_handle,
        Server::register_connection_notification,
    )
}

/// `MprAdminDeregisterConnectionNotification`.
#[no_mangle]
pub extern "C" fn MprAdminDeregisterConnectionNotification(
    handle: *mut c_void,
    event_handle: *mut c_void,
) -> u32 {
    with_event(
        handle,
        event_handle,
        Server::deregister_connection_notification,
    )
}

/// `MprAdminBufferFree`.
///
/// # Safety
/// `buffer` is NULL or a buffer this library returned, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn MprAdminBufferFree(buffer: *mut c_void) -> u32 {
    free(buffer);
    WinError::NO_ERROR.0
}

/// `LocalFree`, for the strings `MprAdminGetErrorString` returns.
///
/// # Safety
/// `memory` is NULL or a string this library returned, not yet freed.
#[export_name = "ddm_LocalFree"]
pub unsafe extern "C" fn local_free(memory: *mut c_void) -> *mut c_void {
    free(memory);
    std::ptr::null_mut()
}

/// `MprAdminGetErrorString`: a malloc'd UTF-16 text, freed with
/// `LocalFree`; ERROR_MR_MID_NOT_FOUND for a number it does not know.
///
/// # Safety
/// `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn MprAdminGetErrorString(code: u32, out: *mut *mut u16) -> u32 {
    if out.is_null() {
        return WinError::ERROR_INVALID_PARAMETER.0;
    }
    status(
        WinError(code)
            .text()
            .map(|text| out.write(to_c_wide_string(text))),
    )
}

super::versioned!(
    "MprAdminServerConnect",
    "MprAdminServerDisconnect",
    "MprAdminIsServiceRunning",
    "MprAdminServerGetInfo",
    "MprAdminInterfaceEnum",
    "MprAdminInterfaceGetInfo",
    "MprAdminInterfaceGetHandle",
    "MprAdminInterfaceConnect",
    "MprAdminInterfaceDisconnect",
    "MprAdminInterfaceSetInfo",
    "MprAdminRegisterConnectionNotification",
    "MprAdminDeregisterConnectionNotification",
    "MprAdminBufferFree",
    "ddm_LocalFree",
    "MprAdminGetErrorString",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn structures_have_the_windows_x64_layout() {
        assert_eq!(size_of::<MprInterface0>(), 552);
        assert_eq!(offset_of!(MprInterface0, interface), 520);
        assert_eq!(offset_of!(MprInterface0, enabled), 528);
        assert_eq!(offset_of!(MprInterface0, last_error), 544);
        assert_eq!(size_of::<MprServer0>(), 16);
    }
}
