//! Prometheus metrics: where a proof submission's time goes, how full the
//! verifier's batches are, and how much it sheds.
//!
//! A contact center's operations team watches the verifier as it watches
//! any other dependency of its agents' desktops: the time from SubmitProof
//! to its reply, split into the stages an operator can act on (reads,
//! queueing for the verifier, the batch itself, the commit of the verdict),
//! and the shed count that says the deployment needs another replica.
//! Nothing here carries a tenant, a customer or a session: the metrics are
//! process-wide timings and counts, safe to hand to any scraper.
//!
//! Served over HTTP at `GET /metrics` on `metrics_listen`, in the
//! OpenMetrics text format, when that key is set; off by default, because
//! the endpoint has no authentication of its own and belongs on an
//! internal interface.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio::net::TcpListener;

/// Bucket bounds in seconds, from 0.1 ms to 2.5 s: fine enough below
/// 50 ms (the latency target) to tell a queue from a slow commit.
const LATENCY_BUCKETS: [f64; 20] = [
    0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005, 0.007_5, 0.01,
    0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 1.0, 2.5,
];

/// Proofs per batch: powers of two up to the largest configurable batch.
const BATCH_SIZE_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The verifier's metrics, observed on its dispatcher and rayon threads.
#[derive(Clone)]
pub(crate) struct VerifierMetrics {
    /// From a submission entering the queue to its batch starting.
    pub(crate) queue_wait: Histogram,
    /// One batch's verification, bisection included.
    pub(crate) batch: Histogram,
    /// Proofs per batch.
    pub(crate) batch_size: Histogram,
    /// Submissions refused because the queue was full.
    pub(crate) shed: Counter,
}

impl VerifierMetrics {
    /// Metrics that no registry exposes (tests, and a checker built
    /// without a server).
    pub(crate) fn unregistered() -> Self {
        Self {
            queue_wait: latency(),
            batch: latency(),
            batch_size: Histogram::new(BATCH_SIZE_BUCKETS),
            shed: Counter::default(),
        }
    }
}

/// SubmitProof's stages in the engine: their sum is the engine's share of
/// the RPC; the rest of the reply latency is gRPC and authentication.
#[derive(Clone)]
pub(crate) struct SubmitMetrics {
    /// Reading the device, the session and the customer.
    pub(crate) lookup: Histogram,
    /// Handing the proofs to the verifier until the verdicts come back:
    /// the queue wait and the batch, seen from the RPC.
    pub(crate) verify: Histogram,
    /// Recording the resolution (session, verdict, audit records): the
    /// group commit's wait and the commit.
    pub(crate) record: Histogram,
    /// The whole of the engine's part, for submissions that reached a
    /// verdict.
    pub(crate) total: Histogram,
}

impl SubmitMetrics {
    pub(crate) fn unregistered() -> Self {
        Self {
            lookup: latency(),
            verify: latency(),
            record: latency(),
            total: latency(),
        }
    }
}

/// The SQLite store's group commit (module `store::sqlite::group`).
#[derive(Clone)]
pub struct StoreMetrics {
    /// From a write entering the writer's queue to its group starting.
    pub(crate) write_queue_wait: Histogram,
    /// One group's transaction, from BEGIN to COMMIT (retries included).
    pub(crate) group_commit: Histogram,
    /// Writes per group.
    pub(crate) group_size: Histogram,
}

impl StoreMetrics {
    /// Metrics that no registry exposes (the admin CLI, tests).
    #[must_use]
    pub fn unregistered() -> Self {
        Self {
            write_queue_wait: latency(),
            group_commit: latency(),
            group_size: Histogram::new(BATCH_SIZE_BUCKETS),
        }
    }
}

