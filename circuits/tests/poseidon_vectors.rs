//! Poseidon against circomlibjs' vectors.
use std::str::FromStr;

use ark_bn254::Fr;
use ark_ff::PrimeField;
use serde::Deserialize;
use zkid_circuits::poseidon;

#[derive(Deserialize)]
struct VectorFile {
    field_modulus: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    inputs: Vec<String>,
    output: String,
}

fn load() -> VectorFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/poseidon-bn254.json");
    let text = std::fs::read_to_string(path).expect("vector file is readable");
    serde_json::from_str(&text).expect("vector file parses")
}

fn field(decimal: &str) -> Fr {
    Fr::from_str(decimal).unwrap_or_else(|_| panic!("{decimal} is a canonical field element"))
}

#[test]
fn poseidon_native_matches_every_circomlib_vector() {
    let file = load();
    assert_eq!(file.field_modulus, Fr::MODULUS.to_string());
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        let inputs: Vec<Fr> = v.inputs.iter().map(|s| field(s)).collect();
        let got = poseidon::hash(&inputs).expect("supported arity");
        assert_eq!(got, field(&v.output), "inputs {:?}", v.inputs);
    }
}
