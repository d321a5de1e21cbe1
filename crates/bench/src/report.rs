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
}

pub struct Target {
    pub goal: String,
    pub measured: String,
    pub met: bool,
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
        });
    }

    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub fn print(&self) {
        println!(
            "{:<34} {:<28} {:>6} {:>10} {:>10} {:>10} {:>10} {:>6}  ratio (p50) to anchor",
            "workload", "mechanism", "count", "min", "p50", "p99", "max", "unit"
        );
        for r in &self.rows {
            let s = &r.summary;
            let ratio = r
                .ratio
                .as_ref()
                .map_or(String::new(), |(x, anchor)| format!("{x:.2}x {anchor}"));
            println!(
                "{:<34} {:<28} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6}  {ratio}",
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
            println!("[{verdict}] {}: {}", t.goal, t.measured);
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
                })
            })
            .collect();
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| json!({"goal": t.goal, "measured": t.measured, "met": t.met}))
            .collect();
        json!({"machine": machine, "quick": quick, "rows": rows, "targets": targets, "notes": self.notes})
    }
}
