//! ALIMTALK through the SENS stand-in, which signs-checks every call (query strings included),
//! knows an approved template and one in review, refuses content that does not fill the
//! template, and plays a recipient without KakaoTalk (3019, then the SMS failover SENS sends)
//! and one it refuses in its 202 answer. Final results come from its look-up API, which says
//! "processing" on the first look.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, settled, spawn_on, test_clock};
use crate::providers::{SensServer, TEMPLATE_IN_REVIEW, TEMPLATE_SHIPPED, with_alimtalk};
use crate::support::eventually;

const WITH_KAKAO: &str = "01011112222";
const WITHOUT_KAKAO: &str = "01022223333";
const SHIPPED_TEXT: &str = "홍길동님, 주문 1042이(가) 발송되었습니다.";

async fn app(db: &TestDb, sens: &SensServer, clock: &allim::clock::Clock) -> TestApp {
    let base = sens.base_url.clone();
    let clock = clock.clone();
    let sens_for_config = SensServer {
        base_url: base,
        state: sens.state.clone(),
    };
    spawn_on(
        &db.url,
        move |c| {
            with_alimtalk(c, &sens_for_config);
            c.channels.sens.sens_results_after = Duration::from_secs(1);
        },
        move |b| b.clock(clock),
    )
    .await
}

fn shipped(to: &[&str]) -> Value {
    json!({"notificationType": "ALIMTALK", "templateCode": TEMPLATE_SHIPPED, "to": to,
           "variables": {"name": "홍길동", "orderNo": "1042"},
           "buttons": [{"type": "WL", "name": "배송 조회", "linkMobile": "https://shop.example/track/1042"}]})
}

