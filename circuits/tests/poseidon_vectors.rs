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
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/poseidon-bn254.json"
    );
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

use ark_r1cs_std::{alloc::AllocVar, fields::fp::FpVar, GR1CSVar};
use ark_relations::gr1cs::ConstraintSystem;
use proptest::prelude::*;

fn hash_in_circuit(inputs: &[Fr]) -> (Fr, bool) {
    let cs = ConstraintSystem::<Fr>::new_ref();
    let vars: Vec<FpVar<Fr>> = inputs
        .iter()
        .map(|x| FpVar::new_witness(cs.clone(), || Ok(*x)).expect("alloc"))
        .collect();
    let out = poseidon::gadget::hash_var(&vars).expect("synthesis");
    (
        out.value().expect("value"),
        cs.is_satisfied().expect("prove mode"),
    )
}

#[test]
fn poseidon_gadget_matches_every_circomlib_vector() {
    for v in &load().vectors {
        let inputs: Vec<Fr> = v.inputs.iter().map(|s| field(s)).collect();
        let (out, satisfied) = hash_in_circuit(&inputs);
        assert!(satisfied);
        assert_eq!(out, field(&v.output), "inputs {:?}", v.inputs);
    }
}

#[test]
fn gadget_costs_three_constraints_per_sbox() {
    for (inputs, partial) in [(1usize, 56usize), (2, 57), (6, 63)] {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let vars: Vec<FpVar<Fr>> = (0..inputs)
            .map(|_| FpVar::new_witness(cs.clone(), || Ok(Fr::from(1u8))).expect("alloc"))
            .collect();
        let _digest = poseidon::gadget::hash_var(&vars).expect("synthesis");
        // Lane 0 starts as the constant 0 + c, so its first S-box is free.
        assert_eq!(cs.num_constraints(), 3 * (8 * (inputs + 1) + partial - 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn gadget_agrees_with_native_on_random_inputs(
        seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..=6)
    ) {
        let inputs: Vec<Fr> = seeds.iter().map(|s| Fr::from_le_bytes_mod_order(s)).collect();
        let (out, satisfied) = hash_in_circuit(&inputs);
        prop_assert!(satisfied);
        prop_assert_eq!(out, poseidon::hash(&inputs).expect("arity"));
    }
}
