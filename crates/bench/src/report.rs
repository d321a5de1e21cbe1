//! The results: one table of figures with their ratio to the anchor
//! measured in the same run, the targets met or not, and JSON.

use crate::stats::Summary;
use serde_json::json;

pub struct Row {
    pub workload: String,
    pub mechanism: String,
    pub unit: &'static str,
    pub summary: Summary,
    /// p50 divided by the anchor's p50, and the anchor's name.
    pub ratio: Option<(f64, String)>,
    /// Over several runs: the lowest and highest p50.
    pub spread: Option<(f64, f64)>,
}

pub struct Target {
    pub goal: String,
    pub measured: String,
    pub met: bool,
    /// Met only when met in every run (otherwise: in most runs, which is
    /// the verdict on the median run's figure).
    pub every_run: bool,
    /// Over several runs: how many met it, of how many.
    pub runs: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    /// Derived figures worth a line of their own.
    pub notes: Vec<String>,
}

impl Report {
    pub fn add(
        &mut self,
        workload: &str,
        mechanism: &str,
        unit: &'static str,
        summary: Option<Summary>,
    ) {
        if let Some(summary) = summary {
            self.rows.push(Row {
                workload: workload.into(),
                mechanism: mechanism.into(),
                unit,
                summary,
                ratio: None,
                spread: None,
            });
        }
    }

    /// The last row added for `workload` and `mechanism`.
    pub fn find(&self, workload: &str, mechanism: &str) -> Option<&Row> {
        self.rows
            .iter()
            .rev()
            .find(|r| r.workload == workload && r.mechanism == mechanism)
    }

    /// Sets each row's ratio to the anchor row of the same workload.
    pub fn relate(&mut self, workload: &str, anchor: &str) {
        let Some(base) = self.find(workload, anchor).map(|r| r.summary.p50) else {
            return;
        };
        for row in self
            .rows
            .iter_mut()
            .filter(|r| r.workload == workload && r.mechanism != anchor)
        {
            row.ratio = Some((row.summary.p50 / base, anchor.to_string()));
        }
    }

    pub fn target(&mut self, goal: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.targets.push(Target {
            goal: goal.into(),
            measured: measured.into(),
            met,
            every_run: false,
            runs: None,
        });
    }

    /// A target that must be met in every run, not only in most.
    pub fn target_every_run(
        &mut self,
        goal: impl Into<String>,
        measured: impl Into<String>,
        met: bool,
    ) {
        self.target(goal, measured, met);
        if let Some(target) = self.targets.last_mut() {
            target.every_run = true;
        }
    }

