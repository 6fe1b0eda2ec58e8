//! MySQL behind RDS Proxy: TLS that verifies the proxy's identity, and IAM authentication.
//!
//! With `ALLIM_DB_IAM_AUTH=true` the password is an IAM auth token (aws-sdk-rds
//! `auth_token`): a SigV4-presigned `connect` URL, valid for 15 minutes, sent through the
//! `mysql_clear_password` plugin — only ever over TLS (`ALLIM_DB_TLS`). Only new connections
//! authenticate, so [`run_token_refresh`] makes a fresh token every `ALLIM_DB_IAM_REFRESH`
//! (default 10 minutes, well inside the 15) and hands it to the pool with
//! `Pool::set_connect_options`; open connections stay as they are.
//!
//! RDS Proxy presents Amazon Trust Services certificates, so the CA is `AmazonRootCA1.pem`
//! (bundled in the image at `/etc/allim/AmazonRootCA1.pem`), not the RDS CA bundle.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use sqlx::AnyPool;
use sqlx::any::AnyConnectOptions;
use tokio_util::sync::CancellationToken;

/// Where and how to reach the database.
#[derive(Debug, Clone)]
pub struct MySqlTarget {
    /// `DATABASE_URL` (for IAM auth: with no password).
    pub url: reqwest::Url,
    /// Verify the server certificate and host name against this CA file.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Send the password with the cleartext plugin (IAM tokens).
    pub cleartext: bool,
}

impl MySqlTarget {
    /// The connection URL with `password` (percent-encoded) and the TLS / cleartext parameters.
    pub fn url_with_password(&self, password: Option<&str>) -> String {
        let mut url = self.url.clone();
        if let Some(p) = password {
            // set_password percent-encodes what the userinfo needs; sqlx decodes it again.
            let _ = url.set_password(Some(&percent_encode(p)));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(ca) = &self.tls_ca {
                q.append_pair("ssl-mode", "VERIFY_IDENTITY");
                q.append_pair("ssl-ca", &ca.display().to_string());
            }
            if self.cleartext {
                q.append_pair("enable-cleartext-plugin", "true");
            }
        }
        url.to_string()
    }

    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.url.port().unwrap_or(3306)
    }

    pub fn user(&self) -> &str {
        self.url.username()
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Something that makes database passwords (IAM tokens in production; a stub in tests).
pub trait TokenSource: Send + Sync {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>>;
}

/// IAM auth tokens from aws-sdk-rds, with the standard AWS chain (the ECS task role).
pub struct IamTokens {
    generator: aws_sdk_rds::auth_token::AuthTokenGenerator,
    sdk: aws_config::SdkConfig,
}

impl IamTokens {
    pub async fn new(target: &MySqlTarget) -> anyhow::Result<Self> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::with_sdk_config(target, sdk)
    }

    pub fn with_sdk_config(target: &MySqlTarget, sdk: aws_config::SdkConfig) -> anyhow::Result<Self> {
        let mut cfg = aws_sdk_rds::auth_token::Config::builder()
            .hostname(target.host())
            .port(u64::from(target.port()))
            .username(target.user());
        if let Some(region) = sdk.region() {
            cfg = cfg.region(region.clone());
        }
        let generator = aws_sdk_rds::auth_token::AuthTokenGenerator::new(
            cfg.build().map_err(|e| anyhow::anyhow!("ALLIM_DB_IAM_AUTH: {e}"))?,
        );
        Ok(IamTokens { generator, sdk })
    }
}

impl TokenSource for IamTokens {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let token = self
                .generator
                .auth_token(&self.sdk)
                .await
                .map_err(|e| anyhow::anyhow!("generating the RDS IAM auth token: {e}"))?;
            Ok(token.as_str().to_string())
        })
    }
}

/// The connect options for the next connections, with a fresh token.
pub async fn fresh_options(target: &MySqlTarget, tokens: &dyn TokenSource) -> anyhow::Result<AnyConnectOptions> {
    let token = tokens.token().await?;
    AnyConnectOptions::from_str(&target.url_with_password(Some(&token))).context("building the database URL")
}

/// Refreshes the pool's token every `every` until shutdown. A failed refresh is retried after
/// 30 s (the current token is still good for at least 5 minutes).
pub async fn run_token_refresh(
    pool: AnyPool,
    target: MySqlTarget,
    tokens: Arc<dyn TokenSource>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut wait = every;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match fresh_options(&target, tokens.as_ref()).await {
            Ok(options) => {
                pool.set_connect_options(options);
                tracing::debug!("database IAM token refreshed");
                wait = every;
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not refresh the database IAM token; retrying in 30s"
                );
                wait = Duration::from_secs(30).min(every);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(tls: bool, cleartext: bool) -> MySqlTarget {
        MySqlTarget {
            url: reqwest::Url::parse("mysql://app_user@proxy.proxy-abc.ap-northeast-2.rds.amazonaws.com:3306/allim")
                .unwrap(),
            tls_ca: tls.then(|| "/etc/allim/AmazonRootCA1.pem".into()),
            cleartext,
        }
    }

    #[test]
    fn url_carries_token_tls_and_cleartext() {
        let token = "proxy:3306/?Action=connect&DBUser=app_user&X-Amz-Signature=ab+/=";
        let url = target(true, true).url_with_password(Some(token));
        assert!(url.starts_with("mysql://app_user:"), "{url}");
        assert!(url.contains("ssl-mode=VERIFY_IDENTITY"));
        assert!(url.contains("ssl-ca=%2Fetc%2Fallim%2FAmazonRootCA1.pem"));
        assert!(url.contains("enable-cleartext-plugin=true"));
        // sqlx decodes the password back to the exact token.
        let parsed = reqwest::Url::parse(&url).unwrap();
        let decoded = percent_decode(parsed.password().unwrap());
        assert_eq!(decoded, token);
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// aws-sdk-rds's own test vector (awslabs/aws-sdk-rust `sdk/rds/src/auth_token.rs`), through
    /// allim's wrapper: the host, port and user from the URL, the region from the SDK config.
    #[tokio::test]
    async fn iam_token_matches_the_sdk_vector() {
        use aws_sdk_rds::config::{Credentials, Region, SharedCredentialsProvider};
        let sdk = aws_config::SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "akid", "secret", None, None, "test",
            )))
            .time_source(aws_smithy_async::time::StaticTimeSource::new(
                std::time::UNIX_EPOCH + Duration::from_secs(1_724_709_600),
            ))
            .region(Region::new("us-east-1"))
            .build();
        let target = MySqlTarget {
            url: reqwest::Url::parse("mysql://peccy@prod-instance.us-east-1.rds.amazonaws.com:3306/db").unwrap(),
            tls_ca: None,
            cleartext: true,
        };
        let token = IamTokens::with_sdk_config(&target, sdk).unwrap().token().await.unwrap();
        assert_eq!(
            token,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }
}
