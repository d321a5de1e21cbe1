//! A path's health judged from its rounds of probes: pure logic, like
//! `dial::machine`, fed by the router with each round the prober reports
//! and answering with the changes of verdict and the figures behind them.
//!
//! A round passes when at least `quorum` targets answered within the
//! timeout and the median of their RTTs is within `max_rtt_ms` (or, with
//! `passive`, when the link received packets during it: no probe was
//! needed). The verdict starts Pending: the first round that passes makes
//! it Up, `down_after` failing ones Down. Up turns Down after `down_after`
//! failing rounds in a row, or, once the window holds `window` rounds, when
//! the probes lost over it exceed `max_loss_percent` or their median RTT
//! exceeds `max_rtt_ms`. Down turns Up after `up_after` passing rounds in a
//! row. Loss is counted in rounds (a round is lost when fewer than
//! `quorum` targets answered), so a quorum rides out a dead target. After
//! a change of verdict the window holds only the rounds in a row that made
//! it, so the rounds before never decide again.

use super::config::{HealthConfig, Target};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the probes say of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not judged yet (just started, or the link just came up).
    Pending,
    Up,
    Down,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }
}

/// A change of verdict, and why (for the journal's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub to: Verdict,
    pub why: String,
}

/// One round as judged: each target's RTT (None: lost), or passive.
#[derive(Debug, Clone)]
struct Round {
    rtts: Vec<Option<Duration>>,
    passive: bool,
}

/// One target's figures over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFigures {
    pub target: String,
    pub rtt: Option<Duration>,
    pub loss_percent: f64,
    pub jitter: Option<Duration>,
    pub answered_last: bool,
}

/// The figures over the window, and the counts since the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub verdict: Verdict,
    /// Median RTT of the answered probes.
    pub rtt: Option<Duration>,
    /// Rounds whose answers fell short of the quorum (lost rounds), in
    /// percent of the probed rounds: each target's own loss is in
    /// `targets`.
    pub loss_percent: f64,
    /// Mean difference between a target's consecutive RTTs.
    pub jitter: Option<Duration>,
    pub last_pass: Option<SystemTime>,
    pub targets: Vec<TargetFigures>,
    pub probes_sent: u64,
    pub probes_lost: u64,
    pub rounds: u64,
}

#[derive(Debug, Clone)]
pub struct Monitor {
    config: Arc<HealthConfig>,
    targets: Vec<Target>,
    verdict: Verdict,
    window: VecDeque<Round>,
    passes_in_row: u32,
    fails_in_row: u32,
    last_pass: Option<SystemTime>,
    probes_sent: u64,
    probes_lost: u64,
    rounds: u64,
}

