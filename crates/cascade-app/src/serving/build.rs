//! The serving models from the workspace's data: the catalog (ids,
//! histories, item facts), retrieval and ranking models trained here or
//! loaded from `cascade train`'s checkpoints, and their assembly into
//! [`Models`] with ANN, item-CF and popularity recall.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use cascade_core::IdIndex;
use cascade_models::Interactions;
use cascade_models::early_stopping::kept_epochs;
use cascade_models::ranking::{CtrArch, CtrModel};
use cascade_models::registry::{CheckpointIds, RankerManifest};
use cascade_models::retrieval::BprMf;
use cascade_models::training::Overrides;
use cascade_nn::EmbeddingTable;
use cascade_serve::catalog::{Catalog, ItemFacts, ItemFactsReader};
use cascade_serve::events::IMPRESSION;
use cascade_serve::field_encoder::FieldEncoder;
use cascade_serve::rank::CtrRanker;
use cascade_serve::recall::{AnnIndex, AnnRecall, AnnSettings, ItemCfRecall, decayed_counts};
use cascade_serve::recommender::Models;
use cascade_store::EntityKind;

use crate::evaluation::Prepared;
use crate::evaluation::model_settings;
use crate::progress::Progress;
use crate::ranking::{self, ContextFeatures, RankingLabels};
use crate::registry::ModelKind;
use crate::serving::server::ann_settings;
use crate::serving::store_histories::StoreHistories;
use crate::workspace::Workspace;

/// Builds the serving models from the workspace's data as it is now: the
/// catalog and models, from the checkpoints in `models_dir` if given, else
/// trained here with `ranker`. Used at start, by `POST
/// /admin/models/reload` and by the checkpoint watcher. Loading checkpoints
/// runs no batch pipeline: the catalog is a scan of the event log.
pub fn load_models(
    workspace: &Workspace,
    data: Option<&Path>,
    models_dir: Option<&Path>,
    ranker: ModelKind,
    progress: Progress,
) -> Result<Models> {
    let arch = ranking_arch(ranker)?;
    let models = match models_dir {
        Some(dir) => {
            workspace.ensure_data(&workspace.store()?, data, progress)?;
            checkpoint_models(workspace, dir, ranker, progress)?
        }
        None => {
            let data = ServingData::prepare(workspace, data, ServingBuild::AllData, progress)?;
            let catalog = catalog_of(workspace, &data)?;
            build_models(workspace, &data, catalog, ranker, arch, progress)?
        }
    };
    add_items_without_events(workspace, &models)?;
    Ok(models)
}

/// Which interactions a serving build learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingBuild {
    /// Every interaction the store holds: what `cascade serve` builds.
    AllData,
    /// The protocol splits: users with 3+ interactions, BPR-MF on
    /// ML100K-LOO-FULL's train part, the ranker on ML100K-CTR's. How serving
    /// was built before; kept only for `cascade replay-serving` to measure
    /// the all-data build against.
    ProtocolSplits,
}

/// Trains the serving models on the workspace's store as `build` says.
pub fn train_models(
    workspace: &Workspace,
    build: ServingBuild,
    ranker: ModelKind,
    progress: Progress,
) -> Result<Models> {
    let arch = ranking_arch(ranker)?;
    let data = ServingData::prepare(workspace, None, build, progress)?;
    let catalog = catalog_of(workspace, &data)?;
    build_models(workspace, &data, catalog, ranker, arch, progress)
}

/// The architecture of a ranker users named, or an error listing the ones
/// that rank.
pub fn ranking_arch(ranker: ModelKind) -> Result<CtrArch> {
    ranker.ctr_arch().ok_or_else(|| {
        anyhow!(
            "`--ranker {ranker}` is not a ranking model; use lr, fm, wide-deep, deepfm, dcnv2, din or dien"
        )
    })
}

/// What serving is built from: every interaction the store holds. The
/// protocol splits ride along only to choose epoch counts on validation;
/// the catalog and the models see every user, a user with a single
/// interaction included, and every user's newest interactions.
pub struct ServingData {
    /// The protocol data (ML100K-LOO-FULL's users, ML100K-CTR's rows).
    pub prepared: Prepared,
    /// Every user with at least one interaction.
    pub users: IdIndex,
    /// Each of them's items in protocol order, indexed by `prepared.items`.
    pub histories: Vec<Vec<u32>>,
    /// What the models learn from.
    pub build: ServingBuild,
}

