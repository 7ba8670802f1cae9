//! The batch pipeline: SQL over the Parquet offline store, on DataFusion.
//!
//! The statements use only ANSI window functions, joins and aggregates (plus
//! `ARRAY_AGG ... ORDER BY`), so the same jobs run on Spark SQL when the data
//! outgrows one machine. Steps, in order:
//!
//! 1. `interactions`: feedback events in protocol order — per user by time,
//!    equal times keeping log order (`ORDER BY ts_ms, seq`), numbered `pos`.
//! 2. `loo_split` and `ctr_split`: the two protocols of PROTOCOLS.md.
//! 3. `samples`: one training sample per interaction with point-in-time
//!    features — counts and positive rates of the user and the item, and the
//!    user's last N items — computed only from events with a strictly earlier
//!    timestamp (RANGE frames ending `1 PRECEDING` on integer milliseconds;
//!    the history is an equi-join on (user, position) against the N positions
//!    before the sample's first event at its timestamp).
//! 4. `user_features` / `item_features`: serving features over the whole log.
//! 5. statistics for BI (see [`crate::stats`]).

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use cascade_core::{Config, IdIndex};
use cascade_eval::protocols::{CtrExample, LooSplit};

use crate::BatchError;
use crate::table_columns::{floats, ints, optional_strings, strings};

/// The CTR protocol's three parts; features are (user, item) dense indices.
#[derive(Debug, Clone, Default)]
pub struct CtrSplit {
    /// Train rows.
    pub train: Vec<CtrExample<(u32, u32)>>,
    /// Validation rows.
    pub valid: Vec<CtrExample<(u32, u32)>>,
    /// Test rows.
    pub test: Vec<CtrExample<(u32, u32)>>,
    /// Each row's event time (ms), aligned with the rows of each part: what
    /// request-context features are derived from.
    pub times: CtrTimes,
}

/// Event times of a `CtrSplit`'s rows, part by part.
#[derive(Debug, Clone, Default)]
pub struct CtrTimes {
    /// Of the train rows.
    pub train: Vec<i64>,
    /// Of the validation rows.
    pub valid: Vec<i64>,
    /// Of the test rows.
    pub test: Vec<i64>,
}

/// A training sample with its point-in-time features, as written to
/// `samples/ctr_samples.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The event's log sequence number.
    pub seq: u64,
    /// External user id.
    pub user_id: String,
    /// External item id.
    pub item_id: String,
    /// Event time.
    pub ts_ms: i64,
    /// Binary label.
    pub label: bool,
    /// `train`, `valid` or `test` (ML100K-CTR split).
    pub split: String,
    /// The user's interactions strictly before `ts_ms`.
    pub user_events_before: i64,
    /// Of those, how many were positive.
    pub user_positives_before: i64,
    /// The item's interactions strictly before `ts_ms`.
    pub item_events_before: i64,
    /// Of those, how many were positive.
    pub item_positives_before: i64,
    /// The user's positive rate before `ts_ms` (NaN with no history).
    pub user_positive_rate_before: f64,
    /// The user's last items strictly before `ts_ms`, oldest first (in the
    /// Parquet file: columns `history_1` = most recent .. `history_N`).
    pub history: Vec<String>,
}

/// A DataFusion session over one workspace's offline store.
pub struct Pipeline {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    output_dir: PathBuf,
    history_length: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("output_dir", &self.output_dir).finish_non_exhaustive()
    }
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `label` as 0/1, summed over a frame.
const POSITIVES: &str = "SUM(CASE WHEN label THEN 1 ELSE 0 END)";
/// Events with a strictly earlier timestamp (integer ms, so `1 PRECEDING` is "before").
const STRICTLY_EARLIER: &str = "ORDER BY ts_ms RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING";

/// Interactions, positives, positive rate and first/last time per `key`
/// (`user_id` or `item_id`): the shared core of the serving feature tables.
fn activity_by(key: &str) -> String {
    format!(
        "SELECT {key}, COUNT(*) AS interactions, {POSITIVES} AS positives,
                AVG(CASE WHEN label THEN 1.0 ELSE 0.0 END) AS positive_rate,
                MIN(ts_ms) AS first_ts_ms, MAX(ts_ms) AS last_ts_ms
         FROM interactions GROUP BY {key}"
    )
}

