//! The server's own split of SubmitProof's time, from its metrics endpoint:
//! scraped before and after a step, the difference of each histogram is
//! that step's distribution.

use std::{collections::HashMap, net::SocketAddr};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_parse::{Scrape, Value};

/// The histograms the stage table reads, by metric name.
pub const STAGES: [(&str, &str); 8] = [
    ("engine", "zkid_submit_proof_seconds"),
    ("lookup", "zkid_submit_proof_lookup_seconds"),
    ("verify", "zkid_submit_proof_verify_seconds"),
    ("queue", "zkid_proof_queue_wait_seconds"),
    ("batch", "zkid_proof_batch_seconds"),
    ("record", "zkid_submit_proof_record_seconds"),
    ("write queue", "zkid_store_write_queue_wait_seconds"),
    ("group commit", "zkid_store_group_commit_seconds"),
];

/// Proofs per batch.
pub const BATCH_SIZE: &str = "zkid_proof_batch_size";

/// Writes per group commit.
pub const GROUP_SIZE: &str = "zkid_store_group_size";

/// One histogram: cumulative bucket counts by upper bound, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound, observations at or below it)`, ascending; the last
    /// bound is +Inf.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// What was observed between `earlier` and this one (counts only grow
    /// while the server runs).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (bound, count - before)
            })
            .collect();
        Histogram {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The mean observation (NaN without any).
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// The `q` quantile, interpolated linearly inside its bucket as
    /// Prometheus's `histogram_quantile` does; in the top (+Inf) bucket,
    /// the highest finite bound. NaN without observations.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.buckets.last().map_or(0.0, |&(_, c)| c);
        if total <= 0.0 {
            return f64::NAN;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.buckets {
            if count >= rank {
                if bound.is_infinite() {
                    return lower.0;
                }
                let inside = count - lower.1;
                if inside <= 0.0 {
                    return bound;
                }
                return lower.0 + (bound - lower.0) * (rank - lower.1) / inside;
            }
            lower = (bound, count);
        }
        lower.0
    }
}

/// Every histogram of a scrape, by metric name.
pub type Snapshot = HashMap<String, Histogram>;

/// Each histogram of `later` less its value in `earlier`.
pub fn between(earlier: &Snapshot, later: &Snapshot) -> Snapshot {
    later
        .iter()
        .map(|(name, histogram)| {
            let step = match earlier.get(name) {
                Some(before) => histogram.since(before),
                None => histogram.clone(),
            };
            (name.clone(), step)
        })
        .collect()
}

/// The table's header and separator, for [`row`].
pub fn header() -> String {
    let mut header = String::from("| step |");
    for (stage, _) in STAGES {
        header.push_str(&format!(" {stage} mean ms | {stage} p99 ms |"));
    }
    header.push_str(" proofs per batch | writes per group |");
    let columns = 3 + 2 * STAGES.len();
    let separator = format!("|{}", " --- |".repeat(columns));
    format!("{header}\n{separator}")
}

/// One step's row: each stage's mean and p99 in milliseconds, and the
/// mean batch size.
pub fn row(label: &str, step: &Snapshot) -> String {
    let mut row = format!("| {label} |");
    let missing = Histogram::default();
    for (_, metric) in STAGES {
        let histogram = step.get(metric).unwrap_or(&missing);
        row.push_str(&format!(
            " {:.2} | {:.2} |",
            histogram.mean() * 1e3,
            histogram.quantile(0.99) * 1e3
        ));
    }
    for size in [BATCH_SIZE, GROUP_SIZE] {
        let sizes = step.get(size).unwrap_or(&missing);
        row.push_str(&format!(" {:.1} |", sizes.mean()));
    }
    row
}

