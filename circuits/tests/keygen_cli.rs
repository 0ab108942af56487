//! The keygen binary, run as a user would.
use std::process::Command;

use zkid_circuits::{pin::PinKnowledge, CircuitProvingKey, CircuitVerifyingKey};

fn keygen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zkid-keygen"))
}

#[test]
fn writes_loadable_keys_and_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(format!("zkid-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = keygen()
        .args(["pin-knowledge", "--out-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let vk = CircuitVerifyingKey::load(&dir.join("pin-knowledge-v1.vk")).expect("vk loads");
    vk.expect_circuit::<PinKnowledge>().expect("right circuit");
    let pk = CircuitProvingKey::load(&dir.join("pin-knowledge-v1.pk")).expect("pk loads");
    assert_eq!(pk.key_id, vk.key_id);
    assert!(stdout.contains(&vk.key_id.to_string()), "{stdout}");

    let again = keygen()
        .args(["pin-knowledge", "--out-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let unchanged = CircuitVerifyingKey::load(&dir.join("pin-knowledge-v1.vk")).expect("vk loads");
    assert_eq!(
        unchanged.key_id, vk.key_id,
        "a refused run must not touch the keys"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn lists_every_registered_circuit() {
    let out = keygen().arg("--list").output().expect("runs");
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = zkid_circuits::registry::circuit_ids()
        .into_iter()
        .map(|id| id.name)
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn unknown_circuit_is_a_clear_error() {
    let out = keygen().arg("no-such-circuit").output().expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown circuit") && stderr.contains("pin-knowledge"),
        "{stderr}"
    );
}
