//! A far end that answers ICMP echo late: the kernel's own answers are
//! turned off in its namespace, and a thread answers each request after a
//! delay, from a raw socket. These kernels have no netem to delay packets.

use crate::netns::Netns;
use socket2::{Domain, Protocol, Socket, Type};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers IPv4 echo requests in a namespace `delay` late, until dropped
/// (then the kernel answers again).
pub struct SlowEcho {
    netns: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowEcho {
    pub fn start(netns: &Netns, delay: Duration) -> SlowEcho {
        netns.sysctl("net.ipv4.icmp_echo_ignore_all", "1");
        let socket = netns
            .enter(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))
            .expect("raw ICMP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut buffer = [MaybeUninit::<u8>::uninit(); 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((length, from)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    // SAFETY: recv_from initialised the first `length` bytes.
                    let data: Vec<u8> =
                        unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), length) }
                            .to_vec();
                    let header = usize::from(data[0] & 0x0f) * 4;
                    let Some(mut icmp) = data.get(header..).map(<[u8]>::to_vec) else {
                        continue;
                    };
                    if icmp.len() < 8 || icmp[0] != 8 {
                        continue;
                    }
                    icmp[0] = 0;
                    icmp[2] = 0;
                    icmp[3] = 0;
                    let sum = ddmd::health::echo::checksum(&icmp);
                    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                    let socket = socket.clone();
                    let Some(to) = from.as_socket() else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        std::thread::sleep(delay);
                        let _ = socket.send_to(&icmp, &to.into());
                    });
                }
            }
        });
        SlowEcho {
            netns: netns.name.clone(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = crate::tool("ip")
            .args(["netns", "exec", &self.netns, "sysctl", "-qw"])
            .arg("net.ipv4.icmp_echo_ignore_all=0")
            .status();
    }
}
