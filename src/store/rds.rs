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

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlConnectOptions;
use tokio_util::sync::CancellationToken;

/// Where and how to reach the database: the options from `DATABASE_URL` and the TLS settings,
/// without a password (the token is added to a copy for each refresh).
#[derive(Debug, Clone)]
pub struct MySqlTarget {
    pub options: MySqlConnectOptions,
}

impl MySqlTarget {
    pub fn host(&self) -> &str {
        self.options.get_host()
    }

    pub fn port(&self) -> u16 {
        self.options.get_port()
    }

    pub fn user(&self) -> &str {
        self.options.get_username()
    }
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
/// The token goes through the `mysql_clear_password` plugin, which is only ever enabled
/// together with TLS (the configuration refuses IAM auth without `ALLIM_DB_TLS`).
pub async fn fresh_options(target: &MySqlTarget, tokens: &dyn TokenSource) -> anyhow::Result<MySqlConnectOptions> {
    let token = tokens.token().await?;
    Ok(target.options.clone().password(&token).enable_cleartext_plugin(true))
}

/// Refreshes the pool's token every `every` until shutdown. A failed refresh is retried after
/// 30 s (the current token is still good for at least 5 minutes).
pub async fn run_token_refresh(
    pool: MySqlPool,
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

    struct Fixed;

    impl TokenSource for Fixed {
        fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
            Box::pin(async { Ok("proxy:3306/?Action=connect&DBUser=app_user&X-Amz-Signature=ab+/=".to_string()) })
        }
    }

    #[tokio::test]
    async fn fresh_options_keep_the_target() {
        use std::str::FromStr;
        let options = MySqlConnectOptions::from_str(
            "mysql://app_user@proxy.proxy-abc.ap-northeast-2.rds.amazonaws.com:3306/allim",
        )
        .unwrap()
        .ssl_mode(sqlx::mysql::MySqlSslMode::VerifyIdentity);
        let target = MySqlTarget { options };
        let fresh = fresh_options(&target, &Fixed).await.unwrap();
        assert_eq!(fresh.get_host(), "proxy.proxy-abc.ap-northeast-2.rds.amazonaws.com");
        assert_eq!(fresh.get_port(), 3306);
        assert_eq!(fresh.get_username(), "app_user");
        assert_eq!(fresh.get_database(), Some("allim"));
        assert!(matches!(
            fresh.get_ssl_mode(),
            sqlx::mysql::MySqlSslMode::VerifyIdentity
        ));
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
            options: std::str::FromStr::from_str("mysql://peccy@prod-instance.us-east-1.rds.amazonaws.com:3306/db")
                .unwrap(),
        };
        let token = IamTokens::with_sdk_config(&target, sdk).unwrap().token().await.unwrap();
        assert_eq!(
            token,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }
}
