//! Fixtures shared by the integration tests: keys are expensive, so each
//! test binary builds them once.
#![allow(dead_code)]

use std::sync::{Once, OnceLock};

use ark_bn254::Fr;
use ark_relations::gr1cs::{
    ConstraintLayer, ConstraintSynthesizer, ConstraintSystem, OptimizationGoal,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tracing_subscriber::layer::SubscriberExt;
use zkid_circuits::{
    circuit::PublicInputs,
    encoding::field_to_bytes,
    generate_keys,
    pin::{DeviceSecret, Pin, PinKnowledge},
    prove, CircuitProvingKey, CircuitVerifyingKey, KeyId, Verifier,
};

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub struct PinFixture {
    pub proving_key: CircuitProvingKey,
    pub verifying_key: CircuitVerifyingKey,
    pub verifier: Verifier,
    pub key_id: KeyId,
}

pub fn pin_keys() -> &'static PinFixture {
    static KEYS: OnceLock<PinFixture> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (proving_key, verifying_key) =
            generate_keys::<PinKnowledge, _>(&mut rng(1)).expect("setup");
        let mut verifier = Verifier::new();
        let key_id = verifier.register(&verifying_key);
        PinFixture {
            proving_key,
            verifying_key,
            verifier,
            key_id,
        }
    })
}

/// A valid proof and its encoded public inputs, for seed-specific secrets.
pub fn pin_proof(seed: u64, challenge: u64) -> (Vec<u8>, Vec<[u8; 32]>) {
    let mut rng = rng(seed);
    let secret = DeviceSecret::generate(&mut rng);
    let pin = Pin::parse("13579246").expect("valid pin");
    let circuit = PinKnowledge::new(&pin, &secret, Fr::from(challenge));
    let inputs = encode_inputs(circuit.public().expect("proving instance"));
    let proof = prove(&pin_keys().proving_key, circuit, &mut rng).expect("honest proof");
    (proof, inputs)
}

pub fn encode_inputs<P: PublicInputs>(public: &P) -> Vec<[u8; 32]> {
    public
        .to_field_elements()
        .iter()
        .map(field_to_bytes)
        .collect()
}

pub fn unsatisfied_constraint<C: ConstraintSynthesizer<Fr>>(circuit: C) -> Option<String> {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ConstraintLayer::default());
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    circuit.generate_constraints(cs.clone()).expect("synthesis");
    cs.finalize();
    cs.which_is_unsatisfied().expect("prove mode")
}

// ---------------------------------------------------------------------
// Attribute credentials
// ---------------------------------------------------------------------

use std::{collections::HashMap, sync::Mutex};

use zkid_circuits::{
    credential::{AttributeCredential, Attributes},
    registry::generate_by_name,
};

/// Keys for one circuit, built once per test binary.
pub struct CircuitKeys {
    pub proving_key: CircuitProvingKey,
    pub verifying_key: CircuitVerifyingKey,
    pub verifier: Verifier,
    pub key_id: KeyId,
}

/// The keys of the circuit called `name`, generated through the registry
/// on first use.
pub fn keys_by_name(name: &str) -> &'static CircuitKeys {
    static KEYS: OnceLock<Mutex<HashMap<String, &'static CircuitKeys>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.entry(name.to_owned()).or_insert_with(|| {
        let (proving_key, verifying_key) = generate_by_name(name, &mut rng(2)).expect("setup");
        let mut verifier = Verifier::new();
        let key_id = verifier.register(&verifying_key);
        Box::leak(Box::new(CircuitKeys {
            proving_key,
            verifying_key,
            verifier,
            key_id,
        }))
    })
}

/// A customer with a device and an issued credential.
pub struct Holder {
    pub pin: Pin,
    pub secret: DeviceSecret,
    pub attributes: Attributes,
    pub credential: AttributeCredential,
}

pub fn sample_attributes() -> Attributes {
    Attributes {
        account_id: "DE-ACC-000123".into(),
        // 1990-05-17
        date_of_birth: 7_441,
        postcode: "10115".into(),
        phone_number: "+4915112345678".into(),
        national_id_last4: "123X".into(),
    }
}

pub fn holder_with(seed: u64, attributes: Attributes) -> Holder {
    let mut rng = rng(seed);
    let secret = DeviceSecret::generate(&mut rng);
    let credential = AttributeCredential::issue(&attributes, &mut rng).expect("valid attributes");
    Holder {
        pin: Pin::parse("24681357").expect("valid pin"),
        secret,
        attributes,
        credential,
    }
}

pub fn holder(seed: u64) -> Holder {
    holder_with(seed, sample_attributes())
}

/// Installs the constraint-tracing layer, so that `ProveError::Unsatisfied`
/// names the broken constraint by its namespace path.
pub fn trace_constraints() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ConstraintLayer::default());
        // Fails only if `unsatisfied_constraint` installed it first: fine.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}
