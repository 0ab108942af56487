//! Proof verification: off the async runtime, batched under load, with a
//! bounded queue that sheds instead of letting latency grow.
//!
//! A Groth16 verification costs about 1 ms of CPU; done on a tokio worker
//! it would stall every other RPC on that worker. [`ProofChecker`] hands
//! each submission to a dispatcher thread through a bounded queue and
//! awaits the verdicts through a oneshot channel.
//!
//! The dispatcher takes the oldest submission, waits until the batch in
//! flight (if any) is done, then drains whatever else is queued, up to
//! [`BatchSettings::max_batch`] proofs, and verifies the lot on rayon with
//! one [`Verifier::verify_batch`] (a random linear combination: about
//! 0.25 ms of CPU per proof instead of 1 ms; a failing batch is bisected,
//! so every proof gets its own verdict). So:
//!
//! - at low load a lone proof finds nothing in flight and an empty queue
//!   and is verified at once, alone (a batch of one is the plain check);
//! - under load, proofs that arrive while a batch is verified wait in the
//!   queue and form the next batch by themselves;
//! - when submissions arrive faster than one per [`BatchSettings::window`]
//!   (an estimate from the gaps between recent submissions), or a batch
//!   already holds more than one, the batch waits for more until the window
//!   has passed since its oldest submission or it is full. Without that, a
//!   steady stream that never overlaps a batch in flight is verified one
//!   proof at a time, each paying a batch's fixed cost (the final
//!   exponentiation and the key's own pairing terms, about 0.75 ms of the
//!   1 ms a lone proof costs) for 0.27 ms of per-proof work;
//! - an invalid proof costs the valid ones of its batch only the bisection
//!   (about `2 log2 N` batch checks), not a wait for a retry;
//! - when the queue is full, [`ProofChecker::verify`] fails at once with
//!   [`DomainError::Overloaded`] (RESOURCE_EXHAUSTED on the wire): the
//!   caller has not consumed anything and may retry.
//!
//! # One batch in flight
//! `verify_batch` spreads a batch over every rayon thread itself, so a
//! second batch in flight adds no parallelism; what it does is split the
//! arrivals into two smaller batches, and at moderate load it verifies
//! lone proofs side by side at four times a batched proof's cost. With one
//! batch in flight the arrivals of a busy moment join one batch. Measured
//! with `zkid-loadgen` on two cores (benches/RESULTS.md, "Server under
//! load"): the server's CPU per session fell by 4 to 15% at 16 to 128
//! sessions in flight.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
        Arc, Condvar, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use zkid_circuits::{batch::BatchItem, encoding::FIELD_LEN, KeyId, Verdict, Verifier};

use super::DomainError;
use crate::metrics::{observe, VerifierMetrics};

/// One proof with the statement the server expects it to prove.
#[derive(Clone)]
pub(crate) struct ProofItem {
    pub(crate) key_id: KeyId,
    pub(crate) proof: Vec<u8>,
    pub(crate) public_inputs: Vec<[u8; FIELD_LEN]>,
}

/// How the checker queues and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Submissions that may wait for verification; one more is shed.
    pub queue_capacity: usize,
    /// Proofs in one batch. A batch stops taking submissions once it holds
    /// this many proofs (the last submission may carry it a little over).
    pub max_batch: usize,
    /// How long after its oldest submission a batch may wait for more,
    /// when the load shows more are coming (see the module docs). Zero:
    /// never wait.
    pub window: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            // Not 64: on two cores a batch of 64 holds both for about
            // 9 ms, and with sessions, storage and gRPC on the same cores
            // the submit-to-outcome p99 at 80% of saturation came to 57 to
            // 79 ms; with 16, 45 ms, and saturation rose from about 1,000
            // to 1,200 sessions/s (benches/RESULTS.md, "Server under
            // load"). A batch of 16 still costs 0.32 ms per proof on one
            // thread, against 0.24 ms at 64 and 0.79 ms alone.
            max_batch: 16,
            // Windows of 2 and 4 ms moved neither the server's CPU per
            // session nor the p99 at 80% of saturation beyond the spread
            // between runs (`zkid-loadgen --window-micros`;
            // benches/RESULTS.md, 2026-12-03).
            window: Duration::ZERO,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Verdict>, DomainError>>;

