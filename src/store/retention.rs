//! Retention (`ALLIM_RETENTION`): what is finished and older than the retention is deleted, in
//! small batches so no statement holds many locks — finished deliveries (delivered, dead,
//! rejected; by creation time), read inbox rows, alarm events, the record of parts sent,
//! the recipients' final results and the record of send attempts.
//! Pending and failed deliveries and unread inbox rows are never deleted by age.

use std::time::Duration;

use sqlx::QueryBuilder;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreResult, with_pool};
use crate::clock::{Clock, duration_ms};

/// Rows per delete statement.
const BATCH: i64 = 1000;

/// How many rows a purge deleted, by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: u64,
    pub inbox: u64,
    pub alarm_events: u64,
    pub parts: u64,
    /// Recipient results (SENS) of deliveries older than the retention.
    pub results: u64,
    /// Recorded send attempts older than the retention.
    pub attempts: u64,
}

/// (table, id column, the condition on rows older than the cutoff, which follows it).
const TARGETS: [(&str, &str, &str); 6] = [
    (
        "deliveries",
        "id",
        "status IN ('delivered', 'dead', 'rejected') AND created_at < ",
    ),
    ("inbox", "id", "read_at IS NOT NULL AND created_at < "),
    ("alarm_events", "id", "received_at < "),
    ("delivery_parts", "delivery_id", "created_at < "),
    ("recipient_results", "delivery_id", "created_at < "),
    ("delivery_attempts", "id", "at < "),
];

