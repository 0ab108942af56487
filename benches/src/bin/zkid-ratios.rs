//! The verifier's ratio targets, measured so that the machine's drift
//! cancels out.
//!
//! Each target of issue 7 for the verifier is a ratio of two timings: a
//! single verification from bytes over the pairing floor, a batch of 64 per
//! proof over the floor, two threads' batch throughput over one thread's.
//! criterion measures one benchmark for seconds, then the next; on the
//! 2-vCPU machines this project runs on, a core's speed drifts by a fifth
//! within a minute, so a ratio of two criterion medians moves by as much
//! from run to run (benches/RESULTS.md). Here every variant runs for a
//! short block (150 ms by default) in each round, the rounds rotate the
//! order, and each ratio is computed within a round before the rounds are
//! summarized: a drift slower than a round touches both sides alike.
//!
//! Beside the targets it measures what two cores give this arithmetic at
//! all: two one-thread batches run at once, each on its own thread, as two
//! processes would. One batch on two threads can get at most about that.
//!
//! ```sh
//! cargo run --release -p zkid-benches --bin zkid-ratios
//! cargo run --release -p zkid-benches --bin zkid-ratios -- --rounds 40 --block-ms 200
//! ```

use std::{
    sync::Barrier,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use rayon::prelude::*;
use zkid_benches::{pin_keys, pin_proof, pool, Floor};
use zkid_circuits::{batch::BatchItem, KeyId, Verifier};

/// Measures the verifier's ratio targets in interleaved rounds.
#[derive(Debug, Parser)]
#[command(name = "zkid-ratios", version)]
struct Args {
    /// Rounds measured (after one warm-up round that is not counted).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=10_000))]
    rounds: u32,
    /// How long each variant runs in each round, in milliseconds.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    block_ms: u64,
    /// Proofs in a batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(2..=4096))]
    batch: u64,
}

/// One measured variant; its discriminant is its index in [`VARIANTS`]
/// and in a round's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Floor = 0,
    Verify = 1,
    Batch1 = 2,
    Batch2 = 3,
    TwoStreams = 4,
}

const VARIANTS: [Variant; 5] = [
    Variant::Floor,
    Variant::Verify,
    Variant::Batch1,
    Variant::Batch2,
    Variant::TwoStreams,
];

/// One round's seconds per proof (per call for the floor and a single
/// verification), indexed by [`Variant`].
type Round = [f64; VARIANTS.len()];

impl Variant {
    /// This variant's timing in `round`.
    fn of(self, round: &Round) -> f64 {
        round[self as usize]
    }

    fn label(self, batch: usize) -> String {
        match self {
            Self::Floor => "floor: 3-pair Miller loop + final exp, 1 thread".into(),
            Self::Verify => "verify from bytes, 1 thread".into(),
            Self::Batch1 => format!("batch of {batch}, 1 thread, per proof"),
            Self::Batch2 => format!("batch of {batch}, 2 threads, per proof"),
            Self::TwoStreams => {
                format!("two batches of {batch} at once, 1 thread each, per proof")
            }
        }
    }
}

/// A ratio target: the ratio's name, how to compute it from one round,
/// and its bound.
struct Target {
    name: String,
    ratio: fn(&Round) -> f64,
    bound: Bound,
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
    /// Reported for context, judged against nothing.
    None,
}

impl Bound {
    fn holds(self, value: f64) -> Option<bool> {
        match self {
            Self::AtMost(limit) => Some(value <= limit),
            Self::AtLeast(limit) => Some(value >= limit),
            Self::None => None,
        }
    }

    fn text(self) -> String {
        match self {
            Self::AtMost(limit) => format!("≤ {limit}"),
            Self::AtLeast(limit) => format!("≥ {limit}"),
            Self::None => "(reference)".into(),
        }
    }
}

