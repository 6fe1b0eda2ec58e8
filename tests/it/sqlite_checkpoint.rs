//! SQLite: the write-ahead log is copied back into the database file by the store's own
//! checkpointer, on a connection of its own, not by the commit that fills it.

use std::time::Duration;

use allim::store::{DeliveryStatus, NewDelivery, Store};

use crate::helpers::{Db, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_every_committed_page_off_the_commit_path() {
    let db = TestDb::new(Db::Sqlite).await;
    let store = db.store().await;
    // The writer's own checkpoint is only the backstop, past 10,000 pages.
    let backstop: i64 = store.scalar("PRAGMA wal_autocheckpoint").await.unwrap();
    assert_eq!(backstop, 10_000);

    let payload = "x".repeat(2_000);
    let rows: Vec<NewDelivery> = (0..300)
        .map(|i| NewDelivery {
            id: allim::store::new_id(),
            idempotency_key: Some(format!("checkpoint-{i}")),
            notification_type: "SLACK".into(),
            source: "http",
            payload: payload.clone(),
            status: DeliveryStatus::Delivered,
            next_attempt_at: None,
            last_error: None,
            now: 1_700_000_000_000,
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    allim::store::insert_deliveries(&mut tx, &rows.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The log now holds the commit's pages: 32-byte header, then 24-byte header + page each.
    let wal = std::path::PathBuf::from(db.url.trim_start_matches("sqlite://").to_string() + "-wal");
    let page: u64 = store.scalar::<i64>("PRAGMA page_size").await.unwrap() as u64;
    let pages = ((std::fs::metadata(&wal).unwrap().len() - 32) / (page + 24)) as i64;
    assert!(
        pages > 100,
        "300 rows of 2 KB take more than 100 pages; the log has {pages}"
    );

    // A read-only transaction kicks the checkpointer (and writes nothing, so the log stays).
    let mut stats = store
        .checkpoints()
        .expect("a file-backed SQLite store has a checkpointer");
    store.begin().await.unwrap().rollback().await.unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        stats.wait_for(|s| s.log_pages == pages && s.checkpointed_pages == pages),
    )
    .await
    .map(|_| ());
    assert!(
        done.is_ok(),
        "the checkpointer did not copy the {pages} pages; last: {:?}",
        *stats.borrow()
    );
    let copied: i64 = store
        .scalar("SELECT COUNT(*) FROM deliveries WHERE idempotency_key LIKE 'checkpoint-%'")
        .await
        .unwrap();
    assert_eq!(copied, 300);
}

/// A group commit's multi-row INSERTs keep their statement journal in memory rather than in a
/// temporary file (those writes were 11 % of allim's CPU in the SNS profile; bench/README.md).
#[tokio::test]
async fn statement_journals_stay_in_memory() {
    let db = TestDb::new(Db::Sqlite).await;
    let config = allim::config::Config::for_tests(db.url.clone());
    let store = Store::connect(&config.db).await.unwrap();
    // 2 = MEMORY (0 = the build's default, which spills past 64 KB to a file).
    let temp_store: i64 = store.scalar("PRAGMA temp_store").await.unwrap();
    assert_eq!(temp_store, 2);
}