impl Monitor {
    pub fn new(config: Arc<HealthConfig>) -> Monitor {
        Monitor {
            targets: config.parsed_targets(),
            config,
            verdict: Verdict::Pending,
            window: VecDeque::new(),
            passes_in_row: 0,
            fails_in_row: 0,
            last_pass: None,
            probes_sent: 0,
            probes_lost: 0,
            rounds: 0,
        }
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    pub fn config(&self) -> &Arc<HealthConfig> {
        &self.config
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// A new table: the verdict stays; the window starts again when the
    /// targets changed (its figures were theirs).
    pub fn reconfigure(&mut self, config: Arc<HealthConfig>) {
        let targets = config.parsed_targets();
        if targets != self.targets {
            self.window.clear();
            self.passes_in_row = 0;
            self.fails_in_row = 0;
        }
        self.targets = targets;
        self.config = config;
    }

    /// The link went down or away: nothing gets through it.
    pub fn link_down(&mut self) -> Option<Change> {
        self.passes_in_row = 0;
        self.fails_in_row = 0;
        self.change(Verdict::Down, "link down".into())
    }

    /// The link came up: judged again from its rounds.
    pub fn link_up(&mut self) {
        self.verdict = Verdict::Pending;
        self.window.clear();
        self.passes_in_row = 0;
        self.fails_in_row = 0;
    }

    /// A round's answers, one per target in order (None: lost), or a
    /// passive round (`rtts` empty: the link received packets).
    pub fn round(
        &mut self,
        rtts: Vec<Option<Duration>>,
        passive: bool,
        now: SystemTime,
    ) -> Option<Change> {
        let config = self.config.clone();
        let passed = passive || {
            let mut answered: Vec<Duration> = rtts.iter().flatten().copied().collect();
            answered.len() >= config.quorum as usize
                && median(&mut answered).is_some_and(|m| m <= config.max_rtt())
        };
        self.rounds += 1;
        if !passive {
            self.probes_sent += rtts.len() as u64;
            self.probes_lost += rtts.iter().filter(|r| r.is_none()).count() as u64;
        }
        if passed {
            self.last_pass = Some(now);
            self.passes_in_row = self.passes_in_row.saturating_add(1);
            self.fails_in_row = 0;
        } else {
            self.fails_in_row = self.fails_in_row.saturating_add(1);
            self.passes_in_row = 0;
        }
        self.window.push_back(Round { rtts, passive });
        while self.window.len() > config.window as usize {
            self.window.pop_front();
        }
        match self.verdict {
            Verdict::Pending if passed => self.change(Verdict::Up, "first round passed".into()),
            Verdict::Up | Verdict::Pending if self.fails_in_row >= config.down_after => {
                let why = format!("{} rounds failed in a row", self.fails_in_row);
                self.change(Verdict::Down, why)
            }
            Verdict::Up if self.window.len() >= config.window as usize => {
                let (loss_percent, rtt) = self.loss_and_rtt();
                if loss_percent > f64::from(config.max_loss_percent) {
                    let why = format!(
                        "loss above max_loss_percent {} over {} rounds",
                        config.max_loss_percent, config.window
                    );
                    self.change(Verdict::Down, why)
                } else if rtt.is_some_and(|rtt| rtt > config.max_rtt()) {
                    let why = format!(
                        "median RTT above max_rtt_ms {} over {} rounds",
                        config.max_rtt_ms, config.window
                    );
                    self.change(Verdict::Down, why)
                } else {
                    None
                }
            }
            Verdict::Down if self.passes_in_row >= config.up_after => {
                let why = format!("{} rounds passed in a row", self.passes_in_row);
                self.change(Verdict::Up, why)
            }
            _ => None,
        }
    }

    fn change(&mut self, to: Verdict, why: String) -> Option<Change> {
        if to == self.verdict {
            return None;
        }
        // The figures that decided it go with it; then the window keeps
        // only the rounds in a row that made the verdict.
        let why = format!("health {}: {why}; {}", to.name(), self.describe());
        self.verdict = to;
        let in_row = self.passes_in_row.max(self.fails_in_row) as usize;
        while self.window.len() > in_row {
            self.window.pop_front();
        }
        self.passes_in_row = 0;
        self.fails_in_row = 0;
        Some(Change { to, why })
    }

    /// The window's figures, for a reason: loss, RTT, the targets that did
    /// not answer last.
    fn describe(&self) -> String {
        let figures = self.figures();
        let rtt = figures
            .rtt
            .map_or("-".into(), |r| format!("{:.1} ms", r.as_secs_f64() * 1e3));
        let silent: Vec<&str> = figures
            .targets
            .iter()
            .filter(|t| !t.answered_last)
            .map(|t| t.target.as_str())
            .collect();
        let mut text = format!("loss {:.0}%, rtt {rtt}", figures.loss_percent);
        if !silent.is_empty() && !self.window.is_empty() {
            text += &format!(", no answer from {}", silent.join(" "));
        }
        text
    }

    /// The window's loss (lost rounds, in percent) and median RTT: what a
    /// round decides with, without each target's figures.
    fn loss_and_rtt(&self) -> (f64, Option<Duration>) {
        let probed = || self.window.iter().filter(|r| !r.passive);
        let quorum = self.config.quorum as usize;
        let short = probed()
            .filter(|r| r.rtts.iter().flatten().count() < quorum)
            .count();
        let mut all: Vec<Duration> = probed()
            .flat_map(|r| r.rtts.iter().flatten().copied())
            .collect();
        (percent(short, probed().count()), median(&mut all))
    }

    pub fn figures(&self) -> Figures {
        let probed: Vec<&Round> = self.window.iter().filter(|r| !r.passive).collect();
        let (loss_percent, rtt) = self.loss_and_rtt();
        let targets: Vec<TargetFigures> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let series: Vec<Option<Duration>> = probed
                    .iter()
                    .map(|r| r.rtts.get(i).copied().flatten())
                    .collect();
                let mut answered: Vec<Duration> = series.iter().flatten().copied().collect();
                TargetFigures {
                    target: target.to_string(),
                    jitter: jitter(&answered),
                    rtt: median(&mut answered),
                    loss_percent: percent(
                        series.iter().filter(|r| r.is_none()).count(),
                        series.len(),
                    ),
                    answered_last: series.last().is_some_and(Option::is_some)
                        || (series.is_empty() && self.verdict == Verdict::Up),
                }
            })
            .collect();
        let jitters: Vec<Duration> = targets.iter().filter_map(|t| t.jitter).collect();
        Figures {
            verdict: self.verdict,
            rtt,
            loss_percent,
            jitter: (!jitters.is_empty())
                .then(|| jitters.iter().sum::<Duration>() / jitters.len() as u32),
            last_pass: self.last_pass,
            targets,
            probes_sent: self.probes_sent,
            probes_lost: self.probes_lost,
            rounds: self.rounds,
        }
    }
}

