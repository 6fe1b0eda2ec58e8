//! A lane's outcome is recorded even when MariaDB picks the recording transaction as a
//! deadlock's victim (seen under load: the finish's UPDATE moving a row in the claim index
//! against a concurrent claim's locks). The finish is tried again; without that the outcome was
//! lost and the row sent again once its lease ran out.

use std::time::Duration;

use allim::store::{Finish, NewDelivery};
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
        status: allim::store::DeliveryStatus::Pending,
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
    let before = deadlocks(&mut watch).await;
    // Another session changes many rows (so MariaDB picks the finish, the lighter transaction,
    // as the victim) and locks the end of delivery_attempts, where the finish writes its row.
    let mut other = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE scratch (n BIGINT PRIMARY KEY)")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("INSERT INTO scratch SELECT seq FROM seq_1_to_2000")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM delivery_attempts FOR UPDATE")
        .fetch_all(&mut other)
        .await
        .unwrap();

    // The finish updates the row, then waits for the other session's lock.
    let finishing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .finish("d-1", "lane-a", now + 5, &Finish::Delivered { dry_run: false })
                .await
        })
    };
    // Once it runs its second statement it holds the row (INFORMATION_SCHEMA.INNODB_TRX does not
    // show this INSERT … SELECT as waiting; the process list shows it running).
    eventually(Duration::from_secs(10), "the finish running its second statement", || {
        let store = store.clone();
        async move {
            let running: i64 = store
                .scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE info LIKE 'INSERT INTO delivery_attempts%'")
                .await
                .unwrap();
            running > 0
        }
    })
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
    assert_eq!(got.status, allim::store::DeliveryStatus::Delivered);
    let attempts = store.attempts_of("d-1", 10).await.unwrap();
    assert_eq!(attempts.len(), 1, "one attempt on record");
}
