//! A monitor's figures as the protocol carries them (`ddm health`,
//! mprapi's `health`).

use super::monitor::Figures;
use ddm_proto::message::{InterfaceHealth, TargetHealth};
use ddm_proto::model::unix_ns;
use std::time::Duration;

fn micros(duration: Option<Duration>) -> Option<u64> {
    duration.map(|d| d.as_micros() as u64)
}

pub fn interface_health(
    name: &str,
    handle: u32,
    table: &str,
    figures: &Figures,
) -> InterfaceHealth {
    InterfaceHealth {
        name: name.into(),
        handle,
        table: table.into(),
        verdict: figures.verdict.name().into(),
        rtt_us: micros(figures.rtt),
        loss_percent: figures.loss_percent,
        jitter_us: micros(figures.jitter),
        last_pass_unix_ns: figures.last_pass.map_or(0, unix_ns),
        probes_sent: figures.probes_sent,
        probes_lost: figures.probes_lost,
        rounds: figures.rounds,
        targets: figures
            .targets
            .iter()
            .map(|t| TargetHealth {
                target: t.target.clone(),
                rtt_us: micros(t.rtt),
                loss_percent: t.loss_percent,
                jitter_us: micros(t.jitter),
                answered_last: t.answered_last,
            })
            .collect(),
    }
}