impl ServingData {
    /// Imports if needed, runs the batch pipeline, and reads every history
    /// (for `ProtocolSplits`, those of the leave-one-out split's users).
    pub fn prepare(
        workspace: &Workspace,
        data: Option<&Path>,
        build: ServingBuild,
        progress: Progress,
    ) -> Result<ServingData> {
        let prepared = crate::evaluation::prepare(workspace, data, progress)?;
        let (users, histories) = match build {
            ServingBuild::AllData => prepared.pipeline.histories(&prepared.items)?,
            ServingBuild::ProtocolSplits => {
                let split = &prepared.split;
                let histories = (0..split.n_users())
                    .map(|u| [&split.train[u][..], &[split.valid[u], split.test[u]]].concat())
                    .collect();
                (prepared.users.clone(), histories)
            }
        };
        Ok(ServingData { prepared, users, histories, build })
    }

    /// Hashed field ids of every user and item serving knows.
    pub fn field_encoder(&self, workspace: &Workspace) -> Result<FieldEncoder> {
        let store = workspace.store()?;
        Ok(FieldEncoder::new(&store, &workspace.config, &self.users, &self.prepared.items)?)
    }
}

/// Ids, every user's items in time order, and the items' categories and
/// publication times.
pub fn catalog_of(workspace: &Workspace, data: &ServingData) -> Result<Catalog> {
    let items = &data.prepared.items;
    let facts = item_facts(workspace, items)?;
    Ok(Catalog::new(data.users.clone(), items.clone(), data.histories.clone(), facts))
}

/// Categories and publication times as `Workspace::item_facts_reader`
/// reads them. The data is historical, so "now" is the newest publication.
pub fn item_facts(workspace: &Workspace, items: &IdIndex) -> Result<ItemFacts> {
    let store = workspace.store()?;
    let mut records = Vec::with_capacity(items.len());
    for id in items.ids() {
        records.push(store.get(EntityKind::Item, id)?.unwrap_or_default());
    }
    Ok(workspace.item_facts_reader().facts(records))
}

/// Items whose records the store has but no event does (created through
/// the API since the last build, or imported without events) join the
/// freshly built models as `PUT /v1/items/{id}` adds them, so a restart or
/// a reload keeps them recommendable.
pub fn add_items_without_events(workspace: &Workspace, models: &Models) -> Result<()> {
    let reader: ItemFactsReader = workspace.item_facts_reader();
    for (id, record) in workspace.store()?.records(EntityKind::Item)? {
        models.add_item(&id, &record, &reader).map_err(|e| anyhow!("item {id:?}: {e}"))?;
    }
    Ok(())
}

/// Trains BPR-MF (ANN recall) and the ranking architecture, then assembles
/// the serving models. On `AllData`, each is refitted on every interaction
/// for the epoch count early stopping chose on its protocol's validation part.
pub fn build_models(
    workspace: &Workspace,
    data: &ServingData,
    catalog: Catalog,
    ranker: ModelKind,
    arch: CtrArch,
    progress: Progress,
) -> Result<Models> {
    let prepared = &data.prepared;
    let bar = progress.spinner("training BPR-MF for ANN recall: epochs chosen on validation");
    let bpr_config = model_settings(workspace, ModelKind::BprMf, Overrides::default())?.bpr_mf();
    let (mut bpr, reports) = BprMf::train(&prepared.split, &bpr_config, |_| {})?;
    if data.build == ServingBuild::AllData {
        let epochs = kept_epochs(reports.iter().map(|r| r.valid_ndcg10));
        bar.set_message(format!("refitting BPR-MF on every interaction ({epochs} epochs)"));
        bpr = BprMf::refit(prepared.items.len(), &data.histories, &bpr_config, epochs)?;
    }
    bar.finish_and_clear();

    let config = model_settings(workspace, ranker, Overrides::default())?.ctr(arch);
    let protocol = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let labels = match workspace.config.serve.ranker_negatives {
        0 => RankingLabels::Protocol,
        negatives => RankingLabels::Consumption {
            negatives,
            n_items: prepared.items.len(),
            seed: config.training.seed,
        },
    };
    let inputs = ranking::encode(
        workspace,
        prepared,
        &protocol,
        config.history_length,
        ContextFeatures::Declared,
        labels,
    )?;
    let (mut model, trained) = ranking::train(&inputs, &config, progress)?;
    let name = ranker.name().to_owned();
    let encoder = data.field_encoder(workspace)?;
    if data.build == ServingBuild::AllData {
        let epochs = kept_epochs(trained.iter().map(|e| e.valid_auc));
        let bar =
            progress.spinner(&format!("refitting {name} on every interaction ({epochs} epochs)"));
        let every = prepared.pipeline.ctr_split(&data.users, &prepared.items)?;
        let n_users = data.users.len();
        let all =
            ranking::encode_with(encoder.clone(), n_users, &every, config.history_length, labels);
        let rows: Vec<_> = all.train.into_iter().chain(all.valid).chain(all.test).collect();
        model = CtrModel::refit(&rows, &config, all.item_field, epochs)?;
        bar.finish_and_clear();
    }
    let ranker = CtrRanker::new(&name, model, encoder, config.history_length)?;
    let version = format!("bpr-mf+itemknn+{name}@{}", cascade_core::timestamp::now_ms());
    let (users, items) = bpr.tables();
    let counts = popularity(workspace, &catalog)?;
    let ranker = Some(ranker);
    let ann = ann_settings(&workspace.config);
    Ok(assemble(version, catalog, [users, items], None, &counts, ranker, ann))
}

