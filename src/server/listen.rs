//! The accept loop: HTTP/1.1 connections under a bound, each with header,
//! keep-alive and (in the handler) body deadlines, so a client that sends
//! slowly or not at all holds a connection only briefly, and each request
//! head checked by `server::guard` before hyper parses it. Every connection
//! the server gives up on is counted in `http_connections_dropped_total`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::guard::Guarded;
use super::head;
use crate::config::ServerConfig;

/// Why the server closed a connection before its client did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The request headers were not complete within `header_read_timeout_ms`.
    HeaderTimeout,
    /// The next request on a kept-alive connection did not start within
    /// `keep_alive_timeout_ms`.
    KeepAliveTimeout,
    /// The body was not complete within `body_read_timeout_ms` (answered 408).
    BodyTimeout,
    /// `max_connections` were already open.
    ConnectionLimit,
    /// A request head was refused before hyper read it (answered with a
    /// JSON error: see `server::guard`).
    BadHead,
}

impl Dropped {
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::HeaderTimeout => "header_timeout",
            Dropped::KeepAliveTimeout => "keep_alive_timeout",
            Dropped::BodyTimeout => "body_timeout",
            Dropped::ConnectionLimit => "connection_limit",
            Dropped::BadHead => "bad_head",
        }
    }

    pub fn count(self) {
        metrics::counter!("http_connections_dropped_total", "reason" => self.reason()).increment(1);
    }
}

/// How long to back off after a failed `accept` (out of file descriptors,
/// say) before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting (closing the listener), lets every open connection finish its
/// request and returns once all are closed, or when
/// `server.shutdown_grace_ms` is over; the caller then ends the process,
/// which closes whatever is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let http = http1(config);
    let shared = Arc::new(config.clone());
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Dropped::ConnectionLimit.count();
            drop(stream);
            continue;
        };
        let connection = serve_connection(http.clone(), stream, shared.clone(), router.clone(), stopping.clone());
        tokio::spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    // Closed now, not when this function returns: a client connecting
    // while requests drain is refused at once instead of waiting in the
    // backlog for an accept that never comes.
    drop(listener);
    tracing::info!("stopped accepting connections");
    let _ = stop.send(true);
    // Every connection holds a slot until it ends: having them all back
    // means every connection is closed.
    let all_closed = slots.acquire_many(config.max_connections as u32);
    if tokio::time::timeout(config.shutdown_grace(), all_closed).await.is_err() {
        let open = config.max_connections - slots.available_permits();
        tracing::warn!(
            open,
            grace_ms = config.shutdown_grace_ms,
            "shutdown grace over: closing connections still open"
        );
    }
    Ok(())
}

/// hyper's parser, with room for any head the guard lets through, so only
/// the guard ever refuses one.
fn http1(config: &ServerConfig) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout())
        .max_buf_size(2 * head::max_head_bytes(config))
        .max_headers(head::max_head_headers(config));
    http
}

/// Requests in flight on one connection, and whether any was served yet:
/// a connection is idle between requests, not before its first one (the
/// header timeout covers that).
#[derive(Clone, Copy, Default)]
struct Activity {
    in_flight: usize,
    served: bool,
}

/// Marks a request in flight for as long as it lives.
struct InFlight(watch::Sender<Activity>);

impl InFlight {
    fn new(activity: &watch::Sender<Activity>) -> Self {
        activity.send_modify(|a| a.in_flight += 1);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.in_flight -= 1;
            a.served = true;
        });
    }
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    config: Arc<ServerConfig>,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let keep_alive = config.keep_alive_timeout();
    let (stream, mut refused) = Guarded::new(stream, config);
    let (activity, mut changes) = watch::channel(Activity::default());
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::new(&activity);
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(in_flight);
            response
        }
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        let now = *changes.borrow_and_update();
        let idle = now.in_flight == 0 && now.served && !closing;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    if error.is_timeout() {
                        Dropped::HeaderTimeout.count();
                    }
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = changes.changed() => {}
            () = tokio::time::sleep(keep_alive), if idle => {
                Dropped::KeepAliveTimeout.count();
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = refused.wait_for(|refused| *refused), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
