//! `[stream]`: which real-time features the stream processor (and the
//! Redis workers) keep and over what windows; `[online_learning]`: how the
//! server's online learners step and how often they publish.

use serde::Deserialize;

const HOUR_S: u64 = 3_600;

/// One sliding window of item counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The window's length in seconds.
    pub length_s: u64,
    /// How many buckets it is kept in: its edge moves one bucket at a time.
    pub buckets: usize,
}

/// `[stream]`. Changing a key makes the stream's checkpoint unreadable
/// (its features were counted the old way): the server says so at start,
/// and deleting the checkpoint rebuilds the features from the log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Interactions kept per user, newest last (the history DIN, DIEN and
    /// SASRec read at serving).
    pub history_length: usize,
    /// Sliding windows of item counters, shortest first; the first is
    /// also the trending window.
    pub windows: Vec<WindowConfig>,
    /// Weight of the global click-through rate in an item's smoothed one,
    /// in impressions: (clicks + s·p) / (impressions + s).
    pub ctr_prior_impressions: f64,
    /// Half-life of user–category affinities.
    pub affinity_half_life_days: f64,
    /// How long after an impression an interaction still labels it (the
    /// samples online learning reads).
    pub join_window_s: u64,
    /// Events the server's stream thread applies per hold of the features'
    /// lock (readers wait at most one page).
    pub page_events: usize,
    /// The longest the stream thread sleeps when nobody wakes it (appends
    /// it is not told about, such as impressions, wait this long at most).
    pub idle_poll_ms: u64,
    /// How often the features and their log offset are checkpointed while
    /// events flow.
    pub checkpoint_every_s: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            history_length: 50,
            windows: vec![
                WindowConfig { length_s: HOUR_S, buckets: 60 },
                WindowConfig { length_s: 24 * HOUR_S, buckets: 24 },
            ],
            ctr_prior_impressions: 100.0,
            affinity_half_life_days: 7.0,
            join_window_s: 30 * 60,
            page_events: 1_000,
            idle_poll_ms: 50,
            checkpoint_every_s: 5,
        }
    }
}

/// `[online_learning]`: the learners `cascade serve --online-learning`
/// runs. The ranker's trainer learns from the stream's labelled samples;
/// the retrieval learner takes a BPR step per consumption on the users'
/// and added items' embeddings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineLearningConfig {
    /// The ranker learns and publishes a delta this often.
    pub publish_every_s: u64,
    /// The ranker's whole copy is checkpointed this often.
    pub checkpoint_every_s: u64,
    /// Samples per ranker step.
    pub batch_size: usize,
    /// AdamW learning rate of the ranker's dense layers.
    pub dense_learning_rate: f64,
    /// Row-wise Adagrad learning rate of the ranker's embedding rows.
    pub sparse_learning_rate: f32,
    /// Adagrad learning rate of retrieval rows the build did not train
    /// (added items, users it never saw).
    pub retrieval_learning_rate: f32,
    /// Adagrad learning rate of users the build trained (0 keeps them).
    pub built_user_learning_rate: f32,
    /// Adagrad's initial accumulator for retrieval rows: caps first steps.
    pub retrieval_initial_accumulator: f32,
    /// L2 pull towards zero per retrieval step, as in BPR-MF's training.
    pub retrieval_regularization: f32,
    /// How often the retrieval learner reads the log when it had nothing.
    pub retrieval_poll_ms: u64,
    /// Events the retrieval learner reads per round at most.
    pub retrieval_page: usize,
}

impl Default for OnlineLearningConfig {
    fn default() -> Self {
        OnlineLearningConfig {
            publish_every_s: 5,
            checkpoint_every_s: 600,
            batch_size: 128,
            dense_learning_rate: 1e-3,
            sparse_learning_rate: 0.05,
            retrieval_learning_rate: 0.03,
            built_user_learning_rate: 0.0,
            retrieval_initial_accumulator: 0.1,
            retrieval_regularization: 1e-4,
            retrieval_poll_ms: 200,
            retrieval_page: 10_000,
        }
    }
}

impl StreamConfig {
    /// The first key out of range, with why.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.history_length == 0 {
            return Err(("stream.history_length".into(), "expected at least 1".into()));
        }
        let at_least_one = [
            ("stream.page_events", self.page_events as u64),
            ("stream.idle_poll_ms", self.idle_poll_ms),
            ("stream.checkpoint_every_s", self.checkpoint_every_s),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "expected at least 1".into()));
        }
        if self.windows.is_empty() {
            return Err(("stream.windows".into(), "expected at least one window".into()));
        }
        for (k, window) in self.windows.iter().enumerate() {
            if window.length_s == 0 || window.buckets == 0 {
                return Err((
                    format!("stream.windows[{k}]"),
                    "expected a length and a bucket count of at least 1".into(),
                ));
            }
        }
        let positive = [
            ("stream.ctr_prior_impressions", self.ctr_prior_impressions),
            ("stream.affinity_half_life_days", self.affinity_half_life_days),
        ];
        if let Some((key, value)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(((*key).into(), format!("expected a positive number, got {value}")));
        }
        Ok(())
    }
}

impl OnlineLearningConfig {
    /// The first key out of range, with why.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let at_least_one = [
            ("online_learning.publish_every_s", self.publish_every_s),
            ("online_learning.checkpoint_every_s", self.checkpoint_every_s),
            ("online_learning.batch_size", self.batch_size as u64),
            ("online_learning.retrieval_poll_ms", self.retrieval_poll_ms),
            ("online_learning.retrieval_page", self.retrieval_page as u64),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "expected at least 1".into()));
        }
        let rates = [
            ("online_learning.dense_learning_rate", self.dense_learning_rate),
            ("online_learning.sparse_learning_rate", f64::from(self.sparse_learning_rate)),
            ("online_learning.retrieval_learning_rate", f64::from(self.retrieval_learning_rate)),
            ("online_learning.built_user_learning_rate", f64::from(self.built_user_learning_rate)),
            ("online_learning.retrieval_regularization", f64::from(self.retrieval_regularization)),
        ];
        if let Some((key, value)) = rates.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err((
                (*key).into(),
                format!("expected a finite rate of 0 or more, got {value}"),
            ));
        }
        let accumulator = self.retrieval_initial_accumulator;
        if !(accumulator.is_finite() && accumulator > 0.0) {
            return Err((
                "online_learning.retrieval_initial_accumulator".into(),
                format!("expected a positive number, got {accumulator}"),
            ));
        }
        Ok(())
    }
}
