//! The `lmlb` binary: the original tool's environment variables, `.env`, the request log,
//! start-up errors and SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::common::*;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lmlb-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads the child's standard output on a thread, line by line.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// Kills the child if the test fails before stopping it.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

// Several threads, because the log lines are read with blocking calls while the in-process
// simulator must keep serving lmlb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_file_and_variables_configure_lmlb() {
    let sim = start_sim(sim_config(&["qwen2.5-7b-instruct,instances=2"], 0.0)).await;
    let dir = scratch_dir("env");
    std::fs::write(
        dir.join(".env"),
        format!(
            "LM_STUDIO_URL={}\nENABLE_REQUEST_LOGGING=true\nMODEL_REFRESH_INTERVAL=200\n",
            sim.url()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_lmlb"))
        .current_dir(&dir)
        .env("LOAD_BALANCER_PORT", "0")
        .env("LOG_LEVEL", "info")
        .env_remove("LM_STUDIO_URL")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let output = lines(&mut child);
    let mut guard = ChildGuard(Some(child));
    let mut startup = Vec::new();
    let listening = loop {
        let line = wait_for_line(&output, "");
        if line.contains("lmlb listening") {
            break line;
        }
        startup.push(line);
    };
    let startup = startup.join("\n");
    assert!(startup.contains("upstream is up"), "{startup}");
    assert!(
        startup.contains("instances appeared") && startup.contains("qwen2.5-7b-instruct:2"),
        "{startup}"
    );
    let addr = listening
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let url = format!("http://{addr}");

    let reply = chat(&url, MODEL, 3).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let instance = reply.header("x-lmlb-instance").to_string();
    let logged = wait_for_line(&output, "request_id=");
    for field in [
        "method=POST",
        "path=/v1/chat/completions",
        "status=200",
        "queue_wait_ms=",
        "duration_ms=",
    ] {
        assert!(logged.contains(field), "{field} missing in {logged}");
    }
    assert!(logged.contains(&format!("instance={instance}")), "{logged}");
    assert!(
        logged.contains(&format!("upstream={}", sim.url())),
        "{logged}"
    );

    let rejected = chat(&url, "no-such-model", 3).await;
    assert_eq!(rejected.status, 404);
    let logged = wait_for_line(&output, "request rejected");
    for field in [
        "method=POST",
        "status=404",
        "code=\"model_not_found\"",
        "duration_ms=",
    ] {
        assert!(logged.contains(field), "{field} missing in {logged}");
    }

    // Several refresh intervals pass with nothing changed, and nothing is logged at info.
    let quiet_until = std::time::Instant::now() + std::time::Duration::from_millis(800);
    while let Some(left) = quiet_until.checked_duration_since(std::time::Instant::now()) {
        if let Ok(line) = output.recv_timeout(left) {
            assert!(
                !line.contains("INFO"),
                "unexpected info line while nothing changed: {line}"
            );
        }
    }

    let mut child = guard.0.take().unwrap();
    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "SIGTERM ends lmlb with status 0, got {status}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn config_typo_stops_start() {
    let dir = scratch_dir("typo");
    let path = dir.join("lmlb.toml");
    std::fs::write(
        &path,
        "[[upstream]]\nurl = \"http://127.0.0.1:1\"\napi_tokn = \"x\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lmlb"))
        .arg("--config")
        .arg(&path)
        .env_remove("LM_STUDIO_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("api_tokn"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_variable_stops_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_lmlb"))
        .env("REQUEST_TIMEOUT", "forever")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("request timeout") && stderr.contains("forever"),
        "{stderr}"
    );
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let (_sim, lmlb) = setup(&["qwen2.5-7b-instruct"], 0.0).await;
    let preflight = request(
        http::Method::OPTIONS,
        &format!("{}/v1/chat/completions", lmlb.url()),
        &[
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), "*");
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        "content-type"
    );

    let reply = chat(&lmlb.url(), MODEL, 2).await;
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    let origins = reply.headers.get_all("access-control-allow-origin");
    assert_eq!(origins.iter().count(), 1);

    let unknown = chat(&lmlb.url(), "no-such-model", 2).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("access-control-allow-origin"), "*");
}

/// Starts `lmlb demo` on a free port. Returns the process, its output lines and its address.
fn start_demo() -> (ChildGuard, mpsc::Receiver<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmlb"))
        .args(["demo", "--port", "0", "--tokens-per-second", "0"])
        .env_remove("LOAD_BALANCER_PORT")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let output = lines(&mut child);
    let guard = ChildGuard(Some(child));
    let listening = wait_for_line(&output, "lmlb is listening on ");
    let url = listening.rsplit(' ').next().unwrap().to_string();
    (guard, output, url)
}

/// Sends `signal` to the process and returns its exit status.
async fn stop_with(mut guard: ChildGuard, signal: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg(signal)
        .arg(guard.0.as_ref().unwrap().id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = guard.0.take().unwrap();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stops_on_sigterm() {
    let (guard, _output, url) = start_demo();
    let reply = chat(&url, MODEL, 2).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let status = stop_with(guard, "-TERM").await;
    assert!(
        status.success(),
        "the demo stops cleanly on SIGTERM, got {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_simulated_models() {
    let (guard, output, url) = start_demo();
    wait_for_line(&output, "curl -N");

    let reply = chat(&url, MODEL, 5).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let embedding = post(
        &url,
        "/v1/embeddings",
        r#"{"model":"text-embedding-nomic-embed-text-v1.5","input":"hi"}"#,
    )
    .await;
    assert_eq!(embedding.status, 200, "{}", embedding.text());
    let models = get(&url, "/models").await.json();
    assert_eq!(
        models["availableModels"].as_array().unwrap().len(),
        4,
        "{models}"
    );

    let status = stop_with(guard, "-INT").await;
    assert!(
        status.success(),
        "the demo stops cleanly on Ctrl-C, got {status}"
    );
}
