//! Giving memory back after a crowd of clients leaves.
//!
//! A thousand sessions that come and go leave the allocator holding the
//! memory they used; a router that served a burst should not keep it. When
//! the number of sessions falls below half its peak since the last time,
//! the service asks the allocator to return its free memory to the kernel:
//! a few times per drain, never on the path of a change.

/// Tracks the session count and trims when it has halved.
#[derive(Debug, Default)]
pub struct Trimmer {
    peak: usize,
}

impl Trimmer {
    /// Call with the session count after each open or close.
    pub fn sessions_now(&mut self, count: usize) {
        if count > self.peak {
            self.peak = count;
        } else if count * 2 < self.peak {
            release_free_memory();
            self.peak = count;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only returns free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_when_the_crowd_has_halved() {
        let mut t = Trimmer::default();
        (0..=1000).for_each(|n| t.sessions_now(n));
        assert_eq!(t.peak, 1000);
        t.sessions_now(600);
        assert_eq!(t.peak, 1000, "not yet half");
        t.sessions_now(499);
        assert_eq!(t.peak, 499, "trimmed, and the peak starts again");
    }
}
