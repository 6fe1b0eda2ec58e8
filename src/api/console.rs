//! `/console`: the operator console, three files compiled into the binary (no CDN, no build
//! step). The page itself is public; everything it shows comes from `/v1` with the admin token
//! the operator signs in with. A strict Content-Security-Policy: only these files run.

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = include_str!("console/index.html");
const JS: &str = include_str!("console/console.js");
const CSS: &str = include_str!("console/console.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn file(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn page() -> impl IntoResponse {
    file(HTML, "text/html; charset=utf-8")
}

pub async fn script() -> impl IntoResponse {
    file(JS, "text/javascript; charset=utf-8")
}

pub async fn style() -> impl IntoResponse {
    file(CSS, "text/css; charset=utf-8")
}

/// The console's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
}