    /// Several runs' reports as one: each row from the run with its median
    /// p50, with the spread of p50 across the runs and the median of the
    /// ratios to its anchor; each target met in most runs (the verdict on
    /// its median figure: a target is a bound on one figure) or, for
    /// `every_run` targets, in all of them, with every run's figure.
    pub fn combine(runs: Vec<Report>) -> Report {
        let mut combined = Report::default();
        let Some(first) = runs.first() else {
            return combined;
        };
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        for row in &first.rows {
            let same: Vec<&Row> = runs
                .iter()
                .filter_map(|r| r.find(&row.workload, &row.mechanism))
                .collect();
            let mut by_p50 = same.clone();
            by_p50.sort_by(|a, b| a.summary.p50.total_cmp(&b.summary.p50));
            let middle = by_p50[by_p50.len() / 2];
            let ratios: Vec<f64> = same
                .iter()
                .filter_map(|r| Some(r.ratio.as_ref()?.0))
                .collect();
            combined.rows.push(Row {
                workload: row.workload.clone(),
                mechanism: row.mechanism.clone(),
                unit: row.unit,
                summary: middle.summary,
                ratio: row
                    .ratio
                    .as_ref()
                    .filter(|_| !ratios.is_empty())
                    .map(|(_, anchor)| (median(ratios), anchor.clone())),
                spread: Some((by_p50[0].summary.p50, by_p50[by_p50.len() - 1].summary.p50)),
            });
        }
        let mut goals: Vec<&str> = Vec::new();
        for run in &runs {
            for target in &run.targets {
                if !goals.contains(&target.goal.as_str()) {
                    goals.push(&target.goal);
                }
            }
        }
        for goal in goals {
            let seen: Vec<&Target> = runs
                .iter()
                .flat_map(|r| r.targets.iter().filter(|t| t.goal == goal))
                .collect();
            let met = seen.iter().filter(|t| t.met).count();
            let every_run = seen.iter().any(|t| t.every_run);
            combined.targets.push(Target {
                goal: goal.to_owned(),
                measured: seen
                    .iter()
                    .map(|t| t.measured.as_str())
                    .collect::<Vec<_>>()
                    .join(" | "),
                met: if every_run {
                    met == runs.len()
                } else {
                    2 * met > runs.len()
                },
                every_run,
                runs: Some((met, runs.len())),
            });
        }
        for run in &runs {
            for note in &run.notes {
                if !combined.notes.contains(note) {
                    combined.notes.push(note.clone());
                }
            }
        }
        combined
    }

    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub fn print(&self) {
        let spreads = self.rows.iter().any(|r| r.spread.is_some());
        println!(
            "{:<34} {:<28} {:>6} {:>10} {:>10} {:>10} {:>10} {:>6}{}  ratio (p50) to anchor",
            "workload",
            "mechanism",
            "count",
            "min",
            "p50",
            "p99",
            "max",
            "unit",
            if spreads { "   p50 over the runs" } else { "" }
        );
        for r in &self.rows {
            let s = &r.summary;
            let ratio = r
                .ratio
                .as_ref()
                .map_or(String::new(), |(x, anchor)| format!("{x:.2}x {anchor}"));
            let spread = r.spread.map_or(String::new(), |(low, high)| {
                format!("  {:>19}", format!("{low:.1} to {high:.1}"))
            });
            println!(
                "{:<34} {:<28} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6}{spread}  {ratio}",
                r.workload, r.mechanism, s.count, s.min, s.p50, s.p99, s.max, r.unit
            );
        }
        println!();
        for note in &self.notes {
            println!("{note}");
        }
        if !self.notes.is_empty() {
            println!();
        }
        for t in &self.targets {
            let verdict = if t.met { "met    " } else { "NOT MET" };
            let runs = t.runs.map_or(String::new(), |(met, of)| {
                let rule = if t.every_run {
                    "every run"
                } else {
                    "most runs"
                };
                format!(" [{met} of {of} runs, {rule}]")
            });
            println!("[{verdict}] {}: {}{runs}", t.goal, t.measured);
        }
    }

    pub fn to_json(&self, machine: &str, quick: bool) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "workload": r.workload, "mechanism": r.mechanism, "unit": r.unit,
                    "count": r.summary.count, "min": r.summary.min, "p50": r.summary.p50,
                    "p99": r.summary.p99, "max": r.summary.max,
                    "ratio_p50": r.ratio.as_ref().map(|x| x.0), "anchor": r.ratio.as_ref().map(|x| x.1.clone()),
                    "p50_low": r.spread.map(|x| x.0), "p50_high": r.spread.map(|x| x.1),
                })
            })
            .collect();
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| json!({"goal": t.goal, "measured": t.measured, "met": t.met, "every_run": t.every_run, "runs_met": t.runs.map(|x| x.0), "runs": t.runs.map(|x| x.1)}))
            .collect();
        json!({"machine": machine, "quick": quick, "rows": rows, "targets": targets, "notes": self.notes})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p50: f64, ratio: f64, met: bool) -> Report {
        let mut report = Report::default();
        let summary = Summary::of(&[p50]);
        report.add("w", "anchor", "us", Summary::of(&[p50 / ratio]));
        report.add("w", "ours", "us", summary);
        report.relate("w", "anchor");
        report.target("bound", format!("{p50}"), met);
        report.target_every_run("strict", format!("{p50}"), met);
        report
    }

    #[test]
    fn runs_combine_into_the_median_with_its_spread_and_verdicts() {
        let combined = Report::combine(vec![
            run(9.0, 1.2, true),
            run(7.0, 1.0, true),
            run(30.0, 3.0, false),
        ]);
        let ours = combined.find("w", "ours").unwrap();
        assert_eq!(ours.summary.p50, 9.0);
        assert_eq!(ours.spread, Some((7.0, 30.0)));
        assert!((ours.ratio.as_ref().unwrap().0 - 1.2).abs() < 1e-9);
        let verdict = |goal: &str| combined.targets.iter().find(|t| t.goal == goal).unwrap();
        assert!(verdict("bound").met, "two of three runs met it");
        assert_eq!(verdict("bound").runs, Some((2, 3)));
        assert!(!verdict("strict").met, "one run did not");
        assert_eq!(verdict("bound").measured, "9 | 7 | 30");
    }
}
