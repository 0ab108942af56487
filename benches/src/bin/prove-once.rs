//! Cold start and memory of a PIN proof, as a phone app would see them: a
//! fresh process loads the proving key from a file, builds the prover's
//! tables, proves once, and reports the timings and its peak resident set.
//!
//! ```sh
//! zkid-keygen pin-knowledge --out-dir /tmp/keys
//! prove-once /tmp/keys/pin-knowledge-v1.pk            # one proof, then RSS
//! prove-once /tmp/keys/pin-knowledge-v1.pk --warm 20  # plus warm proofs
//! ```
//!
//! Threads: rayon's default (one per core), or `RAYON_NUM_THREADS`. The
//! peak RSS is read from `/proc/self/status` (`VmHWM`, Linux) right after
//! the proofs, before anything else is allocated. Criterion figures
//! (`benches/benches/groth16.rs`) remain the reference for warm proving;
//! this binary exists for what criterion cannot see, the first proof of a
//! process and its memory.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use zkid_benches::{pin_circuit, rng};
use zkid_circuits::{encoding::field_to_bytes, prove, CircuitProvingKey, PublicInputs, Verifier};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut warm = 0usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--warm" => {
                warm = args
                    .next()
                    .context("--warm needs a count")?
                    .parse()
                    .context("--warm needs a count")?;
            }
            "-h" | "--help" => {
                println!("usage: prove-once <pin-knowledge proving key file> [--warm N]");
                return Ok(());
            }
            _ if path.is_none() => path = Some(PathBuf::from(arg)),
            other => bail!("unexpected argument {other:?}; see --help"),
        }
    }
    let path = path.context("usage: prove-once <proving key file> [--warm N]")?;

    let start = Instant::now();
    let key =
        CircuitProvingKey::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let loaded = start.elapsed();
    key.prepare();
    let prepared = start.elapsed() - loaded;

    // The witness is built inside the timed region, as on a phone.
    let first_start = Instant::now();
    let circuit = pin_circuit(1);
    let statement = *circuit.public().context("proving instance")?;
    let proof = prove(&key, circuit, &mut rng(2)).context("proving")?;
    let first = first_start.elapsed();

    let mut warm_times: Vec<Duration> = (0..warm)
        .map(|i| {
            let start = Instant::now();
            prove(&key, pin_circuit(3 + i as u64), &mut rng(4)).map(|_| start.elapsed())
        })
        .collect::<Result<_, _>>()
        .context("proving")?;
    let peak_rss_kib = peak_rss_kib()?;

    // Check the first proof, so a fast wrong prover cannot pass for a fast one.
    let mut verifier = Verifier::new();
    let key_id = verifier.register(&key.verifying_key());
    let inputs: Vec<[u8; 32]> = statement
        .to_field_elements()
        .iter()
        .map(field_to_bytes)
        .collect();
    if !verifier.verify(&key_id, &proof, &inputs).is_accepted() {
        bail!("the proof does not verify");
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("threads           {}", rayon::current_num_threads());
    println!("key load          {:8.2} ms", ms(loaded));
    println!("prover tables     {:8.2} ms", ms(prepared));
    println!("first proof       {:8.2} ms", ms(first));
    if !warm_times.is_empty() {
        warm_times.sort();
        let median = warm_times[warm_times.len() / 2];
        println!("warm proof        {:8.2} ms (median of {warm})", ms(median));
        // Two-thread proofs on a small shared machine are bimodal: a proof
        // during which another process holds a core runs at about the
        // one-thread speed. Counting them tells a slow first proof that
        // is cold from one that only fell in that mode.
        let slow = warm_times
            .iter()
            .filter(|t| t.as_secs_f64() > 1.5 * median.as_secs_f64())
            .count();
        println!(
            "warm > 1.5 x median {slow} of {warm} (slowest {:.2} ms)",
            ms(*warm_times.last().expect("warm proofs"))
        );
        println!(
            "first / warm      {:8.2}",
            first.as_secs_f64() / median.as_secs_f64()
        );
    }
    println!(
        "peak RSS          {:8.1} MiB ({peak_rss_kib} KiB)",
        peak_rss_kib as f64 / 1024.0
    );
    println!("proof verifies    yes");
    Ok(())
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
