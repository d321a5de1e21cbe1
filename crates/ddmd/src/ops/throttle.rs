//! Rate-limited log lines: a flood of refusals must not flood the log.
//!
//! A kind of line is written at most once per interval; the ones held back
//! meanwhile are counted, and the next line written says how many.

use std::time::{Duration, Instant};

/// How often a throttled line may be written.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(LOG_INTERVAL)
    }
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were
    /// held back since the last one; `None` when this one is held back.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_an_interval_and_the_next_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(t.allow(start), Some(0));
        for ms in 1..100 {
            assert_eq!(t.allow(start + Duration::from_millis(ms * 5)), None);
        }
        assert_eq!(t.allow(start + Duration::from_secs(1)), Some(99));
        assert_eq!(t.allow(start + Duration::from_millis(1500)), None);
        assert_eq!(t.allow(start + Duration::from_secs(3)), Some(1));
    }
}
