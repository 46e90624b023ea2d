//! Runs the real `switchyard` binary as a child process, for the tests that
//! must exercise what a user runs (SDK conformance, CLI, crash recovery).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// `switchyard.toml` in `dir` for the binary: loopback listeners on free
/// ports, SQLite at `dir/sy.db`, the mocks' providers, then `extra`.
pub fn config_file(
    dir: &std::path::Path,
    mocks: &crate::harness::Mocks,
    extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/sy.db\"\n{}\n{extra}",
            dir.display(),
            crate::harness::providers_toml(mocks)
        ),
    )
    .unwrap();
    config
}

/// The binary's environment with `more` after the mocks' provider keys.
pub fn env_with<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    use crate::harness::{ANTHROPIC_KEY, COMPAT_KEY, GEMINI_KEY, OPENAI_KEY};
    let mut env = vec![
        ("MOCK_OPENAI_KEY", OPENAI_KEY),
        ("MOCK_ANTHROPIC_KEY", ANTHROPIC_KEY),
        ("MOCK_GEMINI_KEY", GEMINI_KEY),
        ("MOCK_COMPAT_KEY", COMPAT_KEY),
    ];
    env.extend_from_slice(more);
    env
}

pub struct Binary {
    pub child: Child,
    pub base: String,
    pub admin: String,
    stderr: Arc<Mutex<String>>,
}

impl Binary {
    /// Starts `switchyard serve --config <file>` with `env` added to the
    /// environment, and waits until it says where it listens.
    pub fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Binary {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(
                "RUST_LOG",
                "trace,hyper=debug,hyper_util=debug,h2=info,sqlx=debug,tokio=info",
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the switchyard binary");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let started = Instant::now();
        loop {
            let text = stderr.lock().unwrap().clone();
            // `serving on URL  admin on URL`, or its JSON event.
            let text_banner = text
                .lines()
                .find(|l| l.starts_with("serving on "))
                .map(|line| {
                    let mut words = line.split_whitespace();
                    let base = words.nth(2).unwrap().to_owned();
                    let admin = words.nth(2).unwrap().to_owned();
                    (base, admin)
                });
            let json_banner = || {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|v| v["message"] == "serving")
                    .map(|v| {
                        (
                            v["listen"].as_str().unwrap().to_owned(),
                            v["admin"].as_str().unwrap().to_owned(),
                        )
                    })
            };
            if let Some((base, admin)) = text_banner.or_else(json_banner) {
                return Binary {
                    child,
                    base,
                    admin,
                    stderr,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("switchyard exited with {status}:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "switchyard did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.stderr()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool the test needs: present, or (under CI) a failure, never a skip.
pub fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{name} is not set; under CI=true this test must run (use scripts/test)")
        }
        _ => {
            eprintln!("skipping: {name} is not set (scripts/test sets it)");
            None
        }
    }
}
