//! A lane's outcome is recorded even when MariaDB picks the recording transaction as a
//! deadlock's victim (seen under load: the finish's UPDATE moving a row in the claim index
//! against a concurrent claim's locks). The finish is tried again; without that the outcome was
//! lost and the row sent again once its lease ran out. The accept path's transaction is tried
//! again the same way: without that its callers were answered 503.

use std::sync::Arc;
use std::time::Duration;

use allim::accept::{Acceptor, Entry, Source};
use allim::clock::Clock;
use allim::store::{DeliveryStatus, Finish, NewDelivery, Wake};
use sqlx::Connection;

use crate::helpers::{Db, TestDb};
use crate::support::eventually;

async fn deadlocks(conn: &mut sqlx::MySqlConnection) -> i64 {
    let (_, n): (String, String) = sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .fetch_one(conn)
        .await
        .unwrap();
    n.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_chosen_as_a_deadlock_victim_is_tried_again() {
    let db = TestDb::new(Db::MariaDb).await;
    let store = db.store().await;
    let now = 1_800_000_000_000;
    let row = NewDelivery {
        id: "d-1".into(),
        idempotency_key: None,
        notification_type: "SLACK".into(),
        source: "http",
        payload: r#"{"notificationType":"SLACK","text":"hi"}"#.into(),
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(now),
        last_error: None,
        now,
    };
    let mut tx = store.begin().await.unwrap();
    allim::store::insert_deliveries(&mut tx, &[&row]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.claim_due("lane-a", now, 60_000, 1, "SLACK").await.unwrap().len(),
        1
    );

    let mut watch = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let before = deadlocks(&mut watch).await;
    // Another session locks the end of delivery_attempts, where the finish writes its row.
    let mut other = heavier_session_locking_the_end_of(&db.url, "delivery_attempts").await;

    // The finish updates the row, then waits for the other session's lock.
    let finishing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .finish("d-1", "lane-a", now + 5, &Finish::Delivered { dry_run: false })
                .await
        })
    };
    // Once it runs its second statement it holds the row.
    eventually(
        Duration::from_secs(10),
        "the finish running its second statement",
        || {
            let pool = pool.clone();
            async move { running(&pool, "INSERT INTO delivery_attempts").await }
        },
    )
    .await;
    // Now the other session wants the row the finish holds: a deadlock. MariaDB rolls back the
    // finish, and this UPDATE goes through.
    sqlx::query("UPDATE deliveries SET updated_at = updated_at + 1 WHERE id = 'd-1'")
        .execute(&mut other)
        .await
        .expect("the other session is not the victim");
    assert!(deadlocks(&mut watch).await > before, "a deadlock happened");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    // The finish, tried again, records the outcome.
    let recorded = finishing.await.unwrap();
    assert!(matches!(recorded, Ok(true)), "{recorded:?}");
    let got = store.get_delivery("d-1").await.unwrap().unwrap();
    assert_eq!(got.status, DeliveryStatus::Delivered);
    let attempts = store.attempts_of("d-1", 10).await.unwrap();
    assert_eq!(attempts.len(), 1, "one attempt on record");
}

/// A session in a transaction that has changed many rows (so MariaDB picks the other side of a
/// deadlock, the lighter transaction, as its victim) and locks the end of `table`, so that an
/// insert there waits.
async fn heavier_session_locking_the_end_of(url: &str, table: &str) -> sqlx::MySqlConnection {
    let mut other = sqlx::MySqlConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE scratch (n BIGINT PRIMARY KEY)")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("INSERT INTO scratch SELECT seq FROM seq_1_to_2000")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM {table} FOR UPDATE")))
        .fetch_all(&mut other)
        .await
        .unwrap();
    other
}

/// Whether a statement starting with `prefix` is running (INFORMATION_SCHEMA.INNODB_TRX does not
/// show an INSERT waiting for a lock as waiting; the process list shows it running).
async fn running(pool: &sqlx::MySqlPool, prefix: &str) -> bool {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE info LIKE ?")
        .bind(format!("{prefix}%"))
        .fetch_one(pool)
        .await
        .unwrap();
    n > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_chosen_as_a_deadlock_victim_is_tried_again() {
    let db = TestDb::new(Db::MariaDb).await;
    let store = db.store().await;
    let config = allim::config::Config::for_tests(db.url.clone());
    let acceptor = Acceptor::new(
        store.clone(),
        Wake::default(),
        Arc::new(config.channels.clone()),
        Clock::system(),
    );
    let notification = acceptor
        .parse(
            br#"{"notificationType":"APP_NOTIFICATION","idempotencyKey":"k-deadlock","userId":"42","title":"Shipped"}"#,
        )
        .await
        .unwrap();

    let mut watch = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let before = deadlocks(&mut watch).await;
    // Another session locks the end of the inbox table, where the accept writes its row.
    let mut other = heavier_session_locking_the_end_of(&db.url, "inbox").await;

    // The accept inserts the delivery row, then waits for the other session's lock.
    let accepting = {
        let acceptor = acceptor.clone();
        tokio::spawn(async move { acceptor.accept(Source::Http, vec![Entry::Valid(notification)]).await })
    };
    eventually(Duration::from_secs(10), "the accept inserting its inbox row", || {
        let pool = pool.clone();
        async move { running(&pool, "INSERT INTO inbox").await }
    })
    .await;
    // Now the other session wants the delivery row the accept holds: a deadlock. MariaDB rolls
    // back the accept, and this read goes through (finding nothing: the row was rolled back).
    let seen = sqlx::query("SELECT id FROM deliveries WHERE idempotency_key = 'k-deadlock' FOR UPDATE")
        .fetch_all(&mut other)
        .await
        .expect("the other session is not the victim");
    assert!(seen.is_empty(), "the accept's row was rolled back");
    assert!(deadlocks(&mut watch).await > before, "a deadlock happened");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    // The accept, tried again, stores the notification once: its delivery and its inbox row.
    let accepted = accepting.await.unwrap();
    let outcomes = accepted.unwrap_or_else(|e| panic!("the accept failed: {e}"));
    assert_eq!(outcomes.len(), 1);
    assert!(!outcomes[0].duplicate);
    assert_eq!(outcomes[0].status, DeliveryStatus::Delivered);
    let deliveries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE idempotency_key = 'k-deadlock'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let inbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE delivery_id = ?")
        .bind(&outcomes[0].id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((deliveries, inbox), (1, 1));
}