async fn accepted(app: &TestApp, body: &Value) -> String {
    let (s, b) = json(app.post("/v1/notifications", body).await).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// Moves the clock on until every recipient of `id` has a final result; returns them.
pub async fn final_results(app: &TestApp, clock: &allim::clock::Clock, id: &str, n: usize) -> Vec<Value> {
    let path = format!("/v1/deliveries/{id}");
    eventually(Duration::from_secs(20), &format!("{id}: {n} final results"), || async {
        clock.set(clock.now_ms() + 3_000);
        let d = app.get_ok(&path).await;
        let r = d["recipients"].as_array().cloned().unwrap_or_default();
        r.len() == n && r.iter().all(|r| r["status"] != "sent")
    })
    .await;
    app.get_ok(&path).await["recipients"].as_array().unwrap().clone()
}

/// The results of one AlimTalk to `01011112222` (with KakaoTalk) and `01022223333` (without):
/// the first delivered by KakaoTalk, the second by the SMS failover. (kakao, sms) results.
pub fn kakao_then_failover(results: &[Value]) -> (Value, Value) {
    let by = |masked: &str| results.iter().find(|r| r["to"] == masked).unwrap().clone();
    let kakao = by("*******2222");
    assert_eq!(
        (kakao["status"].as_str(), kakao["code"].as_str()),
        (Some("delivered"), Some("0000")),
        "{kakao}"
    );
    assert!(kakao.get("failover").is_none(), "{kakao}");
    let sms = by("*******3333");
    assert_eq!(
        (sms["status"].as_str(), sms["code"].as_str(), sms["failover"].as_str()),
        (Some("delivered"), Some("3019"), Some("SMS failover delivered")),
        "{sms}"
    );
    (kakao, sms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alimtalk_fails_over_to_sms_and_reports_each_recipient() {
    let sens = SensServer::start().await;
    sens.state.no_kakao.lock().unwrap().insert(WITHOUT_KAKAO.into());
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let app = app(&db, &sens, &clock).await;

    let id = accepted(&app, &shipped(&[WITH_KAKAO, "010-2222-3333"])).await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(1)),
        "{d}"
    );
    // Accepted by SENS, not yet known on the phones.
    let pending: Vec<&str> = d["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["sent", "sent"], "{d}");

    let sent = sens.alimtalk();
    assert_eq!(sent.len(), 2, "one message per recipient: {sent:?}");
    for m in &sent {
        assert_eq!(m.template_code, TEMPLATE_SHIPPED);
        assert_eq!(m.content, SHIPPED_TEXT, "the template rendered with the variables");
        assert!(m.use_sms_failover);
        assert_eq!(m.failover_config["type"], "SMS", "41 EUC-KR bytes fit an SMS");
        assert_eq!(m.failover_config["content"], SHIPPED_TEXT);
        assert_eq!(m.buttons[0]["type"], "WL");
        assert_eq!(m.buttons[0]["linkMobile"], "https://shop.example/track/1042");
    }
    let mut to: Vec<&str> = sent.iter().map(|m| m.to.as_str()).collect();
    to.sort();
    assert_eq!(to, [WITH_KAKAO, WITHOUT_KAKAO]);
    assert_eq!(
        sens.failover_sms(),
        [(WITHOUT_KAKAO.to_string(), "SMS".to_string(), SHIPPED_TEXT.to_string())],
        "only the recipient without KakaoTalk got the SMS"
    );

    let (_, sms) = kakao_then_failover(&final_results(&app, &clock, &id, 2).await);
    assert_eq!(sms["reason"], "카카오톡 미사용자", "{sms}");
    assert!(
        sms["checks"].as_i64().unwrap() >= 2,
        "the first look said processing: {sms}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "allim_recipient_results_total{channel=\"alimtalk\",result=\"delivered\"} 1",
        "allim_recipient_results_total{channel=\"alimtalk\",result=\"failover\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(
        *sens.state.rejected_auth.lock().unwrap(),
        0,
        "every call was signed right"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_mistakes_are_refused_at_accept_time() {
    let sens = SensServer::start().await;
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let app = app(&db, &sens, &clock).await;
    let refused = |body: Value| {
        let app = &app;
        async move {
            let (s, b) = json(app.post("/v1/notifications", &body).await).await;
            assert_eq!(s, 422, "{body} → {b}");
            (
                b["field"].as_str().unwrap_or_default().to_string(),
                b["message"].as_str().unwrap().to_string(),
            )
        }
    };
    let base = || json!({"notificationType": "ALIMTALK", "templateCode": TEMPLATE_SHIPPED, "to": [WITH_KAKAO]});

    let mut typo = base();
    typo["variables"] = json!({"name": "홍길동", "orderNum": "1042"});
    let (field, message) = refused(typo).await;
    assert_eq!(field, "variables.orderNum");
    assert!(
        message.contains("is not a placeholder of template ORDER_SHIPPED") && message.contains("#{orderNo}"),
        "{message}"
    );

    let mut missing = base();
    missing["variables"] = json!({"name": "홍길동"});
    let (field, message) = refused(missing).await;
    assert_eq!(field, "variables");
    assert!(message.contains("no value for #{orderNo}"), "{message}");

    let mut unknown = base();
    unknown["templateCode"] = json!("NO_SUCH_TEMPLATE");
    unknown["variables"] = json!({});
    let (field, message) = refused(unknown).await;
    assert_eq!(field, "templateCode");
    assert!(
        message.contains("no template NO_SUCH_TEMPLATE on channel @allim"),
        "{message}"
    );

    let mut in_review = base();
    in_review["templateCode"] = json!(TEMPLATE_IN_REVIEW);
    in_review["variables"] = json!({"name": "홍길동"});
    let (field, message) = refused(in_review).await;
    assert_eq!(field, "templateCode");
    assert!(message.contains("not approved") && message.contains("REQ"), "{message}");

    let mut wrong_content = base();
    wrong_content["content"] = json!("홍길동님, 주문 1042이(가) 취소되었습니다.");
    assert_eq!(refused(wrong_content).await.0, "content");

    let mut too_long = base();
    too_long["variables"] = json!({"name": "가".repeat(990), "orderNo": "1042"});
    let (field, message) = refused(too_long).await;
    assert_eq!(field, "variables");
    assert!(message.contains("KakaoTalk allows 1000"), "{message}");

    let mut emoji = base();
    emoji["variables"] = json!({"name": "홍길동 🎉", "orderNo": "1042"});
    let (field, message) = refused(emoji).await;
    assert_eq!(
        field, "failover.content",
        "the text cannot be the failover SMS: {message}"
    );

    // The same with an explicit failover text, and pre-rendered content, are accepted.
    let mut explicit = base();
    explicit["variables"] = json!({"name": "홍길동 🎉", "orderNo": "1042"});
    explicit["failover"] = json!({"content": "홍길동님, 주문 1042이(가) 발송되었습니다."});
    accepted(&app, &explicit).await;
    let mut content = base();
    content["content"] = json!(SHIPPED_TEXT);
    accepted(&app, &content).await;

    // A batch reports the typo on its item and stores the rest.
    let mut typo = shipped(&[WITH_KAKAO]);
    typo["variables"]["orderNum"] = json!("7");
    let (s, b) = json(
        app.post(
            "/v1/notifications/batch",
            &json!({"notifications": [shipped(&[WITH_KAKAO]), typo]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["accepted"].as_i64(), b["invalid"].as_i64()),
        (Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(b["results"][1]["error"]["field"], "variables.orderNum", "{b}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries").await,
        3,
        "nothing refused was stored"
    );

    // The template was fetched once and then served from the cache.
    let fetches = || sens.state.template_fetches.load(std::sync::atomic::Ordering::SeqCst);
    let before = fetches();
    for _ in 0..3 {
        accepted(&app, &shipped(&[WITH_KAKAO])).await;
    }
    assert_eq!(fetches(), before, "cached");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_fails_alone_and_a_retry_sends_only_the_rest() {
    let sens = SensServer::start().await;
    let refused = "01099990000";
    sens.state.refuse.lock().unwrap().insert(refused.into());
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let app = app(&db, &sens, &clock).await;
    // 150 recipients: two requests. SENS refuses the keys once (the lane pauses, the attempt
    // is kept), then takes the first request and fails the second with a 500 (a retry).
    sens.state
        .fail_next
        .lock()
        .unwrap()
        .extend([Some(401), None, Some(500)]);
    let mut to: Vec<String> = (0..149).map(|i| format!("0103000{i:04}")).collect();
    to.insert(7, refused.to_string());
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let id = accepted(&app, &shipped(&refs)).await;

    eventually(Duration::from_secs(10), "the lane pauses", || async {
        let m = app.get("/metrics").await.text().await.unwrap();
        m.contains("allim_lane_paused{channel=\"alimtalk\"} 1")
    })
    .await;
    let d = app.get_ok(&format!("/v1/deliveries/{id}")).await;
    assert_eq!(d["attempts"], 0, "a credential refusal uses no attempt: {d}");
    // The first pause is 30 s (SENS's timestamp window, 5 minutes of real time, allows this).
    clock.set(clock.now_ms() + 31_000);
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{d}"
    );
    let sent = sens.alimtalk();
    let mut numbers: Vec<&str> = sent.iter().map(|m| m.to.as_str()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        (sent.len(), numbers.len()),
        (149, 149),
        "each accepted recipient exactly once"
    );
    let results = app.get_ok(&format!("/v1/deliveries/{id}")).await["recipients"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 150);
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        (
            failed[0]["to"].as_str(),
            failed[0]["code"].as_str(),
            failed[0]["reason"].as_str()
        ),
        (Some("*******0000"), Some("E105"), Some("수신 번호가 유효하지 않습니다"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_final_results_are_looked_up_per_recipient() {
    let sens = SensServer::start().await;
    sens.state.unreachable.lock().unwrap().insert("01055556666".into());
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let app = app(&db, &sens, &clock).await;
    let id = accepted(
        &app,
        &json!({"notificationType": "SMS", "to": ["01044445555", "01055556666"], "content": "[allim] 인증번호 123456"}),
    )
    .await;
    settled(&app, &clock, &id).await;
    let results = final_results(&app, &clock, &id, 2).await;
    let by = |masked: &str| results.iter().find(|r| r["to"] == masked).unwrap().clone();
    let ok = by("*******5555");
    assert_eq!(
        (ok["status"].as_str(), ok["channel"].as_str()),
        (Some("delivered"), Some("sms")),
        "{ok}"
    );
    assert!(ok["messageId"].is_string() && ok["completedAt"].is_string(), "{ok}");
    let gone = by("*******6666");
    assert_eq!(
        (gone["status"].as_str(), gone["code"].as_str(), gone["reason"].as_str()),
        (Some("failed"), Some("3018"), Some("결번")),
        "{gone}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "allim_recipient_results_total{channel=\"sms\",result=\"delivered\"} 1",
        "allim_recipient_results_total{channel=\"sms\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    app.stop().await;
}
