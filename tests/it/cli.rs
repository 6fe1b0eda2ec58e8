//! The binary's command line: `allim migrate`, and `allim --help` documenting every setting
//! the README's configuration table lists.

use std::process::Command;

fn allim(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    allim_command(env).args(args).output().expect("run allim")
}

/// The binary with only `env` (and JSON logs) in its environment.
fn allim_command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_allim"));
    cmd.env_clear()
        .env("ALLIM_LOG_FORMAT", "json")
        .envs(env.iter().copied());
    cmd
}

/// `allim serve` with only `env`, its output piped to the test.
fn spawn_serving(env: &[(&str, &str)]) -> std::process::Child {
    allim_command(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start allim")
}

#[test]
fn migrate_creates_the_schema_and_bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = allim(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("m.db").exists());
    // Applying again is a no-op.
    assert!(allim(&["migrate"], &[("DATABASE_URL", &url)]).status.success());

    let out = allim(&["migrate"], &[("DATABASE_URL", "postgres://db/x")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL: unsupported scheme"));
    let out = allim(&[], &[("ALLIM_SQS_POLLERS", "0")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALLIM_SQS_POLLERS"));
}

/// A bad value of a setting that holds a secret is named, with its problem, but not shown:
/// the error goes to the task's log.
#[test]
fn bad_secret_settings_are_named_without_their_value() {
    let secret = "Sekrit0Sekrit1Sekrit2";
    for (setting, value, problem) in [
        (
            "ALLIM_SQS_DOOR_KEYS",
            format!("AK:{secret}"),
            "an access key id must be 16 to 128 letters and digits",
        ),
        (
            "ALLIM_WEBHOOK_SECRETS",
            format!("whsec_{secret}"),
            "each secret must be NAME=VALUE",
        ),
        (
            "ALLIM_WEBHOOK_SECRETS",
            format!("orders=whsec_{secret}!"),
            "is not Base64 after whsec_",
        ),
        (
            "ALLIM_WEBHOOK_ENDPOINTS",
            format!("orders=ftp://example.com/{secret}"),
            "the URL must start with https://",
        ),
        (
            "ALLIM_SLACK_WEBHOOKS",
            format!("https://hooks.slack.com/services/{secret}?a=b"),
            "a webhook name (before the first =)",
        ),
        ("ALLIM_API_TOKENS", format!("root:{secret}"), "unknown scope \"root\""),
    ] {
        let out = allim(&["migrate"], &[(setting, value.as_str())]);
        assert!(!out.status.success(), "{setting}={value} was taken");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains(setting) && all.contains(problem), "{setting}: {all}");
        assert!(!all.contains(secret), "{setting}: the secret is in the output: {all}");
    }
}

/// SIGTERM stops allim even when its log has nowhere to go (stdout and stderr both closed by
/// the reader): a log line that cannot be written is dropped, not a panic that takes down the
/// task it was logged from — the signal's among them, which left allim deaf to SIGTERM.
#[test]
fn sigterm_stops_allim_whose_log_pipes_are_closed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let mut child = spawn_serving(&[
        ("DATABASE_URL", url.as_str()),
        ("ALLIM_LISTEN", "127.0.0.1:0"),
        ("ALLIM_SHUTDOWN_GRACE", "2s"),
    ]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("allim ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "allim ended before it was ready"
        );
    }
    drop(stdout);
    drop(child.stderr.take());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = exit_within_20s(child, "with its log pipes closed");
    assert!(status.success(), "{status}");
}

/// Waits for the exit itself (on a thread of its own), not in polls; past 20 s the child is
/// killed and the test fails, naming `when`.
fn exit_within_20s(mut child: std::process::Child, when: &str) -> std::process::ExitStatus {
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait().unwrap());
    });
    let Ok(status) = exit.recv_timeout(std::time::Duration::from_secs(20)) else {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("allim did not stop within 20 s of SIGTERM {when}");
    };
    status
}

/// SIGTERM while allim is still starting — here connecting to a database that accepts the
/// connection and never answers — stops it with exit 0, as a deploy expects, instead of killing
/// it by the signal's default action (exit by signal 15: the handlers came after start-up).
#[test]
fn sigterm_while_starting_stops_allim_cleanly() {
    let silent_db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("mysql://root@{}/allim", silent_db.local_addr().unwrap());
    let mut child = spawn_serving(&[
        ("DATABASE_URL", url.as_str()),
        ("ALLIM_DB_ACQUIRE_TIMEOUT", "60s"),
        ("ALLIM_LISTEN", "127.0.0.1:0"),
    ]);
    // allim is inside start-up once it has connected to the database (it then waits for a
    // greeting that never comes).
    let (_connection, _) = silent_db.accept().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stdout = child.stdout.take().unwrap();
    let status = exit_within_20s(child, "while starting");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut log).unwrap();
    assert!(status.success(), "{status}; log: {log}");
    assert!(
        log.contains("SIGTERM: shutting down") && log.contains("stopped while starting"),
        "{log}"
    );
}

/// Secure by default: without tokens allim will not serve /v1 on a non-loopback address.
#[test]
fn refuses_to_listen_open_on_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let out = allim(&[], &[("DATABASE_URL", &url), ("ALLIM_LISTEN", "0.0.0.0:0")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ALLIM_API_TOKENS is empty") && err.contains("ALLIM_ALLOW_ANONYMOUS"),
        "{err}"
    );
    // A migration needs no tokens.
    let out = allim(&["migrate"], &[("DATABASE_URL", &url), ("ALLIM_LISTEN", "0.0.0.0:0")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn help_documents_every_setting_in_the_readme() {
    let out = allim(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let mut checked = 0;
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let var = line.split('`').nth(1).unwrap();
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} is in the README but not in --help"
        );
        checked += 1;
    }
    assert!(checked >= 40, "the README's table lists the settings ({checked} found)");
    for var in help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap())
    {
        assert!(
            section.contains(&format!("| `{var}`")),
            "{var} is in --help but not in the README"
        );
    }
}

/// `allim rules test`: a rules change checked before it is deployed.
#[test]
fn rules_are_tried_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nname = \"oncall\"\nalarm = \"api-*\"\nsms = [\"010-1111-2222\"]\n\n[[rules]]\nname = \"quiet\"\nalarm = \"*\"\nsms = [\"010-3333-4444\"]\nquiet_hours = { from = \"00:00\", to = \"23:59\" }\n",
    )
    .unwrap();
    let alarm = dir.path().join("alarm.json");
    std::fs::write(
        &alarm,
        r#"{"AlarmName":"api-5xx","AWSAccountId":"123456789012","NewStateValue":"OK","OldStateValue":"ALARM",
            "NewStateReason":"Threshold Crossed","StateChangeTime":"2026-11-22T01:00:00.000+0000","Region":"Asia Pacific (Seoul)"}"#,
    )
    .unwrap();
    let out = allim(
        &["rules", "test", rules.to_str().unwrap(), alarm.to_str().unwrap()],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("rule oncall: SMS *******2222"), "{text}");
    assert!(
        text.contains("rule quiet: SMS *******4444 (SMS held back by quiet hours)"),
        "{text}"
    );
    assert!(text.contains("→ sent: 1 deliveries"), "{text}");
    assert!(!text.contains("01011112222"), "numbers are masked: {text}");

    std::fs::write(&rules, "[[rules]]\nname = \"broken\"\nalarm = \"*\"\nsms = [\"12\"]\n").unwrap();
    let out = allim(
        &["rules", "test", rules.to_str().unwrap(), alarm.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken"), "the error names the rule: {err}");
}