/// One submission's proofs and where its verdicts go.
struct Job {
    items: Vec<ProofItem>,
    reply: Reply,
    submitted: Instant,
}

/// How often submissions arrive: a moving average of the gaps between
/// them, as the dispatcher takes them from the queue in submission order.
struct ArrivalGaps {
    mean: Duration,
    last: Option<Instant>,
    window: Duration,
}

impl ArrivalGaps {
    fn new(window: Duration) -> Self {
        Self {
            mean: Self::longest_gap(window),
            last: None,
            window,
        }
    }

    /// Longer gaps count as this long, so that an idle spell reads as low
    /// load without needing many arrivals to be forgotten.
    fn longest_gap(window: Duration) -> Duration {
        window.saturating_mul(4)
    }

    fn record(&mut self, submitted: Instant) {
        if let Some(last) = self.last {
            let gap = submitted
                .saturating_duration_since(last)
                .min(Self::longest_gap(self.window));
            // Weight 1/4: a burst is recognised within about five arrivals.
            self.mean = (self.mean * 3 + gap) / 4;
        }
        self.last = Some(self.last.map_or(submitted, |last| last.max(submitted)));
    }

    /// Whether at least one more submission is due within the window.
    fn more_due_within_window(&self) -> bool {
        self.mean < self.window
    }
}

/// Batches verified at the same time (see the module docs).
const BATCHES_IN_FLIGHT: usize = 1;

/// A counting semaphore for the dispatcher thread, which is not async.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) {
        // A poisoned lock still holds a valid count: the critical sections
        // below cannot leave it half-updated.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.freed.notify_one();
    }
}

/// Verifies proofs on rayon's thread pool, batching what arrives together.
/// Cheap to clone; the dispatcher thread ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct ProofChecker {
    queue: SyncSender<Job>,
    metrics: VerifierMetrics,
    #[cfg(test)]
    slots: Arc<Slots>,
    #[cfg(test)]
    batches: Arc<std::sync::atomic::AtomicUsize>,
}

impl ProofChecker {
    /// Wraps a verifier with every key registered, with the default
    /// [`BatchSettings`].
    pub fn new(verifier: Verifier) -> Self {
        Self::with_settings(verifier, BatchSettings::default())
    }

    /// Wraps a verifier with every key registered, with metrics that no
    /// registry exposes.
    pub fn with_settings(verifier: Verifier, settings: BatchSettings) -> Self {
        Self::with_metrics(verifier, settings, VerifierMetrics::unregistered())
    }

    /// Wraps a verifier with every key registered, observing queue waits,
    /// batches and shedding in `metrics`. Starts the dispatcher thread;
    /// settings below one (capacity, batch size) count as one.
    pub(crate) fn with_metrics(
        verifier: Verifier,
        settings: BatchSettings,
        metrics: VerifierMetrics,
    ) -> Self {
        let settings = BatchSettings {
            queue_capacity: settings.queue_capacity.max(1),
            max_batch: settings.max_batch.max(1),
            window: settings.window,
        };
        let (queue, jobs) = mpsc::sync_channel(settings.queue_capacity);
        let slots = Arc::new(Slots {
            free: Mutex::new(BATCHES_IN_FLIGHT),
            freed: Condvar::new(),
        });
        #[cfg(test)]
        let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dispatcher = Dispatcher {
            verifier: Arc::new(verifier),
            jobs,
            slots: Arc::clone(&slots),
            settings,
            metrics: metrics.clone(),
            #[cfg(test)]
            batches: Arc::clone(&batches),
        };
        // If the thread cannot start, every submission finds the queue
        // disconnected and fails as an internal error, which is logged.
        if let Err(error) = std::thread::Builder::new()
            .name("zkid-verify-dispatch".into())
            .spawn(move || dispatcher.run())
        {
            tracing::error!(%error, "could not start the proof dispatcher");
        }
        Self {
            queue,
            metrics,
            #[cfg(test)]
            slots,
            #[cfg(test)]
            batches,
        }
    }

