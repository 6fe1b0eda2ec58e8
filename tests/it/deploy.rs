//! deploy.sh, run for real against stub `aws` and `docker` commands that log how they were
//! called and answer as the real ones would; and in --dry-run, where it must run nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STUB: &str = r#"#!/usr/bin/env bash
# Logs the call, then answers like the real command.
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $*" in
  "aws sts get-caller-identity"*) echo 123456789012 ;;
  "aws ecr describe-repositories"*) [ "${STUB_REPO_EXISTS:-0}" = 1 ] || { echo "RepositoryNotFoundException" >&2; exit 254; } ;;
  "aws ecr describe-images"*) echo "ImageNotFoundException" >&2; exit 254 ;;
  "aws ecr get-login-password"*) echo "password-for-docker" ;;
  "aws ecs wait services-stable"*) [ "${STUB_FAIL_WAIT:-0}" = 1 ] && { echo "Waiter ServicesStable failed: Max attempts exceeded" >&2; exit 255; } ;;
  "aws ecs describe-services"*"rolloutState"*) echo "ECS deployment circuit breaker: tasks failed to start." ;;
  "aws ecs describe-services"*) echo "arn:aws:ecs:ap-northeast-2:123456789012:task-definition/allim:7" ;;
  "aws ecs describe-task-definition"*) cat "$STUB_IMAGE_FILE" ;;
  "docker login"*) cat > /dev/null; echo "Login Succeeded" ;;
esac
exit 0
"#;

struct Sandbox {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    image_file: PathBuf,
}

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.email=ci@allim.test",
            "-c",
            "user.name=ci",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A clean git checkout holding deploy.sh and infra/, and a bin/ of stubs.
fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("infra")).unwrap();
    std::fs::copy(root.join("deploy.sh"), repo.join("deploy.sh")).unwrap();
    for f in ["allim.yaml", "ecr.yaml", "params.example.env"] {
        std::fs::copy(root.join("infra").join(f), repo.join("infra").join(f)).unwrap();
    }
    std::fs::copy(root.join("infra/params.example.env"), repo.join("infra/params.env")).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "deploy sandbox"]);
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["aws", "docker"] {
        let path = bin.join(name);
        std::fs::write(&path, STUB).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = dir.path().join("calls.log");
    std::fs::write(&log, "").unwrap();
    let image_file = dir.path().join("image");
    Sandbox {
        repo,
        bin,
        log,
        image_file,
        _dir: dir,
    }
}