/// Loads BPR-MF and the ranker from the checkpoints `cascade train` wrote
/// into `models_dir` (`bpr-mf/`, `<ranker>/`), checked against the running
/// schema, over a catalog read from the event log as it is now; then
/// assembles the serving models. BPR-MF's rows are mapped to the catalog by
/// the ids its checkpoint keeps, so users and items that arrived since
/// training are served (users as the mean of their items, items by the
/// other channels until the next `cascade train`).
pub fn checkpoint_models(
    workspace: &Workspace,
    models_dir: &Path,
    ranker: ModelKind,
    progress: Progress,
) -> Result<Models> {
    let store = workspace.store()?;
    let bar = progress.spinner("reading every user's interactions from the event log");
    let scanned = StoreHistories::read(&store, &workspace.config)?;
    let facts = item_facts(workspace, &scanned.items)?;
    bar.finish_and_clear();
    let StoreHistories { users, items, histories } = scanned;
    let catalog = Catalog::new(users, items, histories, facts);
    let retrieval_dir = models_dir.join(ModelKind::BprMf.name());
    let table_ids = match ModelKind::BprMf.load_ids(&retrieval_dir)? {
        Some(ids) => ids,
        None => {
            progress.say(format!(
                "{}: no ids.json (an older `cascade train` wrote it); deriving its ids from the batch pipeline",
                retrieval_dir.display()
            ));
            let prepared = crate::evaluation::prepare(workspace, None, progress)?;
            CheckpointIds {
                users: prepared.users.ids().to_vec(),
                items: prepared.items.ids().to_vec(),
            }
        }
    };
    // The ids were an IdIndex's, in its order: rebuilding keeps each row's.
    let (table_users, table_items) = (IdIndex::new(table_ids.users), IdIndex::new(table_ids.items));
    let fingerprint = workspace.schema_fingerprint();
    let name = ranker.name().to_owned();
    let load = |model: ModelKind| {
        model.load_checkpoint(&models_dir.join(model.name()), &fingerprint).map_err(|e| {
            anyhow!("{e}; write it with `cascade train --model {model}` (same data and config)")
        })
    };
    let mut retrieval = load(ModelKind::BprMf)?;
    let encoder = FieldEncoder::new(&store, &workspace.config, &catalog.users, &catalog.items)?;
    let ranker_dir = models_dir.join(&name);
    let (model, settings) = RankerManifest::restore(load(ranker)?, encoder.item_field())
        .with_context(|| format!("{}", ranker_dir.display()))?;
    if settings.fields != encoder.field_names {
        bail!(
            "{}: trained on fields {:?}, the running config has {:?}",
            ranker_dir.display(),
            settings.fields,
            encoder.field_names
        );
    }
    let ranker = CtrRanker::new(&name, model, encoder, settings.model.history_length)?;
    let users = retrieval.take_table(BprMf::USER_TABLE)?;
    let items = retrieval.take_table(BprMf::ITEM_TABLE)?;
    let (users, items) = (&users, &items);
    let version = format!(
        "checkpoints:bpr-mf@{}+{name}@{}",
        manifest_stamp(&models_dir.join("bpr-mf")),
        manifest_stamp(&models_dir.join(&name))
    );
    let counts = popularity(workspace, &catalog)?;
    // `cascade train` indexes its tables by the protocol's users and items.
    let rows = TableRows { users: &table_users, items: &table_items };
    let ranker = Some(ranker);
    let ann = ann_settings(&workspace.config);
    Ok(assemble(version, catalog, [users, items], Some(rows), &counts, ranker, ann))
}

