//! Helpers for constraint-level tests.

use std::sync::Once;

use ark_bn254::Fr;
use ark_relations::gr1cs::{
    ConstraintLayer, ConstraintSynthesizer, ConstraintSystem, OptimizationGoal,
};
use tracing_subscriber::layer::SubscriberExt;

/// Installs arkworks' constraint-tracing layer once, so that
/// `which_is_unsatisfied` names constraints by their namespaces.
pub(crate) fn trace_constraints() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ConstraintLayer::default());
        // Another test binary's subscriber cannot be installed in this
        // process, so the only failure is "already set", which is fine.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Synthesizes `circuit` with its witness and returns the first broken
/// constraint's name, or `None` when satisfied.
pub(crate) fn unsatisfied_constraint<C: ConstraintSynthesizer<Fr>>(circuit: C) -> Option<String> {
    trace_constraints();
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    circuit
        .generate_constraints(cs.clone())
        .expect("synthesis succeeds with a full witness");
    cs.finalize();
    cs.which_is_unsatisfied().expect("prove mode")
}