/// Every metric of one server, and the registry that exposes them. Each
/// server owns its own: two servers in one process (as in the tests)
/// never mix their figures.
pub struct Metrics {
    registry: Registry,
    pub(crate) verifier: VerifierMetrics,
    pub(crate) submit: SubmitMetrics,
    /// The store's, handed to it when it opens.
    pub store: StoreMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every zkid metric, all at zero.
    #[must_use]
    pub fn new() -> Self {
        let verifier = VerifierMetrics::unregistered();
        let submit = SubmitMetrics::unregistered();
        let store = StoreMetrics::unregistered();
        let mut registry = Registry::with_prefix("zkid");
        let latencies = [
            (
                "proof_queue_wait",
                "Time a proof submission waited for its verification batch to start",
                &verifier.queue_wait,
            ),
            (
                "proof_batch",
                "Time one batch verification took, bisection of a failing batch included",
                &verifier.batch,
            ),
            (
                "submit_proof_lookup",
                "SubmitProof: reading the device, the session and the customer",
                &submit.lookup,
            ),
            (
                "submit_proof_verify",
                "SubmitProof: from handing the proofs to the verifier to their verdicts",
                &submit.verify,
            ),
            (
                "submit_proof_record",
                "SubmitProof: recording the resolution, verdict and audit records (group commit)",
                &submit.record,
            ),
            (
                "submit_proof",
                "SubmitProof: the engine's whole part, for submissions that reached a verdict",
                &submit.total,
            ),
            (
                "store_write_queue_wait",
                "Time a write (session start, push delivery, resolution) waited for its group commit to start",
                &store.write_queue_wait,
            ),
            (
                "store_group_commit",
                "Time one group commit's transaction took, BEGIN to COMMIT",
                &store.group_commit,
            ),
        ];
        for (name, help, histogram) in latencies {
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        }
        registry.register(
            "proof_batch_size",
            "Proofs verified together in one batch",
            verifier.batch_size.clone(),
        );
        registry.register(
            "store_group_size",
            "Writes committed together in one transaction",
            store.group_size.clone(),
        );
        registry.register(
            "proof_submissions_shed",
            "Proof submissions refused with RESOURCE_EXHAUSTED because the verifier's queue was full",
            verifier.shed.clone(),
        );
        Self {
            registry,
            verifier,
            submit,
            store,
        }
    }

    /// Every metric in the OpenMetrics text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and every metric here encodes.
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

/// Observes `elapsed` in seconds.
pub(crate) fn observe(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render())
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes. Any
/// other path answers 404.
///
/// # Errors
/// If accepting connections fails.
pub async fn serve(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_renders_every_metric_at_zero() {
        let text = Metrics::new().render();
        for name in [
            "zkid_proof_queue_wait_seconds",
            "zkid_proof_batch_seconds",
            "zkid_proof_batch_size",
            "zkid_proof_submissions_shed",
            "zkid_submit_proof_lookup_seconds",
            "zkid_submit_proof_verify_seconds",
            "zkid_submit_proof_record_seconds",
            "zkid_submit_proof_seconds",
            "zkid_store_write_queue_wait_seconds",
            "zkid_store_group_commit_seconds",
            "zkid_store_group_size",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from:\n{text}"
            );
        }
        assert!(text.contains("zkid_proof_submissions_shed_total 0"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn an_observation_lands_in_its_bucket_and_the_sum() {
        let metrics = Metrics::new();
        observe(&metrics.submit.record, Duration::from_millis(4));
        let text = metrics.render();
        assert!(text.contains("zkid_submit_proof_record_seconds_count 1"));
        // 4 ms is above the 3 ms bound and within the 5 ms one.
        assert!(text.contains(r#"zkid_submit_proof_record_seconds_bucket{le="0.003"} 0"#));
        assert!(text.contains(r#"zkid_submit_proof_record_seconds_bucket{le="0.005"} 1"#));
        assert!(text.contains("zkid_submit_proof_record_seconds_sum 0.004"));
    }

    #[test]
    fn two_registries_keep_their_figures_apart() {
        let first = Metrics::new();
        let second = Metrics::new();
        first.verifier.shed.inc();
        assert!(first
            .render()
            .contains("zkid_proof_submissions_shed_total 1"));
        assert!(second
            .render()
            .contains("zkid_proof_submissions_shed_total 0"));
    }
}
