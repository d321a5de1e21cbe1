//! Bad input on the wire: each fault is refused or closed, and a
//! well-behaved client is served throughout.

use crate::support::*;
use ddm_proto::frame::{encode_frame, FrameDecoder};
use ddm_proto::message::*;
use ddm_proto::WinError;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::{IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

fn raw(service: &Service) -> UnixStream {
    let stream = UnixStream::connect(&service.socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

fn frame(id: u64, request: Request) -> Vec<u8> {
    encode_frame(
        &ClientMessage {
            id,
            body: Some(request),
        },
        usize::MAX,
    )
    .unwrap()
}

fn hello(stream: &mut UnixStream) {
    stream
        .write_all(&frame(1, Request::Hello(Hello { version: 1 })))
        .unwrap();
    let reply = next_reply(stream).expect("a Welcome");
    assert_eq!(reply.error, 0);
}

/// Writes `bytes` with `fds` riding on them as SCM_RIGHTS.
fn send_with_descriptors(stream: &UnixStream, bytes: &[u8], fds: &[std::os::fd::RawFd]) {
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
}

/// The next reply, or None when the service closed the session.
fn next_reply(stream: &mut UnixStream) -> Option<Reply> {
    let mut decoder = FrameDecoder::new(usize::MAX);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(ServiceMessage {
            body: Some(Push::Reply(reply)),
        }) = decoder.next_message().unwrap()
        {
            return Some(reply);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.extend(&chunk[..n]),
        }
    }
}

/// Reads to the end: the session must close. Returns the error of the
/// reply sent before closing, if any.
fn expect_closed(stream: &mut UnixStream) -> Option<WinError> {
    let error = next_reply(stream).map(|r| WinError(r.error));
    let mut rest = Vec::new();
    let end = stream.read_to_end(&mut rest);
    assert!(end.is_ok(), "the session was not closed: {end:?}");
    error
}

/// A client that keeps calling while the test misbehaves: it is served
/// before the faults begin and again after they end, and every call
/// succeeds (a failed call panics its thread, and `finish` with it).
struct Bystander {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    worker: thread::JoinHandle<()>,
}

impl Bystander {
    fn start(service: &Service) -> Bystander {
        let server = service.connect();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), calls.clone());
        let worker = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                server
                    .interfaces()
                    .expect("the well-behaved client is served");
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        wait_until("the bystander is served", || {
            calls.load(Ordering::Relaxed) > 0
        });
        Bystander {
            stop,
            calls,
            worker,
        }
    }

    fn finish(self) {
        let before = self.calls.load(Ordering::Relaxed);
        wait_until("the bystander is served after the faults", || {
            self.calls.load(Ordering::Relaxed) > before || self.worker.is_finished()
        });
        self.stop.store(true, Ordering::Relaxed);
        self.worker
            .join()
            .expect("every call of the bystander succeeded");
    }
}

#[test]
fn garbage_oversize_and_cut_short_frames_close_only_their_session() {
    let lab = Lab::new();
    let bystander = Bystander::start(&lab.service);

    let mut garbage = raw(&lab.service);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let _ = garbage.write_all(&bytes);
    assert_eq!(
        expect_closed(&mut garbage),
        Some(WinError::RPC_S_PROTOCOL_ERROR)
    );

    let mut oversize = raw(&lab.service);
    hello(&mut oversize);
    oversize.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    assert_eq!(
        expect_closed(&mut oversize),
        Some(WinError::RPC_S_PROTOCOL_ERROR)
    );

    let mut cut = raw(&lab.service);
    hello(&mut cut);
    let whole = frame(2, Request::ListSessions(ListSessions {}));
    cut.write_all(&whole[..whole.len() - 1]).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        expect_closed(&mut cut),
        None,
        "a cut-short frame is dropped with its session"
    );

    bystander.finish();
    assert!(
        lab.service.log().contains("closing session"),
        "faults are logged"
    );
}

