//! The attribute-credential circuits: constraint counts, proving at one and
//! two threads, verification from bytes, batch verification of 1 to 256
//! proofs at one and two threads, the Groth16 floor (as in the `groth16`
//! bench, for ratios within one run), and the comparison behind the
//! multi-predicate decision (one proof with several predicate slots versus
//! several single-predicate proofs verified in one batch).
//!
//! `cargo bench -p zkid-benches --bench credential -- --warm-up-time 1 --measurement-time 3`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod floor;

use ark_bn254::Fr;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use zkid_benches::{pool, rng, Floor};
use zkid_circuits::{
    batch::BatchItem,
    circuit::{shape, PublicInputs},
    credential::{
        date::days_from_civil, encode_account_id, AccountOwnership, AttributeCredential,
        AttributePredicate, AttributePredicates, Attributes, SetMembership, SetNonMembership, Slot,
        SlotPredicate,
    },
    encoding::field_to_bytes,
    merkle::{MembershipSet, NonMembershipSet},
    pin::{DeviceSecret, Pin},
    prove,
    registry::generate_by_name,
    CircuitProvingKey, CircuitVerifyingKey, KeyId, Verifier, ZkCircuit,
};

/// The customer: device factors and an issued credential.
struct Holder {
    pin: Pin,
    secret: DeviceSecret,
    credential: AttributeCredential,
}

fn holder() -> Holder {
    let mut rng = rng(7);
    let attributes = Attributes {
        account_id: "DE-ACC-000123".into(),
        date_of_birth: days_from_civil(1990, 5, 17).expect("date"),
        postcode: "10115".into(),
        phone_number: "+4915112345678".into(),
        national_id_last4: "123X".into(),
    };
    Holder {
        pin: Pin::parse("24681357").expect("pin"),
        secret: DeviceSecret::generate(&mut rng),
        credential: AttributeCredential::issue(&attributes, &mut rng).expect("credential"),
    }
}

fn inputs<P: PublicInputs>(public: &P) -> Vec<[u8; 32]> {
    public
        .to_field_elements()
        .iter()
        .map(field_to_bytes)
        .collect()
}

const CHALLENGE: u64 = 4242;

fn account() -> SlotPredicate {
    SlotPredicate::equals(
        Slot::AccountId,
        encode_account_id("DE-ACC-000123").expect("id"),
    )
}

fn adult() -> SlotPredicate {
    let today = days_from_civil(2025, 6, 15).expect("date");
    SlotPredicate::age_at_least(today, 18).expect("age")
}

fn last4() -> SlotPredicate {
    SlotPredicate::equals(
        Slot::NationalIdLast4,
        Slot::NationalIdLast4.encode_text("123X").expect("text"),
    )
}

fn served() -> MembershipSet {
    let codes: Vec<Fr> = (10_115..10_315)
        .map(|c| Slot::Postcode.encode_text(&c.to_string()).expect("text"))
        .collect();
    MembershipSet::new(&codes).expect("fits")
}

fn fraud_list() -> NonMembershipSet {
    let numbers: Vec<Fr> = (0..1_000u64)
        .map(|i| {
            Slot::PhoneNumber
                .encode_text(&format!("+49151{i:08}"))
                .expect("text")
        })
        .collect();
    NonMembershipSet::new(&numbers).expect("fits")
}

/// Keys, registered with a verifier, and the proving key's size.
struct Keys {
    pk: CircuitProvingKey,
    vk: CircuitVerifyingKey,
    id: KeyId,
}

fn keys(name: &str, verifier: &mut Verifier) -> Keys {
    let (pk, vk) = generate_by_name(name, &mut rng(1)).expect("setup");
    let mut bytes = Vec::new();
    pk.write_to(&mut bytes).expect("serialize");
    println!("{name}: proving key {} KiB", bytes.len() / 1024);
    let id = verifier.register(&vk);
    Keys { pk, vk, id }
}