impl Store {
    /// Deletes everything finished before `cutoff` (ms), batch by batch until none is left.
    pub async fn purge_before(&self, cutoff: i64) -> StoreResult<Purged> {
        let mut counts = [0u64; 6];
        for (n, (table, id, older)) in TARGETS.iter().enumerate() {
            loop {
                let deleted = with_pool!(self, p => {
                    let mut q = QueryBuilder::new(format!("SELECT DISTINCT {id} FROM {table} WHERE {older}"));
                    q.push_bind(cutoff).push(" LIMIT ").push_bind(BATCH);
                    let ids: Vec<String> = q.build_query_scalar().fetch_all(p).await?;
                    if ids.is_empty() {
                        0
                    } else {
                        let mut q = QueryBuilder::new(format!("DELETE FROM {table} WHERE {older}"));
                        q.push_bind(cutoff).push(format!(" AND {id} IN ("));
                        let mut list = q.separated(", ");
                        for i in &ids {
                            list.push_bind(i.as_str());
                        }
                        q.push(")");
                        q.build().execute(p).await?.rows_affected()
                    }
                });
                counts[n] += deleted;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(Purged {
            deliveries: counts[0],
            inbox: counts[1],
            alarm_events: counts[2],
            parts: counts[3],
            results: counts[4],
            attempts: counts[5],
        })
    }

    /// Purges what is older than `retention` every `every`, until shutdown.
    pub async fn run_retention(&self, retention: Duration, every: Duration, clock: Clock, shutdown: CancellationToken) {
        loop {
            let cutoff = clock.now_ms() - duration_ms(retention);
            match self.purge_before(cutoff).await {
                Ok(p) if p != Purged::default() => {
                    tracing::info!(?p, "retention: deleted what was older than the retention")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention: purge failed; will try again"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::alarms::{AlarmEventRow, insert_event};
    use crate::store::{DeliveryStatus, InboxRow, NewDelivery, insert_deliveries, insert_inbox};

    const DAY: i64 = 24 * 3600 * 1000;
    const NOW: i64 = 1_795_305_600_000;

    fn delivery(id: String, status: DeliveryStatus, at: i64) -> NewDelivery {
        NewDelivery {
            id,
            idempotency_key: None,
            notification_type: "SMS".into(),
            source: "http",
            payload: "{}".into(),
            status,
            next_attempt_at: matches!(status, DeliveryStatus::Pending).then_some(at),
            last_error: None,
            now: at,
        }
    }

    fn inbox(id: &str, at: i64) -> InboxRow {
        InboxRow {
            id: id.into(),
            delivery_id: format!("d-{id}"),
            user_id: "u".into(),
            category: None,
            title: "t".into(),
            body: None,
            link: None,
            data: None,
            created_at: at,
            // Inserted unread; the test marks them read.
            read_at: None,
        }
    }

    #[tokio::test]
    async fn only_what_is_finished_and_old_goes_in_batches() {
        let store = Store::memory().await;
        let old = NOW - 100 * DAY;
        let recent = NOW - DAY;
        let mut rows: Vec<NewDelivery> = (0..2500)
            .map(|i| delivery(format!("old-{i:04}"), DeliveryStatus::Delivered, old))
            .collect();
        rows.push(delivery("old-dead".into(), DeliveryStatus::Dead, old));
        rows.push(delivery("old-rejected".into(), DeliveryStatus::Rejected, old));
        rows.push(delivery("old-pending".into(), DeliveryStatus::Pending, old));
        rows.push(delivery("new-delivered".into(), DeliveryStatus::Delivered, recent));
        let mut tx = store.begin().await.unwrap();
        insert_deliveries(&mut tx, &rows).await.unwrap();
        insert_inbox(
            &mut tx,
            &[
                inbox("read-old", old),
                inbox("unread-old", old),
                inbox("read-new", recent),
            ],
        )
        .await
        .unwrap();
        for (id, at) in [("e-old", old), ("e-new", recent)] {
            let event = AlarmEventRow {
                id: id.into(),
                alarm_key: "k".into(),
                sns_message_id: id.into(),
                state: "ALARM".into(),
                old_state: None,
                changed_at: at,
                received_at: at,
                outcome: "sent".into(),
                detail: None,
                deliveries: None,
            };
            insert_event(&mut tx, &event).await.unwrap();
        }
        tx.commit().await.unwrap();
        store.mark_read("u", "read-old", old + 1).await.unwrap();
        store.mark_read("u", "read-new", recent + 1).await.unwrap();
        store.mark_part_done("old-0001", "sms:0", old).await.unwrap();
        store.mark_part_done("new-delivered", "sms:0", recent).await.unwrap();
        let sent = |id: &str, at| crate::store::SentRecipient {
            delivery_id: id.to_string(),
            recipient: "01012345678".into(),
            request_id: "r-1".into(),
            message_id: None,
            next_check_at: at,
        };
        store.record_sent("sms", &[sent("old-0001", old)], old).await.unwrap();
        store
            .record_sent("sms", &[sent("new-delivered", recent)], recent)
            .await
            .unwrap();

        with_pool!(store, p => sqlx::query(
            "INSERT INTO delivery_attempts (id, delivery_id, attempt, at, outcome) \
             VALUES ('attempt-old', 'old-0001', 1, ?, 'dead'), ('attempt-new', 'new-delivered', 1, ?, 'delivered')",
        )
        .bind(old)
        .bind(recent)
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();

        let purged = store.purge_before(NOW - 90 * DAY).await.unwrap();
        assert_eq!(
            purged,
            Purged {
                deliveries: 2502,
                inbox: 1,
                alarm_events: 1,
                parts: 1,
                results: 1,
                attempts: 1,
            }
        );
        let left: Vec<String> = with_pool!(store, p => sqlx::query_scalar("SELECT id FROM deliveries ORDER BY id")
            .fetch_all(p)
            .await)
        .unwrap();
        assert_eq!(left, ["new-delivered", "old-pending"], "pending is never purged by age");
        let inbox_left: i64 = store.scalar("SELECT COUNT(*) FROM inbox").await.unwrap();
        assert_eq!(inbox_left, 2, "unread and recent rows stay");
        assert_eq!(store.purge_before(NOW - 90 * DAY).await.unwrap(), Purged::default());
    }
}