    /// Each item's verdict, in order.
    ///
    /// # Errors
    /// [`DomainError::Overloaded`] if the queue is full (nothing was
    /// checked; retry later); [`DomainError::Internal`] if verification
    /// panicked or the dispatcher is gone.
    pub(crate) async fn verify(&self, items: Vec<ProofItem>) -> Result<Vec<Verdict>, DomainError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, verdicts) = oneshot::channel();
        let job = Job {
            items,
            reply,
            submitted: Instant::now(),
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.shed.inc();
                tracing::warn!("proof queue full: submission shed");
                return Err(DomainError::Overloaded(
                    "the verifier is at capacity; retry shortly",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(DomainError::Internal("proof dispatcher is gone".into()))
            }
        }
        verdicts
            .await
            .unwrap_or_else(|_| Err(DomainError::Internal("verification task vanished".into())))
    }

    /// Takes every worker slot until the guard drops, so that submissions
    /// queue up: lets tests fill the queue deterministically.
    #[cfg(test)]
    pub(crate) fn hold_workers(&self) -> HeldWorkers {
        let count = BATCHES_IN_FLIGHT;
        for _ in 0..count {
            self.slots.acquire();
        }
        HeldWorkers {
            slots: Arc::clone(&self.slots),
            count,
        }
    }
}

/// Worker slots taken by a test; released on drop.
#[cfg(test)]
pub(crate) struct HeldWorkers {
    slots: Arc<Slots>,
    count: usize,
}

#[cfg(test)]
impl Drop for HeldWorkers {
    fn drop(&mut self) {
        for _ in 0..self.count {
            self.slots.release();
        }
    }
}

struct Dispatcher {
    verifier: Arc<Verifier>,
    jobs: Receiver<Job>,
    slots: Arc<Slots>,
    settings: BatchSettings,
    metrics: VerifierMetrics,
    #[cfg(test)]
    batches: Arc<std::sync::atomic::AtomicUsize>,
}

