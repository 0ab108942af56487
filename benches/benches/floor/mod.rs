//! The floor (`zkid_benches::Floor`) as a criterion benchmark, beside the
//! verifications it is compared with.

use criterion::{measurement::WallTime, BenchmarkGroup};
use zkid_benches::Floor;

/// Adds the floor, run on `pool`'s single thread, to `group`. The whole
/// measurement loop runs inside one `install`, as the verifications it is
/// compared with do.
pub fn bench(floor: &Floor, group: &mut BenchmarkGroup<'_, WallTime>, pool: &rayon::ThreadPool) {
    group.bench_function("floor/miller-loop-3-pairs+final-exp", |bencher| {
        pool.install(|| bencher.iter(|| floor.run().expect("non-zero")))
    });
}
