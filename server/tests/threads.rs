//! The verification pool's threads carry their own name. A test binary of
//! its own, because rayon's global pool can be started only once per
//! process.

#[test]
fn verification_threads_are_named_and_the_pool_starts_once() {
    assert!(zkid_server::name_verification_threads());
    // `scope` runs its closure on one of the pool's threads.
    let name = rayon::scope(|_| std::thread::current().name().map(str::to_owned));
    assert_eq!(
        name.as_deref().map(|n| n.starts_with("zkid-verify-")),
        Some(true),
        "{name:?}"
    );
    assert!(
        !zkid_server::name_verification_threads(),
        "a second start must report that the pool already runs"
    );
}
