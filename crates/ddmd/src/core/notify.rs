//! Registered events, and how the service signals them.
//!
//! A registration has one of two targets. A local client hands the service
//! its event's eventfd (SCM_RIGHTS) when it registers. The service keeps
//! that descriptor per session and, when a connection event is committed,
//! adds 1 to it: the waiting thread wakes straight from the kernel, with no
//! hop through the client's I/O thread (a change's eventfds are written
//! together, see `signals`). The write can never block the
//! router: the descriptor is switched to non-blocking on receipt, and a
//! saturated counter (EAGAIN) is still a signaled event, which is all a
//! level-triggered event needs (coalescing, never loss). Over a transport
//! that carries no descriptors the target is the session itself: a Signal
//! frame naming the event goes into the session's outbox, where pending
//! signals coalesce as well.
//!
//! Dropping a registration closes the descriptor, or withdraws a signal
//! still queued for it, so nothing the service holds can signal it
//! afterwards (G2); dropping a session drops all of its registrations at
//! once (G3).

use crate::core::outbox::Outbox;
use crate::core::signals::{write_one, Signals};
use ddm_proto::WinError;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// Checks that a received descriptor is an eventfd and makes it
/// non-blocking; anything else is `ERROR_INVALID_PARAMETER`.
///
/// What the descriptor is, only its link in `/proc/self/fd` says (every
/// anonymous-inode file, eventfd or epoll or timerfd, stats alike). The
/// link is read relative to that directory, opened once, with no
/// allocation: this is most of what a Register costs the service.
pub fn accept_eventfd(fd: OwnedFd) -> Result<OwnedFd, WinError> {
    const EVENTFD: &[u8] = b"anon_inode:[eventfd]";
    let mut link = [0u8; EVENTFD.len() + 1];
    let read = descriptor_link(fd.as_raw_fd(), &mut link)
        .map_err(|_| WinError::ERROR_INVALID_PARAMETER)?;
    if &link[..read] != EVENTFD {
        return Err(WinError::ERROR_INVALID_PARAMETER);
    }
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(|_| WinError::ERROR_INVALID_PARAMETER)?;
    let flags = OFlag::from_bits_truncate(flags);
    if !flags.contains(OFlag::O_NONBLOCK) {
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
            .map_err(|_| WinError::ERROR_INVALID_PARAMETER)?;
    }
    Ok(fd)
}

/// `/proc/self/fd`, opened once for the process.
static DESCRIPTORS: OnceLock<std::io::Result<OwnedFd>> = OnceLock::new();

/// Opens `/proc/self/fd` for [`accept_eventfd`], if it is not open yet.
/// The service does it as it starts, so the descriptor is there from the
/// first (and counts as the service's, not as a registration's).
pub fn open_descriptor_directory() -> std::io::Result<BorrowedFd<'static>> {
    DESCRIPTORS
        .get_or_init(|| {
            nix::fcntl::open(
                "/proc/self/fd",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(std::io::Error::from)
        })
        .as_ref()
        .map(AsFd::as_fd)
        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
}

/// Reads the link of descriptor `fd` in `/proc/self/fd` into `into`; the
/// bytes read (a link longer than `into` fills it).
fn descriptor_link(fd: RawFd, into: &mut [u8]) -> std::io::Result<usize> {
    let directory = open_descriptor_directory()?;
    let name = decimal_name(fd);
    // SAFETY: a valid directory descriptor, a NUL-terminated name and a
    // buffer of the length given, all live for the call.
    let read = unsafe {
        libc::readlinkat(
            directory.as_raw_fd(),
            name.as_ptr().cast(),
            into.as_mut_ptr().cast(),
            into.len(),
        )
    };
    if read < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(read as usize)
}

/// `fd` in decimal, NUL-terminated, without allocating.
fn decimal_name(fd: RawFd) -> [u8; 12] {
    let mut digits = [0u8; 12];
    let mut value = fd.unsigned_abs();
    let mut at = 0;
    loop {
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        at += 1;
        if value == 0 {
            break;
        }
    }
    digits[..at].reverse();
    digits
}

