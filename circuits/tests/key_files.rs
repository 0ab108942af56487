//! Key files: round trip, and refusal of anything altered or degenerate.
mod common;

use ark_bn254::Bn254;
use ark_groth16::VerifyingKey;
use common::pin_keys;
use zkid_circuits::{
    keys::KeyError, pin::PinKnowledge, CircuitProvingKey, CircuitVerifyingKey, KeyId,
};

fn vk_bytes() -> Vec<u8> {
    let mut bytes = Vec::new();
    pin_keys()
        .verifying_key
        .write_to(&mut bytes)
        .expect("write");
    bytes
}

#[test]
fn verifying_key_round_trips_with_its_id() {
    let read = CircuitVerifyingKey::read_from(vk_bytes().as_slice()).expect("read");
    assert_eq!(read, pin_keys().verifying_key);
    assert_eq!(read.key_id, KeyId::of(&read.vk));
    read.expect_circuit::<PinKnowledge>()
        .expect("right circuit");
    assert_eq!(read.circuit.to_string(), "pin-knowledge@v1");
}

#[test]
fn proving_key_round_trips_through_a_file() {
    let dir = std::env::temp_dir().join(format!("zkid-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("pin.pk");
    pin_keys().proving_key.save(&path).expect("save");
    let (circuit, key_id) = CircuitProvingKey::read_identity(&path).expect("header");
    assert_eq!(
        (circuit.to_string(), key_id),
        ("pin-knowledge@v1".to_owned(), pin_keys().key_id)
    );
    let read = CircuitProvingKey::load(&path).expect("load");
    assert_eq!(read.key_id, pin_keys().key_id);
    read.expect_circuit::<PinKnowledge>()
        .expect("right circuit");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn any_altered_key_byte_is_refused() {
    let bytes = vk_bytes();
    // Past the header, every byte belongs to a point or a length.
    for position in (0..bytes.len()).step_by(7) {
        let mut altered = bytes.clone();
        altered[position] ^= 0x01;
        let result = CircuitVerifyingKey::read_from(altered.as_slice());
        // Flipping a byte of the circuit name still loads, but as another
        // circuit, which `expect_circuit` refuses.
        if let Ok(key) = result {
            assert!(
                key.expect_circuit::<PinKnowledge>().is_err(),
                "byte {position}"
            );
        }
    }
}

#[test]
fn wrong_kind_of_file_is_refused() {
    let result = CircuitProvingKey::read_from(vk_bytes().as_slice());
    assert!(matches!(result, Err(KeyError::WrongMagic("proving"))));
}

#[test]
fn identity_verifying_key_is_refused() {
    // arkworks' Default key is all identity points and would accept junk.
    let mut key = pin_keys().verifying_key.clone();
    key.vk = VerifyingKey::<Bn254>::default();
    key.vk.gamma_abc_g1 = vec![Default::default(); 3];
    key.key_id = KeyId::of(&key.vk);
    let mut bytes = Vec::new();
    key.write_to(&mut bytes).expect("write");
    assert!(matches!(
        CircuitVerifyingKey::read_from(bytes.as_slice()),
        Err(KeyError::DegenerateKey)
    ));
}

#[test]
fn key_id_parses_from_hex() {
    let id = pin_keys().key_id;
    assert_eq!(id.to_string().parse::<KeyId>().expect("hex"), id);
    assert!("xyz".parse::<KeyId>().is_err());
}