fn targets(batch: usize) -> Vec<Target> {
    vec![
        Target {
            name: "verify from bytes / floor".into(),
            ratio: |t| Variant::Verify.of(t) / Variant::Floor.of(t),
            bound: Bound::AtMost(1.2),
        },
        Target {
            name: format!("batch of {batch}, 1 thread, per proof / floor"),
            ratio: |t| Variant::Batch1.of(t) / Variant::Floor.of(t),
            bound: Bound::AtMost(0.35),
        },
        Target {
            name: format!("batch of {batch}: 2 threads' throughput / 1 thread's"),
            ratio: |t| Variant::Batch1.of(t) / Variant::Batch2.of(t),
            bound: Bound::AtLeast(1.7),
        },
        Target {
            name: "two one-thread batches at once / one (what two cores give)".into(),
            ratio: |t| Variant::Batch1.of(t) / Variant::TwoStreams.of(t),
            bound: Bound::None,
        },
        Target {
            name: "2-thread batch / two one-thread batches at once".into(),
            ratio: |t| Variant::TwoStreams.of(t) / Variant::Batch2.of(t),
            bound: Bound::None,
        },
    ]
}

/// The `q`-quantile (0 to 1) of `sorted` (ascending), interpolating
/// linearly between order statistics, as numpy's default does. `None` when
/// empty or `q` is outside 0 to 1.
fn quantile_of_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    Some(sorted[below] * (1.0 - weight) + sorted[above] * weight)
}

/// The median, quartiles and range of a set of values, sorted once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    min: f64,
    lower_quartile: f64,
    median: f64,
    upper_quartile: f64,
    max: f64,
}

impl Spread {
    /// `None` when `values` is empty.
    fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = |p| quantile_of_sorted(&sorted, p);
        Some(Self {
            min: q(0.0)?,
            lower_quartile: q(0.25)?,
            median: q(0.5)?,
            upper_quartile: q(0.75)?,
            max: q(1.0)?,
        })
    }

    /// `| median | quartiles | min to max |` cells, with `digits` decimals
    /// and `unit` after the median.
    fn cells(&self, digits: usize, unit: &str) -> String {
        format!(
            "{:.digits$}{unit} | {:.digits$} to {:.digits$} | {:.digits$} to {:.digits$}",
            self.median, self.lower_quartile, self.upper_quartile, self.min, self.max
        )
    }
}

/// The order in which round `round` runs the variants: a rotation, so
/// that no variant always follows the same one, and every variant takes
/// each place equally often over `VARIANTS.len()` rounds.
fn round_order(round: usize) -> Vec<Variant> {
    let start = round % VARIANTS.len();
    VARIANTS[start..]
        .iter()
        .chain(&VARIANTS[..start])
        .copied()
        .collect()
}

/// Runs `op` repeatedly for at least `block` (and at least once) and
/// returns the seconds per call.
fn time_block(block: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        op();
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= block {
            return elapsed.as_secs_f64() / calls as f64;
        }
    }
}

/// The fixtures every variant runs on.
struct Fixtures {
    verifier: Verifier,
    key_id: KeyId,
    floor: Floor,
    proofs: Vec<(Vec<u8>, Vec<[u8; 32]>)>,
}

impl Fixtures {
    fn build(batch: usize) -> anyhow::Result<Self> {
        let (pk, vk) = pin_keys().context("setup")?;
        pk.prepare();
        let mut verifier = Verifier::new();
        let key_id = verifier.register(&vk);
        let proofs: Vec<_> = (0..batch as u64)
            .into_par_iter()
            .map(|seed| pin_proof(&pk, 1000 + seed))
            .collect::<Result<_, _>>()
            .context("proving")?;
        let floor = Floor::new(&vk, &proofs[0].0).context("decoding a fresh proof")?;
        let fixtures = Self {
            verifier,
            key_id,
            floor,
            proofs,
        };
        // A harness that times a failing check would report a fast wrong
        // verifier as a fast one.
        if !fixtures
            .verifier
            .verify(
                &fixtures.key_id,
                &fixtures.proofs[0].0,
                &fixtures.proofs[0].1,
            )
            .is_accepted()
        {
            bail!("the fixture proof does not verify");
        }
        if !fixtures.verify_batch() {
            bail!("the fixture batch does not verify");
        }
        Ok(fixtures)
    }

