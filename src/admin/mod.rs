//! The admin HTTP endpoint, on its own address ([`Config::admin_addr`]), never
//! the game port:
//!
//! - `GET /metrics`: every metric in the Prometheus text format;
//! - `GET /stats`: a JSON [`Summary`] for humans and scripts;
//! - `GET /healthz`: 200 while the process serves HTTP at all;
//! - `GET /readyz`: 200 while the server takes connections, 503 while it is
//!   starting and once it drains for shutdown;
//! - `GET /cluster`: with `--cluster`, this node's view of the cluster (its
//!   id, whether NATS is up, the live nodes, the rooms owned here and the
//!   rooms it is an edge for), as JSON; 404 otherwise;
//! - the web pages ([`pages`]): `GET /` the live console, `GET /play` the
//!   playground, `GET /assets/…` their scripts and style, and `GET /endpoints`
//!   where the pages find the WebSocket listener.
//!
//! [`Config::admin_addr`]: crate::Config::admin_addr
//! [`Summary`]: crate::overload::Summary

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::overload::Monitor;

pub mod pages;

pub use pages::Pages;

/// Serves the endpoint on `listener` until `stop` is cancelled; `pages` says
/// what the web pages need to know of the server.
pub async fn serve(listener: TcpListener, monitor: Arc<Monitor>, pages: Pages, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/cluster", get(cluster))
        .with_state(monitor)
        .merge(pages::router(pages));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    if let Err(e) = served {
        warn!(error = %e, "admin endpoint failed");
    }
}

async fn metrics(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        monitor.stats().encode(),
    )
}

async fn stats(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    Json(monitor.summary())
}

async fn cluster(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    match monitor.stats().cluster_report() {
        Some(report) => (StatusCode::OK, Json(report)).into_response(),
        None => (StatusCode::NOT_FOUND, "not in a cluster (see --cluster)\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    if monitor.stats().ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
