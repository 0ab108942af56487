//! `zkid-server demo`, run as a new user runs it: the binary, start to
//! finish. It starts its own server on 127.0.0.1:0, so nothing else is set
//! up here.

use std::process::Command;

/// Where each needle first occurs in `haystack`, in order: the demo's
/// steps must appear, and in the order they happen.
fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match haystack[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle:?} missing (or out of order) in:\n{haystack}"),
        }
    }
}

/// Whether `text` holds a zkid token: `zkid_`, a 24-hex-digit credential
/// id, `_` and the secret part.
fn contains_token(text: &str) -> bool {
    text.match_indices("zkid_").any(|(at, _)| {
        let rest = &text.as_bytes()[at + 5..];
        rest.len() > 25 && rest[..24].iter().all(u8::is_ascii_hexdigit) && rest[24] == b'_'
    })
}

#[test]
fn the_demo_walks_through_every_step_and_exits_cleanly() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zkid-server"));
    // The demo reads no configuration, but the runner's environment
    // should not be what makes it pass.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ZKID_") {
            command.env_remove(key);
        }
    }
    let out = command
        .arg("demo")
        .env("NO_COLOR", "1")
        .output()
        .expect("zkid-server runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    assert_in_order(
        &stdout,
        &[
            "first start: this takes a moment",
            "[server      ] ready",
            "tenant acme (Acme Bank)",
            "1. Acme Bank registers customer cust-1",
            "only a commitment to the attributes",
            "2. The customer's phone enrolls",
            "types the PIN 4711",
            "enrolled as cust-1 with Acme Bank",
            "3. The agent verifies the caller for balance_inquiry (level L1)",
            "the server answers PASSED (L1)",
            "[agent       ] sees PASSED L1 (same binding code",
            "signed verdict: passed L1 for balance_inquiry, signed by key",
            "does NOT see: the PIN",
            "4. The agent verifies change_address for account ACC-1 (level L2)",
            "[agent       ] sees PASSED L2",
            "signed verdict: passed L2 for change_address",
            "5. The caller types a wrong PIN",
            "types PIN 1234",
            "[agent       ] sees FAILED no level",
            "signed verdict: failed no level",
            "6. The customer did not call",
            "\"I did not call\": declines",
            "[agent       ] sees DECLINED no level",
            "signed verdict: declined no level",
            "fraud signal",
            "7. Operator op-7 logs in",
            "PASSED L1: signed assertion checked offline: operator op-7 tenant acme audience workstation:ws-12",
            "shut down gracefully",
        ],
    );

    // On every request, the phone shows the code the agent's (or login
    // system's) screen showed just before.
    let mut screen = None;
    let mut pairs = 0;
    for line in stdout.lines() {
        let Some(rest) = line.split("binding code ").nth(1) else {
            continue;
        };
        let code = rest.split([',', ' ']).next().unwrap_or_default();
        if line.contains("screen shows binding code") {
            screen = Some(code.to_owned());
        } else if line.contains("[phone") {
            assert_eq!(screen.take().as_deref(), Some(code), "{stdout}");
            pairs += 1;
        }
    }
    assert_eq!(pairs, 5, "{stdout}");
    assert!(contains_token(&format!(
        "x zkid_{}_{}",
        "a1".repeat(12),
        "f".repeat(64)
    )));

    // Bearer tokens and enrollment codes are secrets: the narration names
    // credentials by id only, and the log shows neither.
    assert!(!contains_token(&stdout), "{stdout}");
    assert!(!contains_token(&stderr), "{stderr}");
}