/// Each item's consumption count in the workspace's event log, decayed with
/// `[serve] popularity_half_life_days` from the newest event (impressions
/// are exposures, not consumption).
fn popularity(workspace: &Workspace, catalog: &Catalog) -> Result<Vec<f32>> {
    let mut consumed = Vec::new();
    workspace.store()?.replay(0, |stored| {
        let event = stored.event;
        if event.event_type != IMPRESSION
            && let Some(item) = catalog.items.index(&event.item)
        {
            consumed.push((item, event.ts_ms.div_euclid(1000)));
        }
    })?;
    let half_life = workspace.config.serve.popularity_half_life_days * 86_400.0;
    Ok(decayed_counts(&consumed, catalog.items.len(), half_life))
}

/// A checkpoint's manifest modification time in ms, for versions and the watcher.
pub fn manifest_stamp(dir: &Path) -> u128 {
    std::fs::metadata(dir.join("manifest.json"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis())
}

/// Which ids a retrieval model's table rows stand for, when not the
/// catalog's own indices.
#[derive(Debug, Clone, Copy)]
pub struct TableRows<'a> {
    /// User ids by user-table row.
    pub users: &'a IdIndex,
    /// Item ids by item-table row.
    pub items: &'a IdIndex,
}

/// ANN over the retrieval embeddings, item-CF over every history,
/// popularity from `counts`, and the ranker. The tables' rows are the
/// catalog's indices, or those of `rows` when they were trained on other
/// indices. A catalog user the table lacks is folded in as the mean of
/// their items' vectors, so a user the table never saw still gets personal
/// ANN recall; an item it lacks gets no ANN vector (zeros) until the next
/// training, and is recalled by the other channels meanwhile.
pub fn assemble(
    version: String,
    catalog: Catalog,
    [users, items]: [&EmbeddingTable; 2],
    rows: Option<TableRows<'_>>,
    counts: &[f32],
    ranker: Option<CtrRanker>,
    ann: AnnSettings,
) -> Models {
    let dim = items.config().dim;
    let row = |table: &EmbeddingTable, row: Option<u32>| -> Option<Vec<f32>> {
        row.and_then(|r| table.row(u64::from(r))).map(<[f32]>::to_vec)
    };
    let (n_users, n_items) = (catalog.users.len(), catalog.items.len());
    let item_vectors: Vec<f32> = (0..n_items as u32)
        .flat_map(|i| {
            let table_row = match rows {
                None => Some(i),
                Some(rows) => rows.items.index(catalog.items.id(i)),
            };
            row(items, table_row).unwrap_or_else(|| vec![0.0; dim])
        })
        .collect();
    let user_vectors: Vec<f32> = (0..n_users as u32)
        .flat_map(|u| {
            let table_row = match rows {
                None => Some(u),
                Some(rows) => rows.users.index(catalog.users.id(u)),
            };
            row(users, table_row)
                .unwrap_or_else(|| mean_of(&item_vectors, dim, &catalog.histories[u as usize]))
        })
        .collect();
    let index = AnnIndex::build(item_vectors, dim, ann);
    let ann = AnnRecall::new(index, user_vectors);
    let consumed = Interactions::new(n_items, &catalog.histories);
    let item_cf = ItemCfRecall::fit(&consumed);
    Models::new(version, catalog, ann, item_cf, counts, ranker)
}

/// The mean of `items`' rows of a row-major matrix (zeros for none).
fn mean_of(matrix: &[f32], dim: usize, items: &[u32]) -> Vec<f32> {
    let mut mean = vec![0.0; dim];
    for &item in items {
        let start = item as usize * dim;
        for (m, v) in mean.iter_mut().zip(&matrix[start..start + dim]) {
            *m += v;
        }
    }
    let n = items.len().max(1) as f32;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}
