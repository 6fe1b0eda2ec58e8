//! The lanes' claim query at scale, as MariaDB plans it: one million deliveries, most of them
//! finished; the claim must read its index in order (no filesort over every due row, and under
//! FOR UPDATE SKIP LOCKED no locking of what it does not take).

use sqlx::Connection;

use crate::helpers::{Db, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_reads_its_index_in_order_at_a_million_rows() {
    let db = TestDb::new(Db::MariaDb).await;
    let store = db.store().await;
    let mut conn = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    // 1,000,000 rows from MariaDB's sequence engine: four types; one in ten due (pending or
    // failed, with a next_attempt_at), the rest delivered.
    sqlx::query(
        "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT LPAD(seq, 36, '0'), NULL, ELT(1 + seq % 4, 'SMS', 'PUSH', 'SLACK', 'APP_NOTIFICATION'), 'sqs', '{}', \
         IF(seq % 10 = 0, IF(seq % 20 = 0, 'failed', 'pending'), 'delivered'), 0, \
         IF(seq % 10 = 0, 1700000000000 + seq, NULL), 1700000000000, 1700000000000 FROM seq_1_to_1000000",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE TABLE deliveries")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query(
        "EXPLAIN SELECT id FROM deliveries WHERE notification_type = 'SMS' AND next_attempt_at <= 1800000000000 \
         AND status IN ('pending', 'failed') AND (lease_until IS NULL OR lease_until < 1800000000000) \
         ORDER BY next_attempt_at, id LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r: sqlx::mysql::MySqlRow| {
        use sqlx::Row;
        (r.get("type"), r.get("key"), r.get("Extra"))
    })
    .collect();
    assert_eq!(plan.len(), 1, "{plan:?}");
    let (access, key, extra) = &plan[0];
    assert_eq!(key.as_deref(), Some("ix_deliveries_claim"), "{plan:?}");
    assert_eq!(access.as_deref(), Some("range"), "{plan:?}");
    assert!(!extra.as_deref().unwrap_or_default().contains("filesort"), "{plan:?}");
    // And the claim itself takes the oldest due rows of its type.
    let rows = store.claim_due("t", 1_800_000_000_000, 60_000, 5, "SMS").await.unwrap();
    let due: Vec<Option<i64>> = rows.iter().map(|r| r.next_attempt_at).collect();
    assert_eq!(
        due,
        vec![
            Some(1_700_000_000_020),
            Some(1_700_000_000_040),
            Some(1_700_000_000_060),
            Some(1_700_000_000_080),
            Some(1_700_000_000_100)
        ],
    );
}