/// What came with a message besides its bytes.
#[derive(Debug)]
pub enum Attachment {
    /// Nothing.
    None,
    /// The eventfd of a Register, checked and made non-blocking (see
    /// [`accept_eventfd`]).
    Eventfd(OwnedFd),
    /// A descriptor that is not an eventfd.
    NotAnEventfd,
    /// A descriptor was sent but the service could not take it: it is out
    /// of descriptors.
    Dropped,
    /// The transport carries no descriptors: a Register is signaled by a
    /// frame on the session.
    NotCarried,
}

impl Attachment {
    /// The target of the event the request came with: its eventfd, or the
    /// session when the transport carries no descriptors.
    pub fn into_target(self) -> Result<Target, WinError> {
        match self {
            Attachment::Eventfd(fd) => Ok(Target::Eventfd(fd)),
            Attachment::NotCarried => Ok(Target::Session),
            Attachment::Dropped => Err(WinError::ERROR_NOT_ENOUGH_QUOTA),
            Attachment::None | Attachment::NotAnEventfd => Err(WinError::ERROR_INVALID_PARAMETER),
        }
    }
}

/// Where a registration's signal goes.
#[derive(Debug)]
pub enum Target {
    /// The client's eventfd, written by the service.
    Eventfd(OwnedFd),
    /// A Signal frame on the session.
    Session,
}

/// One session's registrations, keyed by the client's name for the event.
#[derive(Debug, Default)]
pub struct Registrations {
    events: HashMap<u64, Target>,
}

impl Registrations {
    /// Adds a registration. The same event twice is one registration (the
    /// second descriptor is closed); past `limit` the answer is
    /// `ERROR_NOT_ENOUGH_QUOTA`.
    pub fn insert(&mut self, event: u64, target: Target, limit: usize) -> Result<(), WinError> {
        if self.events.contains_key(&event) {
            return Ok(());
        }
        if self.events.len() >= limit {
            return Err(WinError::ERROR_NOT_ENOUGH_QUOTA);
        }
        self.events.insert(event, target);
        Ok(())
    }

    /// Removes a registration: its descriptor is closed and a signal still
    /// queued for it is withdrawn. False if there was none.
    pub fn remove(&mut self, event: u64, outbox: &Outbox) -> bool {
        match self.events.remove(&event) {
            Some(Target::Session) => {
                outbox.withdraw_signal(event);
                true
            }
            Some(Target::Eventfd(_)) => true,
            None => false,
        }
    }

    /// Signals every registered event: a Signal frame queued now, an
    /// eventfd to `signals` (written at its flush, before the
    /// registrations change).
    pub fn signal_all(&self, outbox: &Outbox, signals: &mut Signals) {
        for (event, target) in &self.events {
            match target {
                Target::Eventfd(fd) => signals.push(fd.as_fd()),
                Target::Session => outbox.push_signal(*event),
            }
        }
    }