impl Dispatcher {
    fn run(self) {
        let max_batch = self.settings.max_batch;
        let mut gaps = ArrivalGaps::new(self.settings.window);
        // `recv` fails once every sender (every ProofChecker clone) is gone.
        while let Ok(first) = self.jobs.recv() {
            let deadline = first.submitted + self.settings.window;
            let mut batch = Gathered::default();
            batch.take(first, &mut gaps);
            // Whatever arrives while we wait for a slot joins this batch.
            self.slots.acquire();
            while batch.proofs < max_batch {
                match self.jobs.try_recv() {
                    Ok(job) => batch.take(job, &mut gaps),
                    Err(_) => break,
                }
            }
            // A lone proof at low load goes at once; one that is part of a
            // stream waits for the stream's next proofs.
            let wait = !self.settings.window.is_zero()
                && (batch.jobs.len() > 1 || gaps.more_due_within_window());
            if wait {
                while batch.proofs < max_batch {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.jobs.recv_timeout(left) {
                        Ok(job) => batch.take(job, &mut gaps),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            #[cfg(test)]
            self.batches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let verifier = Arc::clone(&self.verifier);
            let slots = Arc::clone(&self.slots);
            let metrics = self.metrics.clone();
            rayon::spawn(move || {
                verify_jobs(&verifier, batch.jobs, &metrics);
                slots.release();
            });
        }
    }
}

/// The submissions of the batch being gathered, and their proof count.
#[derive(Default)]
struct Gathered {
    jobs: Vec<Job>,
    proofs: usize,
}

impl Gathered {
    fn take(&mut self, job: Job, gaps: &mut ArrivalGaps) {
        gaps.record(job.submitted);
        self.proofs += job.items.len();
        self.jobs.push(job);
    }
}

/// Verifies the jobs' proofs in one batch and answers each job.
fn verify_jobs(verifier: &Verifier, jobs: Vec<Job>, metrics: &VerifierMetrics) {
    let started = Instant::now();
    let mut proofs = 0;
    for job in &jobs {
        observe(
            &metrics.queue_wait,
            started.saturating_duration_since(job.submitted),
        );
        proofs += job.items.len();
    }
    metrics.batch_size.observe(proofs as f64);
    let verdicts = catch_unwind(AssertUnwindSafe(|| {
        let items: Vec<BatchItem<'_>> = jobs
            .iter()
            .flat_map(|job| &job.items)
            .map(|item| BatchItem {
                key_id: &item.key_id,
                proof: &item.proof,
                public_inputs: &item.public_inputs,
            })
            .collect();
        verifier.verify_batch(&items)
    }));
    observe(&metrics.batch, started.elapsed());
    match verdicts {
        Ok(verdicts) => {
            let mut verdicts = verdicts.into_iter();
            for job in jobs {
                let mine: Vec<Verdict> = verdicts.by_ref().take(job.items.len()).collect();
                let answer = if mine.len() == job.items.len() {
                    Ok(mine)
                } else {
                    Err(DomainError::Internal(
                        "batch verifier returned too few verdicts".into(),
                    ))
                };
                // The receiver is gone only if the RPC was dropped.
                let _ = job.reply.send(answer);
            }
        }
        Err(_) => {
            for job in jobs {
                let _ = job.reply.send(Err(DomainError::Internal(
                    "proof verification panicked".into(),
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use ark_bn254::Fr;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use zkid_circuits::{
        encoding::field_to_bytes,
        generate_keys,
        pin::{device_commitment, DeviceSecret, Pin, PinKnowledge},
        prove, CircuitProvingKey, CircuitVerifyingKey, Rejection,
    };

    use super::*;

    fn keys() -> &'static (CircuitProvingKey, CircuitVerifyingKey) {
        static KEYS: OnceLock<(CircuitProvingKey, CircuitVerifyingKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            generate_keys::<PinKnowledge, _>(&mut ChaCha20Rng::seed_from_u64(5)).expect("setup")
        })
    }

    fn verifier() -> Verifier {
        let mut verifier = Verifier::new();
        verifier.register(&keys().1);
        verifier
    }

    /// A valid proof for `challenge` by a phone seeded with `seed`.
    fn item(seed: u64, challenge: u64) -> ProofItem {
        let (pk, vk) = keys();
        let pin = Pin::parse("2468").expect("pin");
        let secret = DeviceSecret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let commitment = device_commitment(&pin, &secret);
        let challenge = Fr::from(challenge);
        let proof = prove(
            pk,
            PinKnowledge::new(&pin, &secret, challenge),
            &mut ChaCha20Rng::seed_from_u64(seed + 100),
        )
        .expect("prove");
        ProofItem {
            key_id: vk.key_id,
            proof,
            public_inputs: vec![field_to_bytes(&commitment), field_to_bytes(&challenge)],
        }
    }

    fn settings(queue_capacity: usize, max_batch: usize, window: Duration) -> BatchSettings {
        BatchSettings {
            queue_capacity,
            max_batch,
            window,
        }
    }

    #[tokio::test]
    #[serial_test::serial(timing)]
    async fn a_lone_proof_is_not_delayed_by_the_window() {
        let checker =
            ProofChecker::with_settings(verifier(), settings(16, 64, Duration::from_secs(30)));
        let proof = item(1, 10);
        let verdicts = tokio::time::timeout(Duration::from_secs(10), checker.verify(vec![proof]))
            .await
            .expect("a lone proof must not wait for the 30 s window")
            .expect("verified");
        assert_eq!(verdicts, vec![Verdict::Accepted]);
    }

    #[test]
    fn arrival_gaps_read_a_stream_as_load_and_an_idle_spell_as_none() {
        let window = Duration::from_millis(4);
        let mut gaps = ArrivalGaps::new(window);
        let start = Instant::now();
        gaps.record(start);
        assert!(!gaps.more_due_within_window(), "one arrival is no stream");
        let mut at = start;
        for _ in 0..6 {
            at += Duration::from_millis(1);
            gaps.record(at);
        }
        assert!(
            gaps.more_due_within_window(),
            "one per millisecond is a stream"
        );
        for _ in 0..6 {
            at += Duration::from_secs(1);
            gaps.record(at);
        }
        assert!(!gaps.more_due_within_window(), "one per second is low load");
        // Out-of-order stamps from racing submitters do not move time back.
        gaps.record(at - Duration::from_secs(5));
        assert!(!gaps.more_due_within_window());
    }

    #[tokio::test]
    #[serial_test::serial(timing)]
    async fn a_stream_of_lone_proofs_is_gathered_into_batches() {
        let proof = item(1, 10);
        // Proofs spaced well apart from each other's verification, so that
        // none overlaps a batch in flight: without the window each would
        // be a batch of its own.
        let calibrate = ProofChecker::new(verifier());
        let started = Instant::now();
        calibrate
            .verify(vec![proof.clone()])
            .await
            .expect("verified");
        let spacing = (started.elapsed() * 3).max(Duration::from_millis(10));
        let window = spacing * 10;
        let checker = ProofChecker::with_settings(verifier(), settings(64, 64, window));
        let mut pending = Vec::new();
        for _ in 0..20 {
            let checker = checker.clone();
            let proof = proof.clone();
            pending.push(tokio::spawn(async move {
                let submitted = Instant::now();
                let verdicts = checker.verify(vec![proof]).await;
                (verdicts, submitted.elapsed())
            }));
            tokio::time::sleep(spacing).await;
        }
        for task in pending {
            let (verdicts, waited) = task.await.expect("task");
            assert_eq!(verdicts.expect("verified"), vec![Verdict::Accepted]);
            // The window counts from the submission: a proof that queued
            // through one batch's wait does not wait a whole window more
            // (that would be two windows). The half window left over is
            // for the batch's verification, which other tests running at
            // the same time can slow well beyond the calibration.
            assert!(waited < window + window / 2, "waited {waited:?}");
        }
        let batches = checker.batches.load(std::sync::atomic::Ordering::SeqCst);
        // The first few arrivals go alone while the estimate learns the
        // stream; the rest wait for one another.
        assert!(batches <= 12, "20 proofs in {batches} batches");
    }

    #[tokio::test]
    async fn every_proof_of_a_batch_with_an_invalid_one_gets_its_own_verdict() {
        let checker =
            ProofChecker::with_settings(verifier(), settings(64, 64, Duration::from_millis(1)));
        let mut submissions = Vec::new();
        for seed in 0..8 {
            let mut proof = item(seed, 20 + seed);
            if seed == 5 {
                // A proof of another challenge than the one it is checked
                // against: well-formed, false.
                proof.public_inputs[1] = field_to_bytes(&Fr::from(999u64));
            }
            submissions.push(proof);
        }
        // Held workers make the eight submissions queue up and go in one
        // batch together when released.
        let held = checker.hold_workers();
        let pending: Vec<_> = submissions
            .into_iter()
            .map(|proof| {
                let checker = checker.clone();
                tokio::spawn(async move { checker.verify(vec![proof]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        for (seed, pending) in pending.into_iter().enumerate() {
            let verdicts = pending.await.expect("task").expect("verified");
            if seed == 5 {
                assert_eq!(verdicts, vec![Verdict::Rejected(Rejection::InvalidProof)]);
            } else {
                assert_eq!(verdicts, vec![Verdict::Accepted], "proof {seed}");
            }
        }
    }

    #[tokio::test]
    #[serial_test::serial(timing)]
    async fn submissions_arriving_during_a_batch_wait_for_it_and_go_together() {
        // No window: only the batch in flight makes them wait.
        let checker = ProofChecker::with_settings(verifier(), settings(64, 64, Duration::ZERO));
        let large: Vec<ProofItem> = (0..16).map(|seed| item(seed, 80 + seed)).collect();
        let singles: Vec<ProofItem> = (0..4).map(|seed| item(20 + seed, 90 + seed)).collect();
        let answered = |checker: &ProofChecker, items: Vec<ProofItem>| {
            let checker = checker.clone();
            tokio::spawn(async move {
                let verdicts = checker.verify(items).await;
                (verdicts, Instant::now())
            })
        };
        let in_flight = answered(&checker, large);
        // The dispatcher counts a batch as it hands it to rayon.
        while checker.batches.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The sixteen take far longer to verify than these take to queue.
        let arrivals: Vec<_> = singles
            .into_iter()
            .map(|proof| answered(&checker, vec![proof]))
            .collect();
        let (verdicts, large_done) = in_flight.await.expect("task");
        assert!(verdicts.expect("verified").iter().all(Verdict::is_accepted));
        for arrival in arrivals {
            let (verdicts, done) = arrival.await.expect("task");
            assert_eq!(verdicts.expect("verified"), vec![Verdict::Accepted]);
            // With a second batch allowed in flight, the first single
            // would have been verified alone beside the sixteen, and
            // answered first.
            assert!(
                done > large_done,
                "an arrival waits for the batch in flight"
            );
        }
        assert_eq!(
            checker.batches.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the sixteen, then the four singles as one batch"
        );
    }

    #[tokio::test]
    async fn a_submission_of_several_proofs_gets_its_verdicts_in_order() {
        let checker = ProofChecker::with_settings(verifier(), settings(4, 64, Duration::ZERO));
        let mut bad = item(3, 31);
        bad.public_inputs[0] = field_to_bytes(&Fr::from(1u64));
        let verdicts = checker
            .verify(vec![item(1, 30), bad, item(2, 32)])
            .await
            .expect("verified");
        assert_eq!(
            verdicts,
            vec![
                Verdict::Accepted,
                Verdict::Rejected(Rejection::InvalidProof),
                Verdict::Accepted
            ]
        );
    }

    #[tokio::test]
    async fn a_full_queue_sheds_and_the_rest_is_answered() {
        let capacity = 2;
        let metrics = VerifierMetrics::unregistered();
        let checker = ProofChecker::with_metrics(
            verifier(),
            settings(capacity, 64, Duration::ZERO),
            metrics.clone(),
        );
        let held = checker.hold_workers();
        let proof = item(7, 70);
        // The dispatcher holds at most one submission while it waits for a
        // slot and the queue holds `capacity`: one more than that must shed.
        let mut pending = Vec::new();
        let mut shed = 0;
        for _ in 0..capacity + 2 {
            let checker = checker.clone();
            let proof = proof.clone();
            pending.push(tokio::spawn(
                async move { checker.verify(vec![proof]).await },
            ));
        }
        // Lets every task reach its queue; with the workers held, only the
        // shed ones can finish.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut answered = Vec::new();
        for task in pending {
            if task.is_finished() {
                match task.await.expect("task") {
                    Err(DomainError::Overloaded(_)) => shed += 1,
                    other => panic!("only a shed answers while workers are held: {other:?}"),
                }
            } else {
                answered.push(task);
            }
        }
        assert!(shed >= 1, "a full queue must shed");
        assert!(answered.len() <= capacity + 1);
        assert_eq!(metrics.shed.get(), shed);
        drop(held);
        let answered_count = answered.len() as u64;
        for task in answered {
            assert_eq!(
                task.await.expect("task").expect("verified"),
                vec![Verdict::Accepted]
            );
        }
        // Every answered submission's wait was observed once, and it spans
        // most of the 100 ms the workers were held (the submissions enter
        // the queue just after the sleep starts).
        assert_eq!(metrics.queue_wait.count(), answered_count);
        assert!(metrics.queue_wait.sum() >= 0.05 * answered_count as f64);
        assert_eq!(metrics.batch_size.sum(), answered_count as f64);
        assert!(metrics.batch.count() >= 1);
    }

    /// Through the engine: a submission shed because the queue is full
    /// consumes nothing, so the phone's retry with the same proof passes.
    #[tokio::test]
    async fn a_shed_submission_leaves_the_session_pending() {
        use ed25519_dalek::SigningKey;
        use rand::rngs::OsRng;
        use tokio::sync::watch;
        use zkid_circuits::{encoding::field_from_bytes, ZkCircuit};

        use crate::{
            admin,
            domain::{
                catalog::Catalog,
                keyring::KeyRing,
                model::{CustomerRef, LockoutPolicy, Role, SessionState},
                Engine, EngineSettings, RandomChallenges, SubmittedProof,
            },
            store::SqliteStore,
        };

        let dir = tempfile::tempdir().expect("key dir");
        let (pk, vk) = keys();
        let circuit = PinKnowledge::id();
        let (pk_path, vk_path) = crate::keys::key_paths(dir.path(), &circuit);
        pk.save(&pk_path).expect("save pk");
        vk.save(&vk_path).expect("save vk");
        let loaded = crate::keys::load_or_generate(dir.path(), std::slice::from_ref(&circuit.name))
            .expect("keys");
        let policy = crate::domain::policy::Policy::parse(
            "[operations.balance_inquiry]\ndisplay_name = \"balance inquiry\"\nlevel = 1\nprove = [\"device\"]\n",
        )
        .expect("policy");
        let catalog = Catalog::new(
            crate::domain::policy::Policies::uniform(policy),
            loaded.circuits,
        )
        .expect("catalog");
        let checker = ProofChecker::with_settings(loaded.verifier, settings(1, 64, Duration::ZERO));
        let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
        let signing = Arc::new(KeyRing::new(SigningKey::generate(&mut OsRng), []));
        let (_stop, shutdown) = watch::channel(false);
        let engine = Engine::new(
            store.clone(),
            catalog,
            checker.clone(),
            Arc::clone(&signing),
            EngineSettings {
                session_ttl: Duration::from_secs(60),
                enrollment_code_ttl: Duration::from_secs(600),
                lockout: LockoutPolicy {
                    max_failures: 5,
                    base: Duration::from_secs(60),
                    max: Duration::from_secs(600),
                },
                agent_sessions_per_minute: 10,
                device_sessions_per_minute: 10,
                verdict_ttl: Duration::from_secs(600),
                customer_verifications_per_day: 10,
                step_up_window: Duration::from_secs(300),
                change_revert_window: Duration::from_secs(3600),
                operator_assertion_ttl: Duration::from_secs(60),
                challenges: Arc::new(RandomChallenges),
            },
            shutdown,
        );
        admin::create_tenant(store.as_ref(), "acme", "Acme Bank")
            .await
            .expect("tenant");
        let mut callers = Vec::new();
        for role in [Role::Agent, Role::Enroller] {
            let (_, token) =
                admin::create_credential(store.as_ref(), &signing, "acme", role, None, None)
                    .await
                    .expect("credential");
            callers.push(engine.authenticate(token.expose()).await.expect("caller"));
        }
        let (agent, enroller) = (&callers[0], &callers[1]);
        let customer = CustomerRef::parse("cust-1").expect("ref");
        let code = engine
            .register_customer(enroller, customer.clone(), None)
            .await
            .expect("register")
            .code;
        let pin = Pin::parse("2468").expect("pin");
        let secret = DeviceSecret::generate(&mut ChaCha20Rng::seed_from_u64(40));
        let enrolled = engine
            .enroll_device(
                &engine.authenticate(code.expose()).await.expect("code"),
                field_to_bytes(&device_commitment(&pin, &secret)),
            )
            .await
            .expect("enroll");
        let phone = engine
            .authenticate(enrolled.token.expose())
            .await
            .expect("phone");
        let session = engine
            .start_verification(agent, customer, "balance_inquiry", None, None)
            .await
            .expect("start");
        let challenge = field_from_bytes(&session.challenge).expect("challenge");
        let answer = vec![SubmittedProof {
            key_id: vk.key_id.0.to_vec(),
            proof: prove(
                pk,
                PinKnowledge::new(&pin, &secret, challenge),
                &mut ChaCha20Rng::seed_from_u64(41),
            )
            .expect("prove"),
        }];

        // Held workers: the dispatcher keeps one submission waiting for a
        // slot and the queue (capacity 1) keeps another; it is full.
        let held = checker.hold_workers();
        let fillers: Vec<_> = (0..2)
            .map(|seed| {
                let checker = checker.clone();
                tokio::spawn(async move { checker.verify(vec![item(seed, 50)]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let shed = engine
            .submit_proof(&phone, &session.id, answer.clone())
            .await
            .expect_err("a full queue sheds");
        assert!(matches!(shed, DomainError::Overloaded(_)), "{shed:?}");
        let still = engine
            .get_session(agent, &session.id)
            .await
            .expect("session");
        assert_eq!(still.state, SessionState::Pending);

        drop(held);
        for filler in fillers {
            // One filler may itself have been shed; either way it ends.
            let _ = filler.await.expect("task");
        }
        let passed = engine
            .submit_proof(&phone, &session.id, answer)
            .await
            .expect("the retry is verified");
        assert_eq!(passed.state, SessionState::Passed);
    }
}