#[test]
fn requests_before_the_handshake_and_bad_versions_are_refused() {
    let lab = Lab::new();
    let mut early = raw(&lab.service);
    early
        .write_all(&frame(5, Request::ListSessions(ListSessions {})))
        .unwrap();
    assert_eq!(
        expect_closed(&mut early),
        Some(WinError::RPC_S_PROTOCOL_ERROR)
    );

    let mut future = raw(&lab.service);
    future
        .write_all(&frame(1, Request::Hello(Hello { version: 99 })))
        .unwrap();
    assert_eq!(expect_closed(&mut future), Some(WinError::RPC_S_UNKNOWN_IF));

    let mut twice = raw(&lab.service);
    hello(&mut twice);
    twice
        .write_all(&frame(2, Request::Hello(Hello { version: 1 })))
        .unwrap();
    assert_eq!(
        expect_closed(&mut twice),
        Some(WinError::RPC_S_PROTOCOL_ERROR)
    );
}

#[test]
fn connections_that_never_finish_the_handshake_are_closed() {
    let lab = Lab::with_config(Some("[limits]\nhandshake_timeout_ms = 300\n"));
    let bystander = Bystander::start(&lab.service);
    let mut silent: Vec<UnixStream> = (0..1000).map(|_| raw(&lab.service)).collect();
    let mut half = raw(&lab.service);
    half.write_all(&[0, 0]).unwrap(); // half a header, then nothing
    silent.push(half);
    for stream in &mut silent {
        assert_eq!(expect_closed(stream), None);
    }
    bystander.finish();
}

#[test]
fn register_needs_an_eventfd() {
    let lab = Lab::new();
    let mut stream = raw(&lab.service);
    hello(&mut stream);
    let register = frame(2, Request::Register(Register { event: 7 }));

    stream.write_all(&register).unwrap();
    assert_eq!(
        next_reply(&mut stream).map(|r| r.error),
        Some(WinError::ERROR_INVALID_PARAMETER.0),
        "no descriptor"
    );

    let (pipe_read, _pipe_write) = nix::unistd::pipe().unwrap();
    let fds = [pipe_read.as_raw_fd()];
    send_with_descriptors(&stream, &register, &fds);
    assert_eq!(
        next_reply(&mut stream).map(|r| r.error),
        Some(WinError::ERROR_INVALID_PARAMETER.0),
        "a pipe is not an event"
    );

    // Those were errors, not faults: the session still works.
    stream
        .write_all(&frame(3, Request::InterfaceEnum(InterfaceEnum::default())))
        .unwrap();
    assert_eq!(next_reply(&mut stream).map(|r| r.error), Some(0));
}

#[test]
fn a_descriptor_without_a_register_closes_the_session() {
    let lab = Lab::new();
    let mut stream = raw(&lab.service);
    hello(&mut stream);
    let (pipe_read, _pipe_write) = nix::unistd::pipe().unwrap();
    let fds = [pipe_read.as_raw_fd()];
    let list = frame(2, Request::ListSessions(ListSessions {}));
    send_with_descriptors(&stream, &list, &fds);
    let mut saw_protocol_error = false;
    while let Some(reply) = next_reply(&mut stream) {
        saw_protocol_error |= reply.error == WinError::RPC_S_PROTOCOL_ERROR.0;
    }
    assert!(saw_protocol_error);
}

#[test]
fn a_flood_of_descriptors_closes_the_session_and_leaks_none() {
    let lab = Lab::new();
    let mut stream = raw(&lab.service);
    hello(&mut stream);
    let before = lab.service.open_descriptors();
    let pipes: Vec<_> = (0..10).map(|_| nix::unistd::pipe().unwrap()).collect();
    let fds: Vec<_> = pipes.iter().map(|(r, _)| r.as_raw_fd()).collect();
    let register = frame(2, Request::Register(Register { event: 1 }));
    send_with_descriptors(&stream, &register, &fds);
    assert_eq!(
        expect_closed(&mut stream),
        Some(WinError::RPC_S_PROTOCOL_ERROR)
    );
    wait_until("the service holds none of them", || {
        lab.service.open_descriptors() < before
    });
}
