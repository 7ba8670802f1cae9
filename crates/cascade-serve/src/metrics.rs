//! Prometheus metrics in the text exposition format: request latency per
//! route and per pipeline stage, candidates per recall channel, responses by
//! status. A mutex per update is far below a request's cost here.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// (metric name, label text) → histogram.
    histograms: BTreeMap<(&'static str, String), Histogram>,
    /// (metric name, label text) → counter.
    counters: BTreeMap<(&'static str, String), u64>,
}

/// One variant's serving health, beside its experiment's results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct VariantGuardrail {
    /// Requests served to the variant.
    pub requests: u64,
    /// Of them, refused or failed.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// The p99 latency's histogram bucket bound, in ms.
    pub p99_ms: Option<f64>,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Registry {
    fn observe(&mut self, name: &'static str, labels: String, seconds: f64) {
        self.histograms.entry((name, labels)).or_default().observe(seconds);
    }

    fn add(&mut self, name: &'static str, labels: String, count: u64) {
        *self.counters.entry((name, labels)).or_default() += count;
    }
}

impl Metrics {
    fn registry(&self) -> parking_lot::MutexGuard<'_, Registry> {
        self.registry.lock()
    }

    /// A request on `route` answered `status` after `elapsed`.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let mut registry = self.registry();
        let seconds = elapsed.as_secs_f64();
        registry.observe("cascade_request_duration_seconds", format!("route=\"{route}\""), seconds);
        let labels = format!("route=\"{route}\",status=\"{status}\"");
        registry.add("cascade_requests_total", labels, 1);
    }

    /// One pipeline stage (`recall`, `rank`, `rerank`) took `elapsed`.
    pub fn stage(&self, stage: &str, elapsed: Duration) {
        let labels = format!("stage=\"{stage}\"");
        self.registry().observe("cascade_stage_duration_seconds", labels, elapsed.as_secs_f64());
    }

    /// A recall channel contributed `count` candidates.
    pub fn candidates(&self, channel: &str, count: usize) {
        let labels = format!("channel=\"{channel}\"");
        self.registry().add("cascade_recall_candidates_total", labels, count as u64);
    }

    /// A read of the shared online store failed; the request went on
    /// without its real-time features.
    pub fn feature_error(&self) {
        self.registry().add("cascade_feature_read_errors_total", String::new(), 1);
    }

    /// The ranker failed on a request, which was answered in recall order.
    pub fn ranker_error(&self) {
        self.registry().add("cascade_ranker_errors_total", String::new(), 1);
    }

    /// One round of online learning: samples learned and skipped, sparse
    /// rows published into the serving model.
    pub fn online_round(&self, learned: usize, skipped: usize, rows: usize) {
        let mut registry = self.registry();
        registry.add("cascade_online_rounds_total", String::new(), 1);
        registry.add("cascade_online_samples_learned_total", String::new(), learned as u64);
        registry.add("cascade_online_samples_skipped_total", String::new(), skipped as u64);
        registry.add("cascade_online_rows_published_total", String::new(), rows as u64);
    }

    /// One round of retrieval learning: interactions learned and skipped,
    /// user and added-item vectors moved.
    pub fn retrieval_round(&self, learned: usize, skipped: usize, users: usize, items: usize) {
        let mut registry = self.registry();
        registry.add("cascade_retrieval_interactions_learned_total", String::new(), learned as u64);
        registry.add("cascade_retrieval_interactions_skipped_total", String::new(), skipped as u64);
        registry.add("cascade_retrieval_user_vectors_moved_total", String::new(), users as u64);
        registry.add("cascade_retrieval_item_vectors_moved_total", String::new(), items as u64);
    }

    /// An item created through the API joined the serving models.
    pub fn item_added(&self) {
        self.registry().add("cascade_items_added_total", String::new(), 1);
    }

    /// A recommendation served (or refused) to a user in `experiment`'s
    /// `variant`: the experiment's guardrails.
    pub fn variant_request(&self, experiment: &str, variant: &str, ok: bool, elapsed: Duration) {
        let mut registry = self.registry();
        let labels = format!("experiment=\"{experiment}\",variant=\"{variant}\"");
        let seconds = elapsed.as_secs_f64();
        registry.observe("cascade_variant_request_duration_seconds", labels.clone(), seconds);
        registry.add("cascade_variant_requests_total", labels.clone(), 1);
        if !ok {
            registry.add("cascade_variant_errors_total", labels, 1);
        }
    }

    /// Requests, errors and the p99 latency (the upper bound of the
    /// histogram bucket holding it; `None` beyond the last bucket) of each
    /// variant of `experiment` this server has served.
    pub fn variant_guardrails(&self, experiment: &str) -> BTreeMap<String, VariantGuardrail> {
        let registry = self.registry();
        let prefix = format!("experiment=\"{experiment}\",variant=\"");
        let variant_of = |labels: &str| {
            labels.strip_prefix(&prefix).map(|rest| rest.trim_end_matches('"').to_owned())
        };
        let mut guardrails = BTreeMap::new();
        for ((name, labels), h) in &registry.histograms {
            let (true, Some(variant)) =
                (*name == "cascade_variant_request_duration_seconds", variant_of(labels))
            else {
                continue;
            };
            let needed = (h.count as f64 * 0.99).ceil() as u64;
            let p99_ms = BUCKETS
                .iter()
                .zip(h.counts)
                .find(|(_, count)| *count >= needed)
                .map(|(b, _)| b * 1e3);
            let errors =
                registry.counters.get(&("cascade_variant_errors_total", labels.clone())).copied();
            let errors = errors.unwrap_or(0);
            let error_rate = if h.count == 0 { 0.0 } else { errors as f64 / h.count as f64 };
            guardrails.insert(
                variant,
                VariantGuardrail { requests: h.count, errors, error_rate, p99_ms },
            );
        }
        guardrails
    }

    /// Each pipeline stage's (count, total seconds) so far, by stage name:
    /// benchmarks difference two readings to get the mean of a window.
    pub fn stage_totals(&self) -> BTreeMap<String, (u64, f64)> {
        let registry = self.registry();
        registry
            .histograms
            .iter()
            .filter(|((name, _), _)| *name == "cascade_stage_duration_seconds")
            .map(|((_, labels), h)| {
                let stage = labels.trim_start_matches("stage=\"").trim_end_matches('"');
                (stage.to_owned(), (h.count, h.sum))
            })
            .collect()
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let registry = self.registry();
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &registry.counters {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            match labels.is_empty() {
                true => writeln!(out, "{name} {value}"),
                false => writeln!(out, "{name}{{{labels}}} {value}"),
            }
            .ok();
        }
        for ((name, labels), h) in &registry.histograms {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_rendered_per_label() {
        let metrics = Metrics::default();
        metrics.request("/v1/recommend", 200, Duration::from_micros(800));
        metrics.request("/v1/recommend", 400, Duration::from_millis(20));
        let text = metrics.render();
        assert!(
            text.contains(
                "cascade_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"0.001\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cascade_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"0.025\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("cascade_requests_total{route=\"/v1/recommend\",status=\"400\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn stage_totals_sum_per_stage() {
        let metrics = Metrics::default();
        metrics.stage("rank", Duration::from_millis(2));
        metrics.stage("rank", Duration::from_millis(4));
        metrics.stage("recall", Duration::from_millis(1));
        let totals = metrics.stage_totals();
        assert_eq!(totals.len(), 2);
        let (count, sum) = totals["rank"];
        assert_eq!(count, 2);
        assert!((sum - 0.006).abs() < 1e-9, "{sum}");
    }
}
