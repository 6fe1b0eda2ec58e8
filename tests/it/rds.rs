//! RDS Proxy IAM authentication, against MariaDB: the token is the password, the pool is
//! handed a fresh one on a timer, and connections opened after a refresh use it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use allim::config::Config;
use allim::store::Store;
use allim::store::rds::TokenSource;
use futures::future::BoxFuture;
use sqlx::Connection;

use crate::helpers::{Db, TestDb, mysql_server_url};
use crate::support::eventually;

/// Stands in for IAM: hands out whatever password the test has set on the MariaDB user.
struct Tokens(Arc<Mutex<String>>, Arc<Mutex<u32>>);

impl TokenSource for Tokens {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        *self.1.lock().unwrap() += 1;
        let t = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(t) })
    }
}

async fn root() -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(&mysql_server_url())
        .await
        .expect("MariaDB")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_token_is_refreshed_for_new_connections() {
    let db = TestDb::new(Db::MariaDb).await;
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let user = format!("iam_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = root().await;
    // Tokens look like presigned URLs: characters that need encoding in a URL's userinfo.
    let first = "host:3306/?Action=connect&DBUser=u&X-Amz-Signature=a+b/c=1".to_string();
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{first}'"),
        format!("GRANT ALL ON {name}.* TO '{user}'@'%'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.unwrap();
    }
    let server = mysql_server_url();
    let host = server.rsplit('@').next().unwrap().trim_start_matches("mysql://");
    let mut config = Config::for_tests(format!("mysql://{user}@{host}/{name}"));
    config.db.db_iam_auth = true;
    let current = Arc::new(Mutex::new(first));
    let calls = Arc::new(Mutex::new(0));
    let store = Store::connect_with(&config.db, Some(Arc::new(Tokens(current.clone(), calls.clone()))))
        .await
        .expect("connects with the first token as the password");
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    let pool = store.mysql_pool().expect("a MySQL store");
    let options = pool.connect_options();
    assert!(
        format!("{options:?}").contains("enable_cleartext_plugin: true"),
        "the token goes through the cleartext plugin"
    );

    // The token rotates: the user's password changes and the source hands out the new one.
    let second = "host:3306/?Action=connect&X-Amz-Signature=second%token".to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER USER '{user}'@'%' IDENTIFIED BY '{second}'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let old = pool.connect_options();
    assert!(
        sqlx::MySqlConnection::connect_with(&old).await.is_err(),
        "the old token no longer logs in"
    );
    *current.lock().unwrap() = second;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresher = {
        let store = store.clone();
        let token = shutdown.clone();
        tokio::spawn(async move { store.refresh_iam_tokens(Duration::from_millis(100), token).await })
    };
    eventually(Duration::from_secs(10), "the pool has the new token", || async {
        !Arc::ptr_eq(&pool.connect_options(), &old)
    })
    .await;
    let fresh = pool.connect_options();
    let mut conn = sqlx::MySqlConnection::connect_with(&fresh)
        .await
        .expect("a new connection logs in with the refreshed token");
    conn.ping().await.unwrap();
    assert!(*calls.lock().unwrap() >= 2);
    shutdown.cancel();
    refresher.await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP USER '{user}'@'%'")))
        .execute(&mut admin)
        .await
        .unwrap();
    store.close().await;
}