impl Pipeline {
    /// Opens the offline store in `offline_dir`; outputs go to `output_dir`.
    pub fn new(
        config: &Config,
        offline_dir: &Path,
        output_dir: &Path,
    ) -> Result<Pipeline, BatchError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BatchError::Data(format!("cannot start the query runtime: {e}")))?;
        // Two partitions match the machines this runs on; more only adds shuffles.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let history_length = config.pipeline.history_length;
        let pipeline = Pipeline { runtime, ctx, output_dir: output_dir.to_owned(), history_length };
        for table in ["events", "users", "items"] {
            let path = offline_dir.join(format!("{table}.parquet"));
            if !path.exists() {
                return Err(BatchError::file(
                    &path,
                    "missing: export the store to the offline store first",
                ));
            }
            let path_text = path.to_string_lossy().into_owned();
            pipeline
                .runtime
                .block_on(pipeline.ctx.register_parquet(
                    table,
                    &path_text,
                    ParquetReadOptions::default(),
                ))
                .map_err(|source| BatchError::Query {
                    step: format!("register {table}"),
                    source,
                })?;
        }
        let feedback = config.labels.feedback_event_types();
        let feedback = feedback.iter().map(|t| sql_string(t)).collect::<Vec<_>>().join(", ");
        let history = config.pipeline.history_length;
        // The last N earlier positions are generated explicitly and joined on
        // (user, pos): N rows per sample, where a range join on the user alone
        // would pair every sample with the user's whole log first.
        let offsets = (1..=history).map(|k| format!("({k})")).collect::<Vec<_>>().join(", ");
        // One column per position (history_1 = most recent): a fixed-width,
        // padded sequence as sequence models read it, built with MAX(CASE ...)
        // because ordered ARRAY_AGG keeps ~5 KB of state per sample.
        let history_columns = (1..=history)
            .map(|k| format!("MAX(CASE WHEN w.k = {k} THEN h.item_id END) AS history_{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let history_select =
            (1..=history).map(|k| format!("h.history_{k}")).collect::<Vec<_>>().join(", ");
        let activity_by_user = activity_by("user_id");
        let activity_by_item = activity_by("item_id");
        let views = [
            (
                "interactions",
                format!(
                    "CREATE VIEW interactions AS
                     SELECT seq, user_id, item_id, event_type, value, ts_ms, label,
                            ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts_ms, seq) AS pos,
                            COUNT(*) OVER (PARTITION BY user_id) AS n
                     FROM events WHERE event_type IN ({feedback})"
                ),
            ),
            (
                "loo_split",
                // Users with fewer than 3 interactions cannot give train, valid and test.
                "CREATE VIEW loo_split AS
                 SELECT user_id, item_id, seq, ts_ms, pos, n,
                        CASE WHEN pos = n THEN 'test' WHEN pos = n - 1 THEN 'valid' ELSE 'train' END AS split
                 FROM interactions WHERE n >= 3"
                    .to_owned(),
            ),
            (
                "ctr_split",
                "CREATE VIEW ctr_split AS
                 SELECT user_id, item_id, seq, ts_ms, label, pos, n,
                        CASE WHEN pos <= n - 2 * FLOOR(n / 10.0) THEN 'train'
                             WHEN pos <= n - FLOOR(n / 10.0) THEN 'valid'
                             ELSE 'test' END AS split
                 FROM interactions"
                    .to_owned(),
            ),
            (
                "samples",
                format!(
                    "CREATE VIEW samples AS
                     WITH positioned AS (
                       SELECT c.*, MIN(pos) OVER (PARTITION BY user_id, ts_ms) AS first_pos_at_ts
                       FROM ctr_split c
                     ),
                     counted AS (
                       SELECT p.*,
                         COUNT(*) OVER (PARTITION BY user_id {STRICTLY_EARLIER}) AS user_events_before,
                         COALESCE({POSITIVES} OVER (PARTITION BY user_id {STRICTLY_EARLIER}), 0) AS user_positives_before,
                         COUNT(*) OVER (PARTITION BY item_id {STRICTLY_EARLIER}) AS item_events_before,
                         COALESCE({POSITIVES} OVER (PARTITION BY item_id {STRICTLY_EARLIER}), 0) AS item_positives_before
                       FROM positioned p
                     ),
                     wanted AS (
                       SELECT s.seq, s.user_id, offsets.k, s.first_pos_at_ts - offsets.k AS history_pos
                       FROM positioned s CROSS JOIN (VALUES {offsets}) AS offsets(k)
                       WHERE s.first_pos_at_ts - offsets.k >= 1
                     ),
                     history AS (
                       SELECT w.seq, {history_columns}
                       FROM wanted w JOIN interactions h ON h.user_id = w.user_id AND h.pos = w.history_pos
                       GROUP BY w.seq
                     )
                     SELECT c.seq, c.user_id, c.item_id, c.ts_ms, c.label, c.split,
                            c.user_events_before, c.user_positives_before,
                            c.item_events_before, c.item_positives_before,
                            CAST(c.user_positives_before AS DOUBLE) / NULLIF(c.user_events_before, 0) AS user_positive_rate_before,
                            CAST(c.item_positives_before AS DOUBLE) / NULLIF(c.item_events_before, 0) AS item_positive_rate_before,
                            {history_select}
                     FROM counted c LEFT JOIN history h ON h.seq = c.seq"
                ),
            ),
            (
                "user_features",
                format!(
                    "CREATE VIEW user_features AS
                     WITH activity AS ({activity_by_user}),
                     recent AS (
                       SELECT user_id, ARRAY_AGG(item_id ORDER BY pos DESC) AS recent_items
                       FROM interactions WHERE pos > n - {history} GROUP BY user_id
                     )
                     SELECT u.*, COALESCE(a.interactions, 0) AS interactions, COALESCE(a.positives, 0) AS positives,
                            a.positive_rate, a.first_ts_ms, a.last_ts_ms, r.recent_items
                     FROM users u LEFT JOIN activity a ON a.user_id = u.id LEFT JOIN recent r ON r.user_id = u.id"
                ),
            ),
            (
                "item_features",
                format!(
                    "CREATE VIEW item_features AS
                     WITH activity AS ({activity_by_item})
                     SELECT i.*, COALESCE(a.interactions, 0) AS interactions, COALESCE(a.positives, 0) AS positives,
                            a.positive_rate, a.first_ts_ms, a.last_ts_ms,
                            RANK() OVER (ORDER BY COALESCE(a.interactions, 0) DESC) AS popularity_rank
                     FROM items i LEFT JOIN activity a ON a.item_id = i.id"
                ),
            ),
        ];
        for (step, statement) in views {
            pipeline.collect(step, &statement)?;
        }
        Ok(pipeline)
    }

    /// Runs a statement and collects its result.
    pub(crate) fn collect(
        &self,
        step: &str,
        statement: &str,
    ) -> Result<Vec<RecordBatch>, BatchError> {
        let fail = |source| BatchError::Query { step: step.to_owned(), source };
        self.runtime.block_on(async {
            let frame = self.ctx.sql(statement).await.map_err(fail)?;
            frame.collect().await.map_err(fail)
        })
    }

    /// Runs a query and writes its result to `<output_dir>/<relative>` as one Parquet file.
    pub(crate) fn write(
        &self,
        step: &str,
        statement: &str,
        relative: &str,
    ) -> Result<PathBuf, BatchError> {
        let path = self.output_dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BatchError::file(parent, e))?;
        }
        let fail = |source| BatchError::Query { step: step.to_owned(), source };
        let target = path.to_string_lossy().into_owned();
        self.runtime.block_on(async {
            let frame = self.ctx.sql(statement).await.map_err(fail)?;
            frame
                .write_parquet(
                    &target,
                    DataFrameWriteOptions::new().with_single_file_output(true),
                    None,
                )
                .await
                .map_err(fail)
        })?;
        Ok(path)
    }

    /// Writes the splits, samples and serving features; returns the files written.
    pub fn write_outputs(&self) -> Result<Vec<PathBuf>, BatchError> {
        Ok(vec![
            self.write(
                "loo_split",
                "SELECT * FROM loo_split ORDER BY user_id, pos",
                "splits/loo_full.parquet",
            )?,
            self.write(
                "ctr_split",
                "SELECT * FROM ctr_split ORDER BY user_id, pos",
                "splits/ctr.parquet",
            )?,
            self.write(
                "samples",
                "SELECT * FROM samples ORDER BY seq",
                "samples/ctr_samples.parquet",
            )?,
            self.write(
                "user_features",
                "SELECT * FROM user_features ORDER BY id",
                "features/users.parquet",
            )?,
            self.write(
                "item_features",
                "SELECT * FROM item_features ORDER BY id",
                "features/items.parquet",
            )?,
        ])
    }

    /// The ML100K-LOO-FULL split with its user and item indices.
    pub fn loo_split(&self) -> Result<(LooSplit, IdIndex, IdIndex), BatchError> {
        let batches = self.collect(
            "loo_split",
            "SELECT user_id, item_id, split FROM loo_split ORDER BY user_id, pos",
        )?;
        let (mut users, mut items, mut splits) = (Vec::new(), Vec::new(), Vec::new());
        for batch in &batches {
            users.extend(strings(batch, "user_id")?);
            items.extend(strings(batch, "item_id")?);
            splits.extend(strings(batch, "split")?);
        }
        if users.is_empty() {
            return Err(BatchError::Data(
                "no user has 3 or more interactions: the leave-one-out split is empty".into(),
            ));
        }
        let user_index = IdIndex::new(users.iter().cloned());
        let item_index = self.interaction_items()?;
        let n_users = user_index.len();
        let mut split = LooSplit {
            n_items: item_index.len(),
            train: vec![Vec::new(); n_users],
            valid: vec![0; n_users],
            test: vec![0; n_users],
        };
        for ((user, item), part) in users.iter().zip(&items).zip(&splits) {
            // Both indexes were built from these very rows.
            let (Some(u), Some(i)) = (user_index.index(user), item_index.index(item)) else {
                return Err(BatchError::Data(format!(
                    "the split's row ({user}, {item}) is not among the interactions"
                )));
            };
            let u = u as usize;
            match part.as_str() {
                "train" => split.train[u].push(i),
                "valid" => split.valid[u] = i,
                _ => split.test[u] = i,
            }
        }
        Ok((split, user_index, item_index))
    }

    /// Every user with at least one interaction, indexed, and each one's
    /// items in protocol order (time, then log order), item indices from
    /// `items`: what serving is built from, where a user with a single
    /// interaction is as known as any other.
    pub fn histories(&self, items: &IdIndex) -> Result<(IdIndex, Vec<Vec<u32>>), BatchError> {
        let batches = self.collect(
            "histories",
            "SELECT user_id, item_id FROM interactions ORDER BY user_id, pos",
        )?;
        let (mut users, mut picked) = (Vec::new(), Vec::new());
        for batch in &batches {
            users.extend(strings(batch, "user_id")?);
            picked.extend(strings(batch, "item_id")?);
        }
        let user_index = IdIndex::new(users.iter().cloned());
        let mut histories = vec![Vec::new(); user_index.len()];
        for (user, item) in users.iter().zip(&picked) {
            let (Some(u), Some(i)) = (user_index.index(user), items.index(item)) else { continue };
            histories[u as usize].push(i);
        }
        Ok((user_index, histories))
    }

    /// All items with at least one interaction, indexed.
    pub fn interaction_items(&self) -> Result<IdIndex, BatchError> {
        let batches = self.collect("items", "SELECT DISTINCT item_id FROM interactions")?;
        let ids: Vec<Vec<String>> =
            batches.iter().map(|b| strings(b, "item_id")).collect::<Result<_, _>>()?;
        Ok(IdIndex::new(ids.into_iter().flatten()))
    }

    /// The ML100K-CTR split, indexed by the given user and item indices
    /// (users or items outside them are skipped).
    pub fn ctr_split(&self, users: &IdIndex, items: &IdIndex) -> Result<CtrSplit, BatchError> {
        let batches = self.collect(
            "ctr_split",
            "SELECT user_id, item_id, label, split, ts_ms FROM ctr_split ORDER BY user_id, pos",
        )?;
        let mut split = CtrSplit::default();
        for batch in &batches {
            let labels = ints(batch, "label")?;
            let times = ints(batch, "ts_ms")?;
            let rows = strings(batch, "user_id")?
                .into_iter()
                .zip(strings(batch, "item_id")?)
                .zip(strings(batch, "split")?);
            for ((((user, item), part), label), ts_ms) in rows.zip(labels).zip(times) {
                let (Some(u), Some(i)) = (users.index(&user), items.index(&item)) else { continue };
                let example = CtrExample { user: u, label: label != 0, features: (u, i) };
                let (rows, times) = match part.as_str() {
                    "train" => (&mut split.train, &mut split.times.train),
                    "valid" => (&mut split.valid, &mut split.times.valid),
                    _ => (&mut split.test, &mut split.times.test),
                };
                rows.push(example);
                times.push(ts_ms);
            }
        }
        Ok(split)
    }

    /// Every training sample with its point-in-time features, in log order.
    pub fn samples(&self) -> Result<Vec<Sample>, BatchError> {
        let batches = self.collect("samples", "SELECT * FROM samples ORDER BY seq")?;
        let mut samples = Vec::new();
        for batch in &batches {
            let columns = (
                ints(batch, "seq")?,
                strings(batch, "user_id")?,
                strings(batch, "item_id")?,
                ints(batch, "ts_ms")?,
                ints(batch, "label")?,
                strings(batch, "split")?,
            );
            let counts = (
                ints(batch, "user_events_before")?,
                ints(batch, "user_positives_before")?,
                ints(batch, "item_events_before")?,
                ints(batch, "item_positives_before")?,
            );
            let rates = floats(batch, "user_positive_rate_before")?;
            let history_columns: Vec<Vec<Option<String>>> = (1..=self.history_length)
                .map(|k| optional_strings(batch, &format!("history_{k}")))
                .collect::<Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                samples.push(Sample {
                    seq: columns.0[row] as u64,
                    user_id: columns.1[row].clone(),
                    item_id: columns.2[row].clone(),
                    ts_ms: columns.3[row],
                    label: columns.4[row] != 0,
                    split: columns.5[row].clone(),
                    user_events_before: counts.0[row],
                    user_positives_before: counts.1[row],
                    item_events_before: counts.2[row],
                    item_positives_before: counts.3[row],
                    user_positive_rate_before: rates[row],
                    // Oldest first: history_N .. history_1, skipping the padding.
                    history: history_columns.iter().rev().filter_map(|c| c[row].clone()).collect(),
                });
            }
        }
        Ok(samples)
    }
}
