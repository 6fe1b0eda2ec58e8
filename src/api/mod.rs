//! The HTTP surface: routes and their OpenAPI document in one place (utoipa-axum's
//! `OpenApiRouter` + `routes!`, so a route cannot exist without its docs), the bearer-token
//! check on `/v1`, Swagger UI at `/docs`, the document at `/openapi.json`, and health.

pub mod alarms;
pub mod auth;
pub mod console;
pub mod dead_letters;
pub mod deliveries;
pub mod devices;
pub mod docs;
pub mod health;
pub mod inbox;
pub mod metrics;
pub mod overview;
pub mod params;
pub mod watchers;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use secrecy::{ExposeSecret, SecretString};

use auth::{ApiToken, Auth, Scope};

use crate::AppState;
use crate::ingress;
use crate::web::{ApiError, BodyLimit};

/// The HTTP listener's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "ALLIM_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Comma-separated bearer tokens, each `send:TOKEN`, `app:TOKEN` or `admin:TOKEN` (a bare
    /// TOKEN has every scope). When set, every `/v1` request needs `Authorization: Bearer` with
    /// a token whose scope allows the route.
    #[arg(
        long,
        env = "ALLIM_API_TOKENS",
        value_delimiter = ',',
        value_parser = crate::settings::Secret(ApiToken::parse),
        hide_env_values = true,
        global = true
    )]
    pub api_tokens: Vec<ApiToken>,

    /// Secret (≥ 32 characters) of the user tokens your backend mints for the app: HS256 JWTs
    /// with `sub` = the user id and `exp`; each opens only that user's inbox and devices.
    #[arg(long, env = "ALLIM_APP_TOKEN_SECRET", hide_env_values = true, global = true)]
    pub app_token_secret: Option<SecretString>,

    /// Serve `/v1` without tokens on a non-loopback address (something else must guard the
    /// port). Without it, allim refuses to start open to the network.
    #[arg(long, env = "ALLIM_ALLOW_ANONYMOUS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_anonymous: bool,

    /// Largest accepted request body in bytes for one notification (batches get 16×, at most 8 MiB).
    #[arg(long, env = "ALLIM_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    pub max_body_bytes: usize,
}

impl ApiArgs {
    /// True when no token is configured: `/v1` is served to whoever reaches the port.
    pub fn is_open(&self) -> bool {
        self.api_tokens.is_empty() && self.app_token_secret.is_none()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let open = self.is_open();
        if open && !self.listen.ip().is_loopback() && !self.allow_anonymous {
            anyhow::bail!(
                "ALLIM_API_TOKENS is empty and ALLIM_LISTEN ({}) is not a loopback address: /v1 would be open to \
                 anyone who reaches the port (send SMS, read inboxes). Set ALLIM_API_TOKENS (e.g. send:…,admin:…), \
                 or ALLIM_ALLOW_ANONYMOUS=true if something else guards the port",
                self.listen
            );
        }
        if let Some(secret) = &self.app_token_secret
            && secret.expose_secret().len() < 32
        {
            anyhow::bail!("ALLIM_APP_TOKEN_SECRET must be at least 32 characters");
        }
        for (i, token) in self.api_tokens.iter().map(|t| t.secret.expose_secret()).enumerate() {
            if token.trim().len() < 16 {
                anyhow::bail!(
                    "ALLIM_API_TOKENS: token #{} is shorter than 16 characters (tokens are secrets; use random ones)",
                    i + 1
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                anyhow::bail!("ALLIM_API_TOKENS: token #{} contains white space", i + 1);
            }
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            anyhow::bail!("ALLIM_MAX_BODY_BYTES must be between 1024 and 16777216");
        }
        Ok(())
    }

    /// Largest body for a batch request.
    pub fn max_batch_body_bytes(&self) -> usize {
        (self.max_body_bytes * 16).min(8 * 1024 * 1024)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "allim",
        description = "allim (알림) accepts notifications over HTTP, SQS and SNS, stores every one, and delivers \
it to the in-app inbox, push (FCM), SMS (Naver Cloud SENS) or Slack.\n\n\
Errors always have the shape `{\"error\": code, \"field\": json-path?, \"message\": text}`.\n\n\
When `ALLIM_API_TOKENS` is set, every `/v1` request needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "notifications", description = "Send notifications"),
        (name = "deliveries", description = "What happened to a notification"),
        (name = "inbox", description = "A user's in-app inbox, for the app"),
        (name = "devices", description = "Push device registry"),
        (name = "dead letters", description = "Deliveries given up and messages rejected; redrive"),
        (name = "sns", description = "The SNS webhook (CloudWatch alarms and notifications)"),
        (name = "alarms", description = "Alarm history and silences"),
        (name = "health", description = "Liveness, readiness and metrics"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // utoipa fills the license from Cargo.toml at compile time; allim states none.
        openapi.info.license = None;
        // The error codes, from the one list in `ApiError`.
        let codes: Vec<String> = ApiError::CODES.iter().map(|(c, m)| format!("- `{c}`: {m}")).collect();
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str("\n\nError codes:\n");
        description.push_str(&codes.join("\n"));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the tokens in ALLIM_API_TOKENS"))
                    .build(),
            ),
        );
    }
}

