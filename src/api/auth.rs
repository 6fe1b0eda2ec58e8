//! Who may call `/v1`: bearer tokens with scopes.
//!
//! - `send`: `POST /v1/notifications` and `/batch` (a producer service);
//! - `app`: one user's inbox and devices (`/v1/users/{userId}/…`) — either a static `app:`
//!   token (a backend-for-frontend acting for any user), or a short-lived **user token** the
//!   backend mints: an HS256 JWT signed with `ALLIM_APP_TOKEN_SECRET`, whose `sub` is the user id
//!   and which must carry `exp`; it opens only that user's paths;
//! - `admin`: everything, including deliveries, dead letters and redrive, alarms and silences.
//!
//! A token written without a scope (`ALLIM_API_TOKENS=abc…`) has every scope, as before scopes
//! existed. Comparisons are constant-time; tokens never reach a log line.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::web::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Send,
    App,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::App => "app",
            Scope::Admin => "admin",
        }
    }
}

/// One configured bearer token and its scope (`None`: every scope).
#[derive(Clone)]
pub struct ApiToken {
    pub scope: Option<Scope>,
    pub secret: SecretString,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            Some(s) => write!(f, "{}:***", s.as_str()),
            None => f.write_str("***"),
        }
    }
}

impl ApiToken {
    /// `send:TOKEN`, `app:TOKEN`, `admin:TOKEN`, or a bare `TOKEN` (every scope).
    pub fn parse(s: &str) -> Result<ApiToken, String> {
        let s = s.trim();
        let (scope, secret) = match s.split_once(':') {
            Some(("send", t)) => (Some(Scope::Send), t),
            Some(("app", t)) => (Some(Scope::App), t),
            Some(("admin", t)) => (Some(Scope::Admin), t),
            Some((other, _)) if other.len() < 16 && other.chars().all(|c| c.is_ascii_alphabetic()) => {
                return Err(format!("unknown scope {other:?}: use send:, app: or admin:"));
            }
            _ => (None, s),
        };
        Ok(ApiToken {
            scope,
            secret: SecretString::from(secret),
        })
    }

    fn allows(&self, needed: Scope) -> bool {
        match self.scope {
            None | Some(Scope::Admin) => true,
            Some(s) => s == needed,
        }
    }
}

/// The claims of a user token.
#[derive(serde::Deserialize)]
struct UserClaims {
    sub: String,
}

/// The token check of the `/v1` routes.
pub struct Auth {
    tokens: Vec<ApiToken>,
    user_tokens: Option<jsonwebtoken::DecodingKey>,
}

impl Auth {
    pub fn new(tokens: &[ApiToken], user_token_secret: Option<&SecretString>) -> Arc<Self> {
        Arc::new(Auth {
            tokens: tokens.to_vec(),
            user_tokens: user_token_secret
                .map(|s| jsonwebtoken::DecodingKey::from_secret(s.expose_secret().as_bytes())),
        })
    }

    /// No token configured at all: `/v1` is open (only allowed on loopback, or explicitly).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.user_tokens.is_none()
    }

    /// Whether `presented` may call a route that needs `needed`; for a user token, `user` is
    /// the path's `{userId}`.
    fn check(&self, presented: Option<&str>, needed: Scope, user: Option<&str>) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let presented = presented.ok_or(ApiError::Unauthorized)?;
        let matched = self
            .tokens
            .iter()
            .find(|t| bool::from(t.secret.expose_secret().as_bytes().ct_eq(presented.as_bytes())));
        if let Some(token) = matched {
            return if token.allows(needed) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "this token's scope ({}) does not allow this; it needs {}",
                    token.scope.map_or("all", Scope::as_str),
                    needed.as_str()
                )))
            };
        }
        if let Some(key) = &self.user_tokens {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_required_spec_claims(&["exp", "sub"]);
            if let Ok(data) = jsonwebtoken::decode::<UserClaims>(presented, key, &validation) {
                return match (needed, user) {
                    (Scope::App, Some(u)) if u == data.claims.sub => Ok(()),
                    (Scope::App, Some(_)) => Err(ApiError::Forbidden(
                        "a user token opens only its own user's paths".into(),
                    )),
                    _ => Err(ApiError::Forbidden(format!(
                        "a user token does not allow this; it needs {}",
                        needed.as_str()
                    ))),
                };
            }
        }
        Err(ApiError::Unauthorized)
    }
}

/// The `{userId}` of a `/v1/users/{userId}/…` path, percent-decoded.
fn path_user(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/users/")?;
    let segment = rest.split('/').next()?;
    percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}

/// Middleware: the request needs a token allowing `needed`.
pub async fn require(auth: Arc<Auth>, needed: Scope, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let user = path_user(req.uri().path());
    match auth.check(presented, needed, user.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(sub: &str, exp: i64, secret: &str) -> String {
        #[derive(serde::Serialize)]
        struct C<'a> {
            sub: &'a str,
            exp: i64,
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &C { sub, exp },
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn scopes_limit_what_a_token_opens() {
        let tokens: Vec<ApiToken> = [
            "send:sendsendsendsend1",
            "admin:adminadminadmin12",
            "plainplainplain123",
        ]
        .iter()
        .map(|t| ApiToken::parse(t).unwrap())
        .collect();
        assert_eq!(format!("{:?}", tokens), "[send:***, admin:***, ***]");
        let secret = SecretString::from("user-token-secret-0123456789");
        let auth = Auth::new(&tokens, Some(&secret));
        let ok = |t: &str, scope, user: Option<&str>| auth.check(Some(t), scope, user);
        assert_eq!(ok("sendsendsendsend1", Scope::Send, None), Ok(()));
        assert!(matches!(
            ok("sendsendsendsend1", Scope::Admin, None),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            ok("sendsendsendsend1", Scope::App, Some("42")),
            Err(ApiError::Forbidden(_))
        ));
        assert_eq!(ok("adminadminadmin12", Scope::App, Some("42")), Ok(()));
        assert_eq!(ok("plainplainplain123", Scope::Admin, None), Ok(()), "no scope: all");
        assert_eq!(auth.check(None, Scope::Send, None), Err(ApiError::Unauthorized));
        assert_eq!(ok("nope", Scope::Send, None), Err(ApiError::Unauthorized));

        let later = chrono::Utc::now().timestamp() + 600;
        let user42 = jwt("42", later, "user-token-secret-0123456789");
        assert_eq!(ok(&user42, Scope::App, Some("42")), Ok(()));
        assert!(matches!(
            ok(&user42, Scope::App, Some("43")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(ok(&user42, Scope::Send, None), Err(ApiError::Forbidden(_))));
        let expired = jwt(
            "42",
            chrono::Utc::now().timestamp() - 600,
            "user-token-secret-0123456789",
        );
        assert_eq!(ok(&expired, Scope::App, Some("42")), Err(ApiError::Unauthorized));
        let forged = jwt("42", later, "another-secret-0123456789abcd");
        assert_eq!(ok(&forged, Scope::App, Some("42")), Err(ApiError::Unauthorized));
        assert!(ApiToken::parse("root:abcdefabcdefabcdef").is_err());
        assert_eq!(path_user("/v1/users/a%20b/notifications").as_deref(), Some("a b"));
    }
}
