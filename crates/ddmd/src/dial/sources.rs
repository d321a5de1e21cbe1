//! Source addresses by family: what a demand interface's routes say their
//! packets come from (`trigger_src`, `trigger_src6`, or the link's
//! addresses once learned), and what the kernel picked for packets held
//! while the trigger had none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address of each family, either or both absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Sources {
    /// The one of `address`'s family.
    pub fn of_family(&self, address: IpAddr) -> Option<IpAddr> {
        match address {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Sets the one of `address`'s family to it.
    pub fn set(&mut self, address: IpAddr) {
        match address {
            IpAddr::V4(v4) => self.v4 = Some(v4),
            IpAddr::V6(v6) => self.v6 = Some(v6),
        }
    }

    /// Each present address.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> {
        let v4 = self.v4.map(IpAddr::V4);
        let v6 = self.v6.map(IpAddr::V6);
        v4.into_iter().chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_of_each_family() {
        let mut sources = Sources::default();
        let v4: IpAddr = "10.9.0.1".parse().unwrap();
        let v6: IpAddr = "fd09::1".parse().unwrap();
        assert_eq!(sources.of_family(v4), None);
        sources.set(v4);
        assert_eq!(sources.of_family("192.0.2.1".parse().unwrap()), Some(v4));
        assert_eq!(sources.of_family(v6), None);
        sources.set(v6);
        assert_eq!(sources.of_family("2001:db8::1".parse().unwrap()), Some(v6));
        assert_eq!(sources.iter().collect::<Vec<_>>(), vec![v4, v6]);
    }
}
