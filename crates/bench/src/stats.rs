//! Summaries of samples: min, p50, p99, max.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises values (any unit); None for no values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            count: sorted.len(),
            min: sorted[0],
            p50: at(0.5),
            p99: at(0.99),
            max: sorted[sorted.len() - 1],
        })
    }

    /// Summarises durations in microseconds.
    pub fn of_durations(values: &[Duration]) -> Option<Summary> {
        let micros: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        Self::of(&micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&values).unwrap();
        assert_eq!((s.min, s.max, s.count), (1.0, 100.0, 100));
        assert!((50.0..=51.0).contains(&s.p50));
        assert_eq!(s.p99, 99.0);
        assert!(Summary::of(&[]).is_none());
    }
}
