//! The routes of groups, moved beside the router: it sends an order when a
//! group's carrier changes, and this task replaces each prefix's route
//! (one route a prefix, replaced in place: never a moment without one).
//! A route through an uplink goes to the gateway of the system's own route
//! through it (its DHCP default route); one through a point-to-point link
//! or a trigger device needs none.

use super::net::Net;
use crate::groups::config::Prefix;
use crate::ops::throttle::Throttle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where a group's routes go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOrder {
    pub group: String,
    pub prefixes: Vec<Prefix>,
    pub metric: u32,
    /// The link (or trigger device) they go through; None: removed.
    pub through: Option<Through>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Through {
    pub link: String,
    /// A trigger device: no gateway.
    pub trigger: bool,
}

/// How long an order waits for its device to appear (a trigger the
/// supervisor is making).
const DEVICE_PATIENCE: Duration = Duration::from_secs(2);

/// Starts the task; orders are applied in the order sent.
pub fn spawn(net: Net) -> mpsc::UnboundedSender<RouteOrder> {
    let (orders, mut receiver) = mpsc::unbounded_channel::<RouteOrder>();
    tokio::spawn(async move {
        let mut failures = Throttle::default();
        while let Some(order) = receiver.recv().await {
            if let Err(e) = apply(&net, &order).await {
                if let Some(suppressed) = failures.allow(Instant::now()) {
                    tracing::error!(
                        group = order.group,
                        suppressed,
                        "the group's routes could not be moved: {e}"
                    );
                }
            }
        }
    });
    orders
}

async fn apply(net: &Net, order: &RouteOrder) -> std::io::Result<()> {
    let Some(through) = &order.through else {
        for prefix in &order.prefixes {
            net.delete_route(prefix, order.metric).await?;
        }
        return Ok(());
    };
    let deadline = Instant::now() + DEVICE_PATIENCE;
    let index = loop {
        match net.index_of(&through.link).await? {
            Some(index) => break index,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            None => {
                return Err(std::io::Error::other(format!("no link {:?}", through.link)));
            }
        }
    };
    for prefix in &order.prefixes {
        let gateway = if through.trigger {
            None
        } else {
            net.gateway_through(index, prefix).await?
        };
        net.replace_route(prefix, order.metric, index, gateway)
            .await?;
    }
    tracing::info!(
        group = order.group,
        through = through.link,
        "group routes moved"
    );
    Ok(())
}