    /// Drops every registration (the DDM stopped).
    pub fn clear(&mut self) {
        self.events.clear();
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Signals `event` at `target`: adds 1 to its eventfd, or queues a Signal
/// frame in the session's `outbox`. For registrations and a Connect's
/// event alike.
pub fn signal(target: &Target, event: u64, outbox: &Outbox) {
    match target {
        Target::Eventfd(fd) => write_one(fd.as_fd()),
        Target::Session => outbox.push_signal(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::{EfdFlags, EventFd};

    fn eventfd() -> (EventFd, OwnedFd) {
        let event = EventFd::from_flags(EfdFlags::EFD_NONBLOCK).unwrap();
        let dup = event.as_fd().try_clone_to_owned().unwrap();
        (event, dup)
    }

    #[test]
    fn only_eventfds_are_accepted() {
        let (_event, dup) = eventfd();
        assert!(accept_eventfd(dup).is_ok());
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(
            accept_eventfd(OwnedFd::from(file)).unwrap_err(),
            WinError::ERROR_INVALID_PARAMETER
        );
        // Another anonymous-inode file, which stats as an eventfd does.
        let epoll =
            nix::sys::epoll::Epoll::new(nix::sys::epoll::EpollCreateFlags::empty()).unwrap();
        assert_eq!(
            accept_eventfd(epoll.0.try_clone().unwrap()).unwrap_err(),
            WinError::ERROR_INVALID_PARAMETER
        );
    }

    #[test]
    fn an_accepted_eventfd_is_non_blocking() {
        let blocking = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).unwrap();
        let dup = blocking.as_fd().try_clone_to_owned().unwrap();
        let accepted = accept_eventfd(dup).unwrap();
        let flags = OFlag::from_bits_truncate(fcntl(&accepted, FcntlArg::F_GETFL).unwrap());
        assert!(flags.contains(OFlag::O_NONBLOCK));
    }

    #[test]
    fn descriptor_names_are_decimal() {
        assert_eq!(&decimal_name(0)[..2], b"0\0");
        assert_eq!(&decimal_name(24)[..3], b"24\0");
        assert_eq!(&decimal_name(1_048_575)[..8], b"1048575\0");
    }

    /// Every registration of `r` signaled, as a change does.
    fn signal_all(r: &Registrations, outbox: &Outbox) {
        let mut signals = Signals::default();
        r.signal_all(outbox, &mut signals);
        signals.flush();
    }

    fn target(fd: OwnedFd) -> Target {
        Target::Eventfd(accept_eventfd(fd).unwrap())
    }

    #[test]
    fn signal_adds_and_remove_closes() {
        let outbox = Outbox::new(4);
        let (event, dup) = eventfd();
        let mut r = Registrations::default();
        r.insert(7, target(dup), 4).unwrap();
        signal_all(&r, &outbox);
        signal_all(&r, &outbox);
        assert_eq!(event.read().unwrap(), 2);
        assert!(r.remove(7, &outbox));
        assert!(!r.remove(7, &outbox));
        signal_all(&r, &outbox);
        assert!(event.read().is_err(), "nothing signals after remove");
    }

    #[test]
    fn session_targets_coalesce_in_the_outbox_and_are_withdrawn_on_remove() {
        use ddm_proto::message::{Push, Signal};
        let outbox = Outbox::new(4);
        let mut r = Registrations::default();
        r.insert(1, Target::Session, 4).unwrap();
        r.insert(2, Target::Session, 4).unwrap();
        signal_all(&r, &outbox);
        signal_all(&r, &outbox);
        assert_eq!(
            outbox.take(),
            vec![
                Push::Signal(Signal { event: 1 }),
                Push::Signal(Signal { event: 2 })
            ]
        );
        signal_all(&r, &outbox);
        assert!(r.remove(1, &outbox));
        assert_eq!(outbox.take(), vec![Push::Signal(Signal { event: 2 })]);
        signal_all(&r, &outbox);
        r.clear();
        assert!(r.is_empty());
        assert_eq!(outbox.take(), vec![Push::Signal(Signal { event: 2 })]);
    }

    #[test]
    fn duplicates_are_one_registration_and_the_limit_holds() {
        let mut r = Registrations::default();
        let (_a, a) = eventfd();
        let (_a2, a2) = eventfd();
        let (_b, b) = eventfd();
        r.insert(1, Target::Eventfd(a), 1).unwrap();
        r.insert(1, Target::Eventfd(a2), 1).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.insert(2, Target::Eventfd(b), 1),
            Err(WinError::ERROR_NOT_ENOUGH_QUOTA)
        );
    }

    #[test]
    fn a_saturated_counter_does_not_block() {
        let outbox = Outbox::new(4);
        let (event, dup) = eventfd();
        event.write(u64::MAX - 1).unwrap();
        let mut r = Registrations::default();
        r.insert(1, target(dup), 1).unwrap();
        signal_all(&r, &outbox); // would block a blocking eventfd forever
        assert_eq!(event.read().unwrap(), u64::MAX - 1);
    }
}