fn print_shape<C: ZkCircuit>() {
    let shape = shape::<C>().expect("synthesis");
    println!(
        "{}@v{}: {} constraints, {} instance variables, domain {}",
        C::NAME,
        C::VERSION,
        shape.constraints,
        shape.instance_variables,
        shape.domain_size()
    );
}

/// Proves `make()` at one and two threads and verifies one proof from
/// bytes. Synthesis is inside the timed closure: the customer waits for
/// it too.
fn bench_circuit<C, F>(
    c: &mut Criterion,
    verifier: &Verifier,
    keys: &Keys,
    make: F,
    public: impl Fn(&C) -> Vec<[u8; 32]>,
) where
    C: ZkCircuit + Send,
    F: Fn() -> C,
{
    print_shape::<C>();
    let mut group = c.benchmark_group(C::NAME);
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = pool(threads).expect("thread pool");
        group.bench_function(
            BenchmarkId::new("prove", format!("{threads}-thread")),
            |b| {
                b.iter_batched(
                    &make,
                    |circuit| {
                        pool.install(|| prove(&keys.pk, circuit, &mut rng(3)).expect("prove"))
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    let circuit = make();
    let encoded = public(&circuit);
    let proof = prove(&keys.pk, circuit, &mut rng(4)).expect("prove");
    let one = pool(1).expect("thread pool");
    group.sample_size(30);
    // The whole measurement loop runs on the pool's thread, as the floor's
    // and the batches' do: an `install` per iteration added a cross-thread
    // wake-up to every verification and none to the floor, which made this
    // ratio read up to 1.48 while the same check timed as a batch of one
    // read 0.92 to 1.13 (benches/RESULTS.md, 2026-12-07).
    group.bench_function("verify from bytes/1-thread", |b| {
        one.install(|| {
            b.iter(|| {
                assert!(verifier.verify(&keys.id, &proof, &encoded).is_accepted());
            })
        })
    });
    floor::bench(
        &Floor::new(&keys.vk, &proof).expect("valid"),
        &mut group,
        &one,
    );

    // Batches cycle eight distinct proofs of the same statement: each item
    // gets its own random scalar and its own pairing work, so a repeated
    // proof costs what a fresh one would, without minutes of proving.
    let distinct: Vec<Vec<u8>> = (0..8)
        .map(|seed| prove(&keys.pk, make(), &mut rng(100 + seed)).expect("prove"))
        .collect();
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = pool(threads).expect("thread pool");
        for n in [1usize, 16, 64, 256] {
            let items: Vec<BatchItem<'_>> = distinct
                .iter()
                .cycle()
                .take(n)
                .map(|proof| BatchItem {
                    key_id: &keys.id,
                    proof,
                    public_inputs: &encoded,
                })
                .collect();
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("batch verify/{threads}-thread"), n),
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
    group.finish();
}

fn benches(c: &mut Criterion) {
    let h = holder();
    let challenge = Fr::from(CHALLENGE);
    let mut verifier = Verifier::new();
    let owner_keys = keys(AccountOwnership::NAME, &mut verifier);
    let many_keys = keys(AttributePredicates::NAME, &mut verifier);
    let one_keys = keys(AttributePredicate::NAME, &mut verifier);
    let member_keys = keys(SetMembership::NAME, &mut verifier);
    let absent_keys = keys(SetNonMembership::NAME, &mut verifier);
    let served = served();
    let fraud = fraud_list();

    let owner = || AccountOwnership::new(&h.pin, &h.secret, &h.credential, challenge).expect("ok");
    let policy3 = || {
        AttributePredicates::new(
            &h.pin,
            &h.secret,
            &h.credential,
            challenge,
            [account(), adult(), last4(), SlotPredicate::unused()],
        )
        .expect("ok")
    };
    let hr = &h;
    // Copy closures (they capture only references and a Copy predicate).
    let single = move |p: SlotPredicate| {
        move || {
            AttributePredicate::new(&hr.pin, &hr.secret, &hr.credential, challenge, [p])
                .expect("ok")
        }
    };
    let member = || {
        SetMembership::new(
            &h.pin,
            &h.secret,
            &h.credential,
            challenge,
            Slot::Postcode,
            &served,
        )
        .expect("member")
    };
    let absent = || {
        SetNonMembership::new(
            &h.pin,
            &h.secret,
            &h.credential,
            challenge,
            Slot::PhoneNumber,
            &fraud,
        )
        .expect("absent")
    };

    bench_circuit(c, &verifier, &owner_keys, owner, |x| {
        inputs(x.public().expect("set"))
    });
    bench_circuit(c, &verifier, &many_keys, policy3, |x| {
        inputs(x.public().expect("set"))
    });
    bench_circuit(c, &verifier, &one_keys, single(adult()), |x| {
        inputs(x.public().expect("set"))
    });
    bench_circuit(c, &verifier, &member_keys, member, |x| {
        inputs(x.public().expect("set"))
    });
    bench_circuit(c, &verifier, &absent_keys, absent, |x| {
        inputs(x.public().expect("set"))
    });

    // The decision: policy "device + account + age >= 18 + last four of the
    // national id", as one attribute-predicates proof, or as
    // account-ownership plus two attribute-predicate proofs in one batch.
    // Every separate proof must open both commitments again, or the proofs
    // would not be about the same customer.
    let two = pool(2).expect("thread pool");
    let one = pool(1).expect("thread pool");
    let mut group = c.benchmark_group("policy: account + age + last4");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one proof (attribute-predicates)/prove/2-thread", |b| {
        b.iter_batched(
            policy3,
            |circuit| two.install(|| prove(&many_keys.pk, circuit, &mut rng(5)).expect("prove")),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        "three proofs (ownership + 2 x predicate)/prove/2-thread",
        |b| {
            b.iter(|| {
                two.install(|| {
                    let a = prove(&owner_keys.pk, owner(), &mut rng(5)).expect("prove");
                    let b = prove(&one_keys.pk, single(adult())(), &mut rng(6)).expect("prove");
                    let c = prove(&one_keys.pk, single(last4())(), &mut rng(7)).expect("prove");
                    (a, b, c)
                })
            })
        },
    );

    let one_circuit = policy3();
    let one_inputs = inputs(one_circuit.public().expect("set"));
    let one_proof = prove(&many_keys.pk, one_circuit, &mut rng(8)).expect("prove");
    let split: Vec<(KeyId, Vec<u8>, Vec<[u8; 32]>)> = vec![
        {
            let x = owner();
            let i = inputs(x.public().expect("set"));
            (
                owner_keys.id,
                prove(&owner_keys.pk, x, &mut rng(9)).expect("prove"),
                i,
            )
        },
        {
            let x = single(adult())();
            let i = inputs(x.public().expect("set"));
            (
                one_keys.id,
                prove(&one_keys.pk, x, &mut rng(10)).expect("prove"),
                i,
            )
        },
        {
            let x = single(last4())();
            let i = inputs(x.public().expect("set"));
            (
                one_keys.id,
                prove(&one_keys.pk, x, &mut rng(11)).expect("prove"),
                i,
            )
        },
    ];
    let items: Vec<BatchItem<'_>> = split
        .iter()
        .map(|(id, proof, public_inputs)| BatchItem {
            key_id: id,
            proof,
            public_inputs,
        })
        .collect();
    group.sample_size(30);
    group.bench_function("one proof (attribute-predicates)/verify/1-thread", |b| {
        b.iter(|| {
            one.install(|| {
                assert!(verifier
                    .verify(&many_keys.id, &one_proof, &one_inputs)
                    .is_accepted())
            })
        })
    });
    group.bench_function("three proofs/verify batch/1-thread", |b| {
        b.iter(|| {
            one.install(|| {
                assert!(verifier
                    .verify_batch(&items)
                    .iter()
                    .all(|v| v.is_accepted()))
            })
        })
    });
    group.bench_function("three proofs/verify one by one/1-thread", |b| {
        b.iter(|| {
            one.install(|| {
                for item in &items {
                    assert!(verifier
                        .verify(item.key_id, item.proof, item.public_inputs)
                        .is_accepted());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(credential, benches);
criterion_main!(credential);