/// The `/v1` routes with their OpenAPI description, each group behind the scope it needs.
fn v1_routes(config: &ApiArgs) -> OpenApiRouter<AppState> {
    let auth = Auth::new(&config.api_tokens, config.app_token_secret.as_ref());
    let guard = |scope: Scope| {
        let auth = auth.clone();
        middleware::from_fn(move |req: Request, next: Next| auth::require(auth.clone(), scope, req, next))
    };
    let single = config.max_body_bytes;
    let batch = config.max_batch_body_bytes();
    let send = OpenApiRouter::new()
        .routes(routes!(ingress::http::send_notification))
        .layer(DefaultBodyLimit::max(single))
        .layer(axum::Extension(BodyLimit(single)));
    let send_batch = OpenApiRouter::new()
        .routes(routes!(ingress::http::send_batch))
        .layer(DefaultBodyLimit::max(batch))
        .layer(axum::Extension(BodyLimit(batch)));
    let send = OpenApiRouter::new()
        .merge(send)
        .merge(send_batch)
        .layer(guard(Scope::Send));
    let app = OpenApiRouter::new()
        .routes(routes!(inbox::list))
        .routes(routes!(inbox::unread_count))
        .routes(routes!(inbox::mark_read))
        .routes(routes!(inbox::mark_all_read))
        .routes(routes!(devices::register, devices::list))
        .routes(routes!(devices::remove))
        .layer(guard(Scope::App));
    let admin = OpenApiRouter::new()
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::search))
        .routes(routes!(overview::overview))
        .routes(routes!(watchers::list))
        .routes(routes!(watchers::poll))
        .routes(routes!(alarms::list_alarms))
        .routes(routes!(alarms::test_rules))
        .routes(routes!(alarms::create_silence, alarms::list_silences))
        .routes(routes!(alarms::delete_silence))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::redrive))
        .routes(routes!(dead_letters::redrive_bulk))
        .layer(guard(Scope::Admin));
    OpenApiRouter::new().merge(send).merge(app).merge(admin)
}

/// The OpenAPI document (also used by the snapshot test).
pub fn openapi(config: &ApiArgs) -> utoipa::openapi::OpenApi {
    build(config).1
}

/// Routes and document together; the token check wraps only the `/v1` routes.
fn build(config: &ApiArgs) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = v1_routes(config);
    let sns = OpenApiRouter::new()
        .routes(routes!(ingress::sns::webhook))
        .layer(DefaultBodyLimit::max(ingress::sns::MAX_BODY))
        .layer(axum::Extension(BodyLimit(ingress::sns::MAX_BODY)));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(sns)
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .split_for_parts()
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = build(&state.api);
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .merge(docs::routes(doc))
        .merge(console::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let path = log_path(req.uri().path());
                    tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
                })
                .on_request(())
                .on_response(access_log),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The access log line. Answered requests are logged at DEBUG: under load a line per request at
/// INFO cost ~6 % of the SNS webhook's CPU (bench/README.md), and the ALB's access logs and the
/// `allim_*` metrics already count them. Refusals (4xx) are logged at INFO and server errors at
/// WARN, so what needs a look is still in the default log.
fn access_log(res: &axum::response::Response, latency: Duration, _span: &tracing::Span) {
    let status = res.status().as_u16();
    // Rounded to the microsecond, so the line reads 0.211, not 0.21146399999999999.
    let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1000.0;
    if res.status().is_server_error() {
        tracing::warn!(status, latency_ms, "answered with a server error");
    } else if res.status().is_client_error() {
        tracing::info!(status, latency_ms, "refused the request");
    } else {
        tracing::debug!(status, latency_ms, "answered");
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is described at /docs")
}

/// The path as logged: a push token in `/v1/users/{userId}/devices/{token}` is masked (tokens
/// are credentials of a kind).
fn log_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.split_once("/devices/") {
        Some((head, token)) if path.starts_with("/v1/users/") && !token.is_empty() => {
            std::borrow::Cow::Owned(format!("{head}/devices/{}", crate::telemetry::mask(token)))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_tokens_are_masked_in_logged_paths() {
        assert_eq!(
            super::log_path("/v1/users/42/devices/fMEP0vJqS0Kx:APA91bHsecret"),
            "/v1/users/42/devices/**********************cret"
        );
        assert_eq!(super::log_path("/v1/users/42/devices"), "/v1/users/42/devices");
        assert_eq!(super::log_path("/v1/notifications"), "/v1/notifications");
    }
}
