//! The HTTP endpoint (hyper, HTTP/1.1): `GET /metrics` answers with the
//! exposition (503 until the router's first snapshot), in OpenMetrics when
//! the request's `Accept` names `application/openmetrics-text` (as
//! Prometheus' does), else in the text format 0.0.4; anything else is 404
//! (or 405 for another method).
//!
//! It runs beside the router on a thread of its own, with its own small
//! runtime, so that writing an exposition never takes the router's
//! thread; at most `max_connections` connections at once (the rest wait in
//! the listen backlog), each with a time limit for its request's headers
//! and one for its life, so a slow or hostile scraper holds only its own
//! connection, and not for long.

use super::{Format, MetricsConfig, Source};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Time a client has to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one connection may stay open, kept alive or not.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of Prometheus' text format.
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The format a request's `Accept` asks for: OpenMetrics when it names it
/// with a weight above 0, the text format otherwise.
fn negotiate(accept: Option<&str>) -> Format {
    let wants_openmetrics = accept.is_some_and(|accept| {
        accept.split(',').any(|choice| {
            let mut parts = choice.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    });
    if wants_openmetrics {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Binds the endpoint's address (an error here stops the start: the
/// administrator asked for it).
pub fn bind(config: &MetricsConfig) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves scrapes on `listener` from a thread of its own until `stop`.
pub fn spawn(
    listener: std::net::TcpListener,
    source: Source,
    config: MetricsConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ddm-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!("metrics endpoint: {e}"),
                };
                tokio::select! {
                    () = serve(listener, source, &config) => {}
                    () = stop.cancelled() => {}
                }
            })
        })?;
    Ok(())
}

async fn serve(listener: TcpListener, source: Source, config: &MetricsConfig) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let mut source = source.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&request, &mut source).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
            drop(permit);
        });
    }
}

async fn answer(request: &Request<Incoming>, source: &mut Source) -> Response<Full<Bytes>> {
    let accept = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    let format = negotiate(accept);
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => match source.render(format).await {
            Some(text) => (
                StatusCode::OK,
                match format {
                    Format::OpenMetrics => OPENMETRICS,
                    Format::Text => TEXT,
                },
                text,
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "the router has not taken a snapshot yet\n".to_owned(),
            ),
        },
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "ddm serves /metrics\n".to_owned(),
        ),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a response from valid parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_for_a_scraper_that_asks_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(negotiate(None), Format::Text);
    }
}