impl Sandbox {
    fn commit(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&self.repo)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        cmd.arg(self.repo.join("deploy.sh"))
            .args(args)
            .env("PATH", path)
            .env("STUB_LOG", &self.log)
            .env("STUB_IMAGE_FILE", &self.image_file)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .current_dir(&self.repo);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn assert_sequence(lines: &[String], expected: &[&str]) {
    let mut at = 0;
    for want in expected {
        match lines[at..].iter().position(|l| l.contains(want)) {
            Some(i) => at += i + 1,
            None => panic!("{want:?} not found in order in:\n{}", lines.join("\n")),
        }
    }
}

#[test]
fn deploys_build_push_deploy_wait_in_order() {
    let sb = sandbox();
    let commit = sb.commit();
    let image = format!("123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/allim:{commit}");
    std::fs::write(&sb.image_file, &image).unwrap();
    let out = sb.run(&["--region", "ap-northeast-2"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let calls = sb.calls();
    assert_sequence(
        &calls,
        &[
            "aws sts get-caller-identity",
            "aws ecr describe-repositories --region ap-northeast-2 --repository-names allim",
            "aws cloudformation deploy --region ap-northeast-2 --stack-name allim-ecr --template-file infra/ecr.yaml",
            // `aws ecr get-login-password | docker login`: the two ends of a pipe log in either order.
            "docker login --username AWS --password-stdin 123456789012.dkr.ecr.ap-northeast-2.amazonaws.com",
            &format!("docker buildx build --platform linux/arm64 --tag {image} --push ."),
            "aws cloudformation deploy --region ap-northeast-2 --stack-name allim --template-file infra/allim.yaml --capabilities CAPABILITY_IAM",
            "aws ecs wait services-stable --region ap-northeast-2 --cluster allim --services allim",
            "aws ecs describe-services",
            "aws ecs describe-task-definition",
        ],
    );
    let login = calls
        .iter()
        .position(|c| c.starts_with("aws ecr get-login-password --region ap-northeast-2"));
    let build = calls.iter().position(|c| c.starts_with("docker buildx build"));
    assert!(login.is_some() && login < build, "logged in before pushing: {calls:?}");
    let deploy = calls.iter().find(|c| c.contains("--stack-name allim ")).unwrap();
    assert!(deploy.contains(&format!("ImageUri={image}")), "{deploy}");
    assert!(deploy.contains("CpuArchitecture=ARM64"), "{deploy}");
    assert!(
        deploy.contains("DbProxyEndpoint=allim.proxy-abcdefghijkl"),
        "parameters file passed: {deploy}"
    );
    assert!(stderr.contains(&format!("deployed: {image}")), "{stderr}");

    // With the repository present, it is not created again.
    std::fs::write(&sb.log, "").unwrap();
    let out = sb.run(
        &["--region", "ap-northeast-2", "--platform", "linux/amd64"],
        &[("STUB_REPO_EXISTS", "1")],
    );
    assert!(out.status.success());
    let calls = sb.calls();
    assert!(!calls.iter().any(|c| c.contains("allim-ecr")), "{calls:?}");
    assert!(calls.iter().any(|c| c.contains("--platform linux/amd64")), "{calls:?}");
    assert!(calls.iter().any(|c| c.contains("CpuArchitecture=X86_64")), "{calls:?}");
}

#[test]
fn dry_run_prints_everything_and_runs_nothing() {
    let sb = sandbox();
    let out = sb.run(&["--dry-run"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sb.calls().is_empty(), "a dry run ran {:?}", sb.calls());
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_sequence(
        &lines,
        &[
            "+ aws sts get-caller-identity",
            "+ aws ecr describe-repositories",
            "+ aws cloudformation deploy --region ap-northeast-2 --stack-name allim-ecr",
            "+ aws ecr get-login-password --region ap-northeast-2 | docker login",
            "+ docker buildx build --platform linux/arm64",
            "+ aws cloudformation deploy --region ap-northeast-2 --stack-name allim --template-file infra/allim.yaml",
            "+ aws ecs wait services-stable",
            "+ aws ecs describe-services",
            "+ aws ecs describe-task-definition",
        ],
    );
}

#[test]
fn refuses_a_dirty_tree_unless_forced() {
    let sb = sandbox();
    std::fs::write(sb.repo.join("uncommitted.txt"), "x").unwrap();
    let out = sb.run(&["--region", "ap-northeast-2"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncommitted changes"));
    assert!(sb.calls().is_empty(), "nothing ran");
    let out = sb.run(&["--region", "ap-northeast-2", "--force", "--dry-run"], &[]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-dirty-"),
        "a forced dirty build gets its own tag"
    );
}

#[test]
fn a_failed_rollout_reports_the_rollback() {
    let sb = sandbox();
    std::fs::write(&sb.image_file, "old-image").unwrap();
    let out = sb.run(&["--region", "ap-northeast-2"], &[("STUB_FAIL_WAIT", "1")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the rollout failed"), "{stderr}");
    assert!(stderr.contains("circuit breaker rolled the service back"), "{stderr}");
}

#[test]
fn help_and_bad_options() {
    let sb = sandbox();
    let out = sb.run(&["--help"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dry-run"));
    let out = sb.run(&["--nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = sb.run(&["--region", "x", "--platform", "linux/s390x"], &[]);
    assert!(!out.status.success());
}
