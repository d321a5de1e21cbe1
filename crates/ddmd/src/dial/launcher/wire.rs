//! What the service and its launcher say to each other: one message a
//! datagram of a SOCK_SEQPACKET pair, so a message never needs framing.
//!
//! The service asks to start a program (with variables added to the
//! launcher's environment) or to signal one of the launcher's children;
//! the launcher answers a start with the child's pid (and its stdout and
//! stderr pipes, as SCM_RIGHTS) or the errno that kept it from running,
//! and says when a child ends, with its raw wait status.

/// The largest message: a command line and its variables.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Start {
        id: u64,
        argv: Vec<Vec<u8>>,
        env: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Signal {
        pid: i32,
        signal: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tell {
    /// Started: the pipes come with the message.
    Started { id: u64, pid: i32 },
    /// Not started: exec (or fork) failed with this errno.
    Failed { id: u64, errno: i32 },
    /// A child ended, with this wait status.
    Exited { pid: i32, status: i32 },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a malformed launcher message")]
pub struct Malformed;

impl Ask {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Ask::Start { id, argv, env } => {
                out.push(1);
                out.extend_from_slice(&id.to_le_bytes());
                put_count(&mut out, argv.len());
                for arg in argv {
                    put_bytes(&mut out, arg);
                }
                put_count(&mut out, env.len());
                for (key, value) in env {
                    put_bytes(&mut out, key);
                    put_bytes(&mut out, value);
                }
            }
            Ask::Signal { pid, signal } => {
                out.push(2);
                out.extend_from_slice(&pid.to_le_bytes());
                out.extend_from_slice(&signal.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Ask, Malformed> {
        let mut reader = Reader(bytes);
        let ask = match reader.byte()? {
            1 => {
                let id = reader.u64()?;
                let argv = (0..reader.count()?)
                    .map(|_| reader.bytes())
                    .collect::<Result<_, _>>()?;
                let env = (0..reader.count()?)
                    .map(|_| Ok((reader.bytes()?, reader.bytes()?)))
                    .collect::<Result<_, _>>()?;
                Ask::Start { id, argv, env }
            }
            2 => Ask::Signal {
                pid: reader.i32()?,
                signal: reader.i32()?,
            },
            _ => return Err(Malformed),
        };
        reader.end()?;
        Ok(ask)
    }
}

impl Tell {
    pub fn encode(&self) -> [u8; 13] {
        let mut out = [0u8; 13];
        let (tag, first, second) = match *self {
            Tell::Started { id, pid } => (1, id, pid),
            Tell::Failed { id, errno } => (2, id, errno),
            Tell::Exited { pid, status } => (3, pid as u32 as u64, status),
        };
        out[0] = tag;
        out[1..9].copy_from_slice(&first.to_le_bytes());
        out[9..13].copy_from_slice(&second.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Tell, Malformed> {
        let mut reader = Reader(bytes);
        let (tag, first, second) = (reader.byte()?, reader.u64()?, reader.i32()?);
        reader.end()?;
        match tag {
            1 => Ok(Tell::Started {
                id: first,
                pid: second,
            }),
            2 => Ok(Tell::Failed {
                id: first,
                errno: second,
            }),
            3 => Ok(Tell::Exited {
                pid: first as u32 as i32,
                status: second,
            }),
            _ => Err(Malformed),
        }
    }
}

fn put_count(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(&(count as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Malformed)?,
        ))
    }

    fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Malformed)?,
        ))
    }

    fn count(&mut self) -> Result<usize, Malformed> {
        let count = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Malformed)?);
        // No count can exceed the bytes that remain.
        if count as usize > self.0.len() {
            return Err(Malformed);
        }
        Ok(count as usize)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Malformed> {
        let n = self.count()?;
        Ok(self.take(n)?.to_vec())
    }

    fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_as_written() {
        let start = Ask::Start {
            id: 7,
            argv: vec![b"ip".to_vec(), b"link".to_vec(), Vec::new()],
            env: vec![(b"DDM_DIAL".to_vec(), b"/run/ddm.sock wan".to_vec())],
        };
        assert_eq!(Ask::decode(&start.encode()), Ok(start));
        let signal = Ask::Signal {
            pid: 42,
            signal: 15,
        };
        assert_eq!(Ask::decode(&signal.encode()), Ok(signal));
        for tell in [
            Tell::Started { id: 1, pid: 99 },
            Tell::Failed { id: 2, errno: 2 },
            Tell::Exited {
                pid: 99,
                status: 256,
            },
        ] {
            assert_eq!(Tell::decode(&tell.encode()), Ok(tell));
        }
    }

    #[test]
    fn damaged_messages_are_refused() {
        let start = Ask::Start {
            id: 7,
            argv: vec![b"true".to_vec()],
            env: Vec::new(),
        }
        .encode();
        for cut in 0..start.len() {
            assert_eq!(Ask::decode(&start[..cut]), Err(Malformed));
        }
        let mut longer = start.clone();
        longer.push(0);
        assert_eq!(Ask::decode(&longer), Err(Malformed));
        // A count larger than what follows is refused, not allocated.
        let mut huge = vec![1u8];
        huge.extend_from_slice(&7u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Ask::decode(&huge), Err(Malformed));
        assert_eq!(Tell::decode(&[9; 13]), Err(Malformed));
    }
}
