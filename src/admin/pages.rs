//! The web pages, served by the admin endpoint from files built into the
//! binary (`web/dist/`, made by `npm run build` in `web/`, so that building the
//! server needs no Node):
//!
//! - `GET /`: the live console (rooms and members, message rate, overload
//!   level, world tick time, connections);
//! - `GET /play`: the playground (chat in a room, walk in a world);
//! - `GET /assets/{file}`: their scripts and style sheet;
//! - `GET /endpoints`: JSON telling the pages where the WebSocket listener is
//!   (`{"ws_url": "ws://127.0.0.1:4002/"}`, or `null` when it is off).
//!
//! The pages talk to the server over the WebSocket listener, whose Origin
//! allow-list takes the admin endpoint's own origins by default.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

/// What the pages need to know of the server, given by whoever starts the
/// admin endpoint.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Pages {
    /// The WebSocket listener's URL (`ws://host:port/`), if it listens.
    ws_url: Option<String>,
}

impl Pages {
    /// Pages whose client connects to `ws_url` (`None`: the WebSocket listener is off).
    pub fn new(ws_url: Option<String>) -> Pages {
        Pages { ws_url }
    }
}

/// One built file: its type and its bytes.
struct Asset {
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const CONSOLE: Asset = Asset {
    content_type: HTML,
    body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/console.html")),
};
const PLAYGROUND: Asset = Asset {
    content_type: HTML,
    body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/play.html")),
};

/// The files under `/assets/`, by name.
const ASSETS: &[(&str, Asset)] = &[
    (
        "console.js",
        Asset {
            content_type: JS,
            body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/console.js")),
        },
    ),
    (
        "play.js",
        Asset {
            content_type: JS,
            body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/play.js")),
        },
    ),
    (
        "style.css",
        Asset {
            content_type: CSS,
            body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/style.css")),
        },
    ),
];

/// Where the pages may load from and connect to: this endpoint, and any
/// WebSocket (the listener is on another port, perhaps another host name).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The routes of the pages.
pub(super) fn router(pages: Pages) -> Router {
    Router::new()
        .route("/", get(console))
        .route("/play", get(playground))
        .route("/assets/{file}", get(asset))
        .route("/endpoints", get(endpoints))
        .with_state(Arc::new(pages))
}

async fn console() -> Response {
    serve(&CONSOLE)
}

async fn playground() -> Response {
    serve(&PLAYGROUND)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _)| *name == file) {
        Some((_, asset)) => serve(asset),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

async fn endpoints(State(pages): State<Arc<Pages>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(pages.as_ref().clone()))
}

/// `asset` with headers that keep browsers from caching a stale build or
/// guessing another type.
fn serve(asset: &Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_assets_that_are_served() {
        for page in [CONSOLE.body, PLAYGROUND.body] {
            for reference in page.split("/assets/").skip(1) {
                let name = reference.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(served, _)| *served == name),
                    "a page loads /assets/{name}, which is not served"
                );
            }
        }
    }

    #[test]
    fn endpoints_say_null_when_the_listener_is_off() {
        let off = serde_json::to_string(&Pages::new(None)).unwrap_or_default();
        assert_eq!(off, r#"{"ws_url":null}"#);
        let on = serde_json::to_string(&Pages::new(Some("ws://127.0.0.1:4002/".into()))).unwrap_or_default();
        assert_eq!(on, r#"{"ws_url":"ws://127.0.0.1:4002/"}"#);
    }
}