fn median(values: &mut [Duration]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2
    })
}

/// Mean absolute difference between consecutive RTTs, in order.
fn jitter(series: &[Duration]) -> Option<Duration> {
    if series.len() < 2 {
        return None;
    }
    let total: Duration = series.windows(2).map(|w| w[0].abs_diff(w[1])).sum();
    Some(total / (series.len() - 1) as u32)
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn monitor(extra: &str) -> Monitor {
        let config: HealthConfig = toml::from_str(&format!(
            "targets = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\"]\n{extra}"
        ))
        .unwrap();
        config.check("t").unwrap();
        Monitor::new(Arc::new(config))
    }

    fn answered(m: &mut Monitor, rtts: [Option<u64>; 3]) -> Option<Change> {
        let rtts = rtts.iter().map(|r| r.map(Duration::from_millis)).collect();
        m.round(rtts, false, SystemTime::now())
    }

    const ALL: [Option<u64>; 3] = [Some(10), Some(12), Some(11)];
    const NONE: [Option<u64>; 3] = [None, None, None];

    #[test]
    fn up_at_the_first_passing_round_down_after_down_after_failures_up_after_up_after() {
        let mut m = monitor("");
        assert_eq!(m.verdict(), Verdict::Pending);
        assert_eq!(answered(&mut m, ALL).unwrap().to, Verdict::Up);
        assert_eq!(answered(&mut m, NONE), None);
        assert_eq!(answered(&mut m, NONE), None);
        let down = answered(&mut m, NONE).unwrap();
        assert_eq!(down.to, Verdict::Down);
        assert!(
            down.why.contains("3 rounds failed in a row")
                && down.why.contains("loss 75%")
                && down
                    .why
                    .contains("no answer from 192.0.2.1 192.0.2.2 192.0.2.3"),
            "{}",
            down.why
        );
        for _ in 0..4 {
            assert_eq!(answered(&mut m, ALL), None);
        }
        let up = answered(&mut m, ALL).unwrap();
        assert_eq!(up.to, Verdict::Up);
        assert!(
            up.why.contains("5 rounds passed") && up.why.contains("rtt 11.0 ms"),
            "{}",
            up.why
        );
    }

    #[test]
    fn a_quorum_of_two_holds_with_one_target_dead_and_falls_with_two() {
        let mut m = monitor("quorum = 2");
        answered(&mut m, ALL);
        for _ in 0..30 {
            assert_eq!(answered(&mut m, [Some(10), Some(10), None]), None);
        }
        assert_eq!(m.verdict(), Verdict::Up);
        answered(&mut m, [Some(10), None, None]);
        answered(&mut m, [Some(10), None, None]);
        let down = answered(&mut m, [Some(10), None, None]).unwrap();
        assert!(
            down.why.contains("no answer from 192.0.2.2 192.0.2.3"),
            "{}",
            down.why
        );
    }

    #[test]
    fn slow_answers_fail_rounds() {
        let mut m = monitor("max_rtt_ms = 100");
        answered(&mut m, ALL);
        answered(&mut m, [Some(150), Some(160), Some(170)]);
        answered(&mut m, [Some(150), Some(160), Some(170)]);
        let down = answered(&mut m, [Some(150), Some(160), Some(170)]).unwrap();
        assert_eq!(down.to, Verdict::Down);
        assert!(down.why.contains("rtt 155.0 ms"), "{}", down.why);
    }

    #[test]
    fn loss_over_the_window_is_down_once_the_window_is_full() {
        let mut m = monitor("window = 10\nmax_loss_percent = 20\nquorum = 2");
        answered(&mut m, ALL);
        // Every other round falls short of the quorum: never three failed
        // rounds in a row, but half of them lost.
        for n in 0..8 {
            let short = [Some(10), if n % 2 == 0 { None } else { Some(10) }, None];
            assert_eq!(answered(&mut m, short), None);
        }
        let down = answered(&mut m, [Some(10), None, None]).unwrap();
        assert!(
            down.why.contains("max_loss_percent 20") && down.why.contains("loss 50%"),
            "{}",
            down.why
        );
    }

    #[test]
    fn random_loss_of_five_percent_never_trips_the_defaults() {
        // A fixed pseudo-random sequence: ten simulated minutes at two
        // rounds a second, one target, each probe lost with p = 0.05.
        let config: HealthConfig = toml::from_str("targets = [\"192.0.2.1\"]").unwrap();
        let mut m = Monitor::new(Arc::new(config));
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut changes = 0;
        for _ in 0..1200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let lost = seed % 100 < 5;
            let rtt = if lost { None } else { Some(10 * MS) };
            changes += usize::from(m.round(vec![rtt], false, SystemTime::now()).is_some());
        }
        assert_eq!(changes, 1, "only the first Up");
    }

    #[test]
    fn passive_rounds_pass_without_probes() {
        let mut m = monitor("");
        assert_eq!(
            m.round(Vec::new(), true, SystemTime::now()).unwrap().to,
            Verdict::Up
        );
        assert_eq!(m.figures().probes_sent, 0);
    }

    #[test]
    fn a_link_down_is_down_at_once_and_a_link_up_judges_again() {
        let mut m = monitor("");
        answered(&mut m, ALL);
        assert!(m.link_down().unwrap().why.contains("link down"));
        assert_eq!(m.link_down(), None);
        m.link_up();
        assert_eq!(m.verdict(), Verdict::Pending);
        assert_eq!(answered(&mut m, ALL).unwrap().to, Verdict::Up);
    }

    #[test]
    fn figures_per_target() {
        let mut m = monitor("");
        answered(&mut m, ALL);
        answered(&mut m, [Some(10), Some(20), None]);
        answered(&mut m, [Some(14), Some(20), None]);
        let f = m.figures();
        assert_eq!(f.targets[0].rtt, Some(10 * MS));
        assert_eq!(f.targets[0].jitter, Some(2 * MS));
        assert_eq!(f.targets[2].loss_percent * 3.0, 200.0);
        assert!(!f.targets[2].answered_last && f.targets[1].answered_last);
        assert_eq!((f.probes_sent, f.probes_lost), (9, 2));
    }
}
