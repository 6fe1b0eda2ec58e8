//! Many notifications of one alarm at once on MariaDB (SNS delivers concurrently): each is
//! decided in its own transaction on the alarm's locked row, and none fails with a deadlock.

use std::sync::Arc;

use allim::accept::Acceptor;
use allim::alarms::{AlarmRouter, AlarmState, Rules};
use allim::clock::Clock;
use allim::store::{Store, Wake};

use crate::helpers::{Db, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notifications_of_one_alarm_never_deadlock() {
    let db = TestDb::new(Db::MariaDb).await;
    let mut config = allim::config::Config::for_tests(db.url.clone());
    config.db.db_max_connections = 40;
    let store = Store::connect(&config.db).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Clock::system();
    let acceptor = Acceptor::new(
        store.clone(),
        Wake::default(),
        Arc::new(config.channels.clone()),
        clock.clone(),
    );
    let rules = Rules::parse(
        "[[rules]]\nname = \"all\"\nalarm = \"*\"\nsms = [\"010-1111-2222\"]\n",
        &[],
    )
    .unwrap();
    let router = AlarmRouter::new(
        store.clone(),
        acceptor,
        rules,
        Arc::new(allim::telemetry::Metrics::new()),
        clock,
    );
    for round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32 {
            let router = router.clone();
            tasks.spawn(async move {
                let state = if i % 2 == 0 { "ALARM" } else { "OK" };
                let v = serde_json::json!({"AlarmName": format!("race-{round}"), "AWSAccountId": "123456789012",
                    "NewStateValue": state, "OldStateValue": "OK", "Region": "Asia Pacific (Seoul)",
                    "StateChangeTime": format!("2026-11-22T01:{:02}:00.000+0000", i)});
                let alarm = allim::alarms::payload::parse(&v).unwrap();
                assert!(matches!(alarm.state, AlarmState::Alarm | AlarmState::Ok));
                router.handle(&format!("sns:race-{round}-{i}"), &alarm).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let handled = done.unwrap();
            assert!(handled.is_ok(), "round {round}: {handled:?}");
        }
    }
    let events: i64 = store.scalar("SELECT COUNT(*) FROM alarm_events").await.unwrap();
    assert_eq!(events, 5 * 32, "every notification decided and recorded");
}
