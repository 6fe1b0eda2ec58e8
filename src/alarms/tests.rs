//! Alarm decisions on a controlled clock: the flap window and its summary, stale and unchanged
//! states, silences, quiet hours. No real waiting.

use std::time::Duration;

use super::*;
use crate::channels::ChannelArgs;
use crate::store::alarms::SilenceRow;
use crate::telemetry::Metrics;

const T0: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z

const RULES: &str = r#"
flap_limit = 2
flap_window = "10m"

[[rules]]
name = "oncall"
alarm = "api-*"
sms = ["010-1111-2222"]
quiet_hours = { from = "00:00", to = "07:00" }
"#;

async fn router(clock: &Clock) -> (Store, AlarmRouter) {
    let store = Store::memory().await;
    let acceptor = Acceptor::new(
        store.clone(),
        crate::store::Wake::default(),
        Arc::new(crate::settings::defaults::<ChannelArgs>()),
        clock.clone(),
    );
    let rules = Rules::parse(RULES, &[]).unwrap();
    let router = AlarmRouter::new(store.clone(), acceptor, rules, Arc::new(Metrics::new()), clock.clone());
    (store, router)
}

/// An alarm of `api-5xx` changing to `state` at `at` (RFC 3339).
fn alarm(state: AlarmState, at: &str) -> Alarm {
    Alarm {
        changed_at: chrono::DateTime::parse_from_rfc3339(at).unwrap(),
        ..super::rules::tests::alarm("api-5xx", state)
    }
}

async fn sms_rows(store: &Store) -> i64 {
    store
        .scalar("SELECT COUNT(*) FROM deliveries WHERE notification_type = 'SMS'")
        .await
        .unwrap()
}

#[tokio::test]
async fn flapping_is_limited_and_summarised_when_the_window_ends() {
    let clock = Clock::manual(T0);
    let (store, router) = router(&clock).await;
    let mut outcomes = Vec::new();
    for i in 0..5 {
        let state = if i % 2 == 0 { AlarmState::Alarm } else { AlarmState::Ok };
        // 09:1i KST: outside quiet hours.
        let at = format!("2026-11-22T00:1{i}:00Z");
        outcomes.push(
            router
                .handle(&format!("m{i}"), &alarm(state, &at))
                .await
                .unwrap()
                .outcome,
        );
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(outcomes, ["sent", "sent", "suppressed", "suppressed", "suppressed"]);
    assert_eq!(sms_rows(&store).await, 2);

    // Five minutes in: the window (10 minutes) is still open.
    assert_eq!(router.summarise_due().await.unwrap(), 0);
    clock.set(T0 + 10 * 60_000);
    assert_eq!(router.summarise_due().await.unwrap(), 1);
    assert_eq!(sms_rows(&store).await, 3, "one summary");
    assert_eq!(router.summarise_due().await.unwrap(), 0, "summarised once");
    let summary: String = store
        .scalar("SELECT payload FROM deliveries WHERE idempotency_key LIKE 'alarm-summary:%'")
        .await
        .unwrap();
    assert!(
        summary.contains("[FLAP] api-5xx (ap-northeast-2): 3 more suppressed in 10m, now ALARM"),
        "{summary}"
    );
}

#[tokio::test]
async fn stale_unchanged_and_duplicate_are_not_sent() {
    let clock = Clock::manual(T0);
    let (store, router) = router(&clock).await;
    let a = alarm(AlarmState::Alarm, "2026-11-22T00:10:00Z");
    assert_eq!(router.handle("m1", &a).await.unwrap().outcome, "sent");
    assert_eq!(router.handle("m1", &a).await.unwrap().outcome, "duplicate");
    let again = alarm(AlarmState::Alarm, "2026-11-22T00:11:00Z");
    assert_eq!(router.handle("m2", &again).await.unwrap().outcome, "unchanged");
    let older = alarm(AlarmState::Ok, "2026-11-22T00:05:00Z");
    assert_eq!(router.handle("m3", &older).await.unwrap().outcome, "stale");
    assert_eq!(sms_rows(&store).await, 1);
}

#[tokio::test]
async fn silences_hold_back_until_they_end() {
    let clock = Clock::manual(T0);
    let (store, router) = router(&clock).await;
    store
        .insert_silence(&SilenceRow {
            id: "s1".into(),
            alarm: "api-*".into(),
            account: None,
            region: None,
            starts_at: T0,
            ends_at: T0 + 3_600_000,
            reason: "deploy".into(),
            created_at: T0,
        })
        .await
        .unwrap();
    let h = router
        .handle("m1", &alarm(AlarmState::Alarm, "2026-11-22T00:10:00Z"))
        .await
        .unwrap();
    assert_eq!(h.outcome, "silenced");
    assert!(h.detail.contains("deploy"), "{}", h.detail);
    assert_eq!(sms_rows(&store).await, 0);
    // An hour later on the clock the silence is over.
    clock.advance(Duration::from_secs(3600));
    let h = router
        .handle("m2", &alarm(AlarmState::Ok, "2026-11-22T01:10:00Z"))
        .await
        .unwrap();
    assert_eq!(h.outcome, "sent");
    assert_eq!(sms_rows(&store).await, 1);
}

#[tokio::test]
async fn quiet_hours_hold_back_recovery_sms_but_never_an_alarm() {
    let clock = Clock::manual(T0);
    let (store, router) = router(&clock).await;
    // 2026-11-21T16:30Z is 01:30 KST: inside 00:00–07:00.
    let night_alarm = alarm(AlarmState::Alarm, "2026-11-21T16:30:00Z");
    assert_eq!(router.handle("m1", &night_alarm).await.unwrap().outcome, "sent");
    let night_ok = alarm(AlarmState::Ok, "2026-11-21T16:40:00Z");
    let h = router.handle("m2", &night_ok).await.unwrap();
    assert_eq!(h.outcome, "suppressed");
    assert!(h.detail.contains("quiet hours"), "{}", h.detail);
    assert_eq!(sms_rows(&store).await, 1);
}
