//! Declared (demand-dial) interfaces for the soak and the flapping
//! benchmark, on veth pairs: each `dN` in the router namespace, its peer
//! `dNp` up in the far one. They are "dialed" with `ip link set dN up`
//! (ready = "link"), hung up with `ip link set dN down`; taking the peer
//! down loses the connection (carrier) or makes an attempt time out.

use crate::dice::Dice;
use crate::lab::Netns;
use mprapi::Server;

/// Makes `count` veth pairs and returns their `[[interface]]` tables: the
/// even ones persistent, the odd ones manual.
pub fn declare(router: &Netns, far: &Netns, count: usize) -> String {
    let mut config = String::new();
    for n in 0..count {
        let (link, peer) = (format!("d{n}"), format!("d{n}p"));
        router.ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", &peer, "netns", &far.name,
        ]);
        far.ip(&["link", "set", &peer, "up"]);
        let dial = if n % 2 == 0 { "persistent" } else { "manual" };
        config.push_str(&format!(
            "[[interface]]\nname = \"dial{n}\"\nlink = \"{link}\"\n\
             connect = [\"ip\", \"link\", \"set\", \"{link}\", \"up\"]\n\
             disconnect = [\"ip\", \"link\", \"set\", \"{link}\", \"down\"]\n\
             dial = \"{dial}\"\nconnect_timeout_secs = 1\nredial_attempts = 2\n\
             redial_pause_secs = 1\nunreachable_retry_secs = 1\n\
             unreachable_retry_step_secs = 1\nunreachable_retry_max_secs = 2\n\n"
        ));
    }
    config
}

/// Random trouble for the declared interfaces.
pub struct Churn {
    far: String,
    count: usize,
    /// Which peers are down.
    down: Vec<bool>,
    dice: Dice,
}

impl Churn {
    /// Trouble for `count` interfaces whose peers are in namespace `far`.
    pub fn new(far: &str, count: usize) -> Churn {
        Churn {
            far: far.to_owned(),
            count,
            down: vec![false; count],
            dice: Dice(0x2545_f491_4f6c_dd1d),
        }
    }

    fn set_peer(&mut self, n: usize, up: bool) {
        self.down[n] = !up;
        let _ = std::process::Command::new("ip")
            .args([
                "-n",
                &self.far,
                "link",
                "set",
                &format!("d{n}p"),
                if up { "up" } else { "down" },
            ])
            .status();
    }

    /// One random act: a peer's carrier flips, or a manual interface is
    /// connected or disconnected through `server`.
    pub fn step(&mut self, server: &Server) {
        let n = self.dice.below(self.count);
        match self.dice.below(3) {
            0 => {
                let up = self.down[n];
                self.set_peer(n, up);
            }
            1 => {
                if let Ok(h) = server.interface_handle(&format!("dial{n}")) {
                    let _ = server.interface_connect(h);
                }
            }
            _ => {
                if let Ok(h) = server.interface_handle(&format!("dial{n}")) {
                    let _ = server.interface_disconnect(h);
                }
            }
        }
    }

    /// A burst of trouble, then calm: lets the service's allocator reach
    /// the size dialing needs before a baseline is taken.
    pub fn exercise(&mut self, server: &Server, steps: usize) {
        for _ in 0..steps {
            self.step(server);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.calm(server);
    }

    /// Every peer up again, every persistent interface connected (one an
    /// administrator disconnected stays down until told), and time for
    /// the attempts under way to end: a state a restarted service adopts
    /// as it is.
    pub fn calm(&mut self, server: &Server) {
        for n in 0..self.count {
            if self.down[n] {
                self.set_peer(n, true);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let persistent: Vec<u32> = (0..self.count)
            .step_by(2)
            .filter_map(|n| server.interface_handle(&format!("dial{n}")).ok())
            .collect();
        for &h in &persistent {
            let _ = server.interface_connect(h);
        }
        let states = || {
            persistent
                .iter()
                .map(|&h| format!("{:?}", server.interface(h)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        crate::lab::wait_for(
            &format!("the persistent interfaces to connect:\n{}", states()),
            || {
                persistent.iter().all(|&h| {
                    server
                        .interface(h)
                        .is_ok_and(|i| i.state == mprapi::ConnectionState::Connected)
                })
            },
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
