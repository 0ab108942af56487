//! The PIN-knowledge circuit and the verifier: setup, prove, verify, batch
//! verify, against the floor of one Groth16 verification.
//!
//! `cargo bench -p zkid-benches --bench groth16`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod floor;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use zkid_benches::{pin_circuit, pin_keys, pin_proof, pool, rng, Floor};
use zkid_circuits::{
    batch::BatchItem, circuit::shape, encoding::decode_proof, generate_keys, pin::PinKnowledge,
    prove, Verifier,
};

fn benches(c: &mut Criterion) {
    let shape = shape::<PinKnowledge>().expect("synthesis");
    println!(
        "pin-knowledge: {} constraints, {} instance variables, domain {}",
        shape.constraints,
        shape.instance_variables,
        shape.domain_size()
    );
    let (pk, vk) = pin_keys().expect("setup");
    // A phone builds the prover's tables when it loads the key, not inside
    // a proof (`benches/src/bin/prove-once.rs` measures that cost).
    pk.prepare();
    let mut verifier = Verifier::new();
    let key_id = verifier.register(&vk);

    let mut group = c.benchmark_group("pin-knowledge");
    group.sample_size(10);
    group.bench_function("setup", |b| {
        b.iter(|| generate_keys::<PinKnowledge, _>(&mut rng(2)).expect("setup"))
    });
    group.sample_size(30);
    for threads in [1, 2] {
        let pool = pool(threads).expect("thread pool");
        // Witness generation (synthesis) is inside the timed closure:
        // the customer waits for it too.
        group.bench_function(
            BenchmarkId::new("prove", format!("{threads}-thread")),
            |b| {
                pool.install(|| {
                    b.iter_batched(
                        || pin_circuit(3),
                        |circuit| prove(&pk, circuit, &mut rng(4)).expect("prove"),
                        BatchSize::SmallInput,
                    )
                })
            },
        );
    }
    let (proof, inputs) = pin_proof(&pk, 5).expect("prove");
    let one = pool(1).expect("thread pool");
    group.sample_size(100);
    // The whole measurement loop runs on the pool's thread: an `install`
    // per iteration would add a cross-thread wake-up (tens of microseconds)
    // to every verification.
    group.bench_function("verify-from-bytes/1-thread", |b| {
        one.install(|| {
            b.iter(|| {
                let verdict = verifier.verify(&key_id, &proof, &inputs);
                assert!(verdict.is_accepted());
            })
        })
    });
    group.bench_function("decode-proof", |b| {
        b.iter(|| decode_proof(&proof).expect("valid"))
    });

    // The floor: what any Groth16 verification must pay.
    floor::bench(&Floor::new(&vk, &proof).expect("valid"), &mut group, &one);
    group.finish();

    let proofs: Vec<_> = (0..256)
        .map(|seed| pin_proof(&pk, 1000 + seed).expect("prove"))
        .collect();
    let mut batch = c.benchmark_group("batch-verify");
    batch.sample_size(10);
    for threads in [1, 2] {
        let pool = pool(threads).expect("thread pool");
        for n in [1usize, 16, 64, 256] {
            let items: Vec<BatchItem<'_>> = proofs[..n]
                .iter()
                .map(|(proof, inputs)| BatchItem {
                    key_id: &key_id,
                    proof,
                    public_inputs: inputs,
                })
                .collect();
            batch.throughput(Throughput::Elements(n as u64));
            batch.bench_with_input(
                BenchmarkId::new(format!("{threads}-thread"), n),
                &items,
                |b, items| {
                    pool.install(|| {
                        b.iter(|| {
                            let verdicts = verifier.verify_batch(items);
                            assert!(verdicts.iter().all(|v| v.is_accepted()));
                        })
                    })
                },
            );
        }
    }
    batch.finish();
}

criterion_group!(groth16, benches);
criterion_main!(groth16);