    fn items(&self) -> Vec<BatchItem<'_>> {
        self.proofs
            .iter()
            .map(|(proof, inputs)| BatchItem {
                key_id: &self.key_id,
                proof,
                public_inputs: inputs,
            })
            .collect()
    }

    fn verify_batch(&self) -> bool {
        self.verifier
            .verify_batch(&self.items())
            .iter()
            .all(|v| v.is_accepted())
    }
}

/// The pools each variant runs on, built once: a pool's threads start
/// once, as in the server.
struct Pools {
    one: rayon::ThreadPool,
    two: rayon::ThreadPool,
    /// The second stream of [`Variant::TwoStreams`].
    other: rayon::ThreadPool,
}

/// Seconds per proof (per call for the floor and a single verification).
fn measure(variant: Variant, f: &Fixtures, pools: &Pools, block: Duration) -> f64 {
    let n = f.proofs.len() as f64;
    let (proof, inputs) = &f.proofs[0];
    // Every loop runs inside one `install`, so no call pays a cross-thread
    // wake-up that another variant does not.
    match variant {
        Variant::Floor => pools.one.install(|| {
            time_block(block, || {
                std::hint::black_box(f.floor.run());
            })
        }),
        Variant::Verify => pools.one.install(|| {
            time_block(block, || {
                assert!(f.verifier.verify(&f.key_id, proof, inputs).is_accepted());
            })
        }),
        Variant::Batch1 | Variant::Batch2 => {
            let pool = if variant == Variant::Batch1 {
                &pools.one
            } else {
                &pools.two
            };
            pool.install(|| time_block(block, || assert!(f.verify_batch()))) / n
        }
        Variant::TwoStreams => {
            let start = Barrier::new(2);
            let stream = |pool: &rayon::ThreadPool| {
                start.wait();
                pool.install(|| time_block(block, || assert!(f.verify_batch())))
            };
            let (a, b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| stream(&pools.other));
                let mine = stream(&pools.one);
                (mine, other.join())
            });
            // Two streams each finishing a batch every `a` and `b` seconds
            // verify 1/a + 1/b batches a second together.
            let b = b.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            1.0 / ((1.0 / a + 1.0 / b) * n)
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let batch = usize::try_from(args.batch).context("--batch")?;
    let block = Duration::from_millis(args.block_ms);
    let fixtures = Fixtures::build(batch)?;
    let pools = Pools {
        one: pool(1).context("thread pool")?,
        two: pool(2).context("thread pool")?,
        other: pool(1).context("thread pool")?,
    };

    let mut rounds: Vec<Round> = Vec::new();
    for round in 0..=args.rounds as usize {
        let mut times: Round = [0.0; VARIANTS.len()];
        for variant in round_order(round) {
            times[variant as usize] = measure(variant, &fixtures, &pools, block);
        }
        // Round 0 warms caches, pools and the core's clock; it is not counted.
        if round > 0 {
            rounds.push(times);
        }
    }

    println!(
        "zkid-ratios: {} rounds of {} ms blocks, batch of {batch}, PIN-knowledge circuit\n",
        args.rounds, args.block_ms
    );
    println!("| measure | median | quartiles | min to max |");
    println!("|---|---|---|---|");
    for variant in VARIANTS {
        let ms: Vec<f64> = rounds.iter().map(|t| variant.of(t) * 1e3).collect();
        let spread = Spread::of(&ms).context("no rounds")?;
        println!("| {} | {} |", variant.label(batch), spread.cells(4, " ms"));
    }
    println!("\n| ratio, within each round | target | median | quartiles | min to max | rounds within target | result |");
    println!("|---|---|---|---|---|---|---|");
    let mut missed = Vec::new();
    for target in targets(batch) {
        let ratios: Vec<f64> = rounds.iter().map(|t| (target.ratio)(t)).collect();
        let spread = Spread::of(&ratios).context("no rounds")?;
        let within = ratios
            .iter()
            .filter(|r| target.bound.holds(**r) == Some(true))
            .count();
        let (within, result) = match target.bound.holds(spread.median) {
            None => ("".into(), ""),
            Some(true) => (format!("{within} of {}", ratios.len()), "pass"),
            Some(false) => {
                missed.push(target.name.clone());
                (format!("{within} of {}", ratios.len()), "**miss**")
            }
        };
        println!(
            "| {} | {} | {} | {within} | {result} |",
            target.name,
            target.bound.text(),
            spread.cells(3, ""),
        );
    }
    if missed.is_empty() {
        println!("\nevery target holds on the median of the rounds");
    } else {
        println!(
            "\nmissed on the median of the rounds: {}",
            missed.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_of_sorted(&sorted, 0.0), Some(1.0));
        assert_eq!(quantile_of_sorted(&sorted, 1.0), Some(4.0));
        assert_eq!(quantile_of_sorted(&sorted, 0.5), Some(2.5));
        assert_eq!(quantile_of_sorted(&sorted, 0.25), Some(1.75));
        assert_eq!(quantile_of_sorted(&[7.0], 0.5), Some(7.0));
        assert_eq!(quantile_of_sorted(&[], 0.5), None);
        assert_eq!(quantile_of_sorted(&sorted, 1.5), None);
        // The spread sorts its input itself.
        assert_eq!(
            Spread::of(&[4.0, 1.0, 3.0, 2.0]),
            Some(Spread {
                min: 1.0,
                lower_quartile: 1.75,
                median: 2.5,
                upper_quartile: 3.25,
                max: 4.0,
            })
        );
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn every_variant_takes_every_place_once_per_cycle() {
        // A round's timings are indexed by discriminant.
        for (index, variant) in VARIANTS.iter().enumerate() {
            assert_eq!(*variant as usize, index, "{variant:?}");
        }
        for place in 0..VARIANTS.len() {
            let mut seen: Vec<Variant> = (0..VARIANTS.len())
                .map(|round| round_order(round)[place])
                .collect();
            seen.dedup();
            assert_eq!(seen.len(), VARIANTS.len(), "place {place}");
        }
        for round in 0..VARIANTS.len() * 2 {
            let order = round_order(round);
            assert!(VARIANTS.iter().all(|v| order.contains(v)), "round {round}");
        }
    }

    #[test]
    fn ratios_read_the_variants_they_name() {
        // Seconds per proof: floor 1, verify 1.1, batch1 0.3, batch2 0.16,
        // two streams 0.155.
        let round = [1.0, 1.1, 0.3, 0.16, 0.155];
        let ratios: Vec<f64> = targets(64).iter().map(|t| (t.ratio)(&round)).collect();
        let expected = [1.1, 0.3, 0.3 / 0.16, 0.3 / 0.155, 0.155 / 0.16];
        for (got, want) in ratios.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} != {want}");
        }
        assert_eq!(Bound::AtMost(1.2).holds(1.2), Some(true));
        assert_eq!(Bound::AtMost(1.2).holds(1.21), Some(false));
        assert_eq!(Bound::AtLeast(1.7).holds(1.69), Some(false));
        assert_eq!(Bound::None.holds(1.0), None);
    }

    #[test]
    fn blocks_time_at_least_one_call() {
        let mut calls = 0;
        let per_call = time_block(Duration::ZERO, || calls += 1);
        assert_eq!(calls, 1);
        assert!(per_call >= 0.0);
    }
}