/// Parses OpenMetrics (or Prometheus) text into its histograms.
///
/// # Errors
/// If the text cannot be read as lines.
pub fn parse(text: &str) -> Result<Snapshot> {
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))?;
    let mut snapshot = Snapshot::new();
    for sample in &scrape.samples {
        if let Value::Histogram(buckets) = &sample.value {
            let mut buckets: Vec<(f64, f64)> =
                buckets.iter().map(|b| (b.less_than, b.count)).collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            snapshot.entry(sample.metric.clone()).or_default().buckets = buckets;
        }
    }
    for sample in &scrape.samples {
        let value = match sample.value {
            Value::Untyped(v) | Value::Counter(v) | Value::Gauge(v) => v,
            _ => continue,
        };
        if let Some(name) = sample.metric.strip_suffix("_sum") {
            if let Some(histogram) = snapshot.get_mut(name) {
                histogram.sum = value;
            }
        } else if let Some(name) = sample.metric.strip_suffix("_count") {
            if let Some(histogram) = snapshot.get_mut(name) {
                histogram.count = value;
            }
        }
    }
    Ok(snapshot)
}

/// `GET /metrics` from the server at `addr`, parsed.
///
/// # Errors
/// If the connection, the response or the text fails.
pub async fn scrape(addr: SocketAddr) -> Result<Snapshot> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the metrics endpoint {addr}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("metrics endpoint handshake")?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        bail!("the metrics endpoint answered {}", response.status());
    }
    let body = response.into_body().collect().await?.to_bytes();
    drop(sender);
    // The connection ends once the sender is gone; its result says nothing
    // about the body already read.
    let _ = connection.await;
    parse(std::str::from_utf8(&body).context("the metrics are not UTF-8")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP zkid_proof_batch_seconds Time one batch took.
# TYPE zkid_proof_batch_seconds histogram
# UNIT zkid_proof_batch_seconds seconds
zkid_proof_batch_seconds_sum 0.012
zkid_proof_batch_seconds_count 4
zkid_proof_batch_seconds_bucket{le="0.001"} 0
zkid_proof_batch_seconds_bucket{le="0.002"} 2
zkid_proof_batch_seconds_bucket{le="0.005"} 4
zkid_proof_batch_seconds_bucket{le="+Inf"} 4
# HELP zkid_proof_submissions_shed Shed.
# TYPE zkid_proof_submissions_shed counter
zkid_proof_submissions_shed_total 3
# EOF
"#;

    #[test]
    fn openmetrics_text_parses_into_histograms() {
        let snapshot = parse(TEXT).expect("parses");
        let batch = &snapshot["zkid_proof_batch_seconds"];
        assert_eq!(batch.count, 4.0);
        assert!((batch.sum - 0.012).abs() < 1e-12);
        assert_eq!(
            batch.buckets,
            vec![
                (0.001, 0.0),
                (0.002, 2.0),
                (0.005, 4.0),
                (f64::INFINITY, 4.0)
            ]
        );
        assert!((batch.mean() - 0.003).abs() < 1e-12);
        assert_eq!(snapshot.len(), 1, "counters are not histograms");
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let batch = parse(TEXT).expect("parses")["zkid_proof_batch_seconds"].clone();
        // Two of four observations lie in (0.001, 0.002]: the median is
        // that bucket's top.
        assert!((batch.quantile(0.5) - 0.002).abs() < 1e-12);
        // The 75th percentile is halfway through (0.002, 0.005].
        assert!((batch.quantile(0.75) - 0.0035).abs() < 1e-12);
        assert!(Histogram::default().quantile(0.99).is_nan());
    }

    #[test]
    fn a_difference_holds_only_the_later_observations() {
        let earlier = Histogram {
            buckets: vec![(0.001, 1.0), (0.01, 2.0), (f64::INFINITY, 2.0)],
            sum: 0.0105,
            count: 2.0,
        };
        let later = Histogram {
            buckets: vec![(0.001, 1.0), (0.01, 5.0), (f64::INFINITY, 6.0)],
            sum: 0.0605,
            count: 6.0,
        };
        let step = later.since(&earlier);
        assert_eq!(
            step.buckets,
            vec![(0.001, 0.0), (0.01, 3.0), (f64::INFINITY, 4.0)]
        );
        assert_eq!(step.count, 4.0);
        assert!((step.mean() - 0.0125).abs() < 1e-12);
        // The top 1% lies above the last finite bound: reported as it.
        assert!((step.quantile(0.99) - 0.01).abs() < 1e-12);
    }
}
