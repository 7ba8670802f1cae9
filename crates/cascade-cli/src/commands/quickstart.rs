//! `cascade quickstart`: the whole loop on MovieLens-100k in under a minute.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use cascade_batch::stats;
use cascade_core::FeatureValue;
use cascade_eval::plots::{Bar, grouped_bars};
use cascade_eval::protocols::{LooSplit, top_k};
use cascade_store::EntityKind;

use crate::{Common, ModelKind};
use cascade_app::Progress;
use cascade_app::Workspace;
use cascade_app::evaluation::{
    LooOutcome, LooRun, ModelSettings, Prepared, fit_ctr, fit_loo, prepare,
};

/// PROTOCOLS.md reference rows (RecBole 1.2.1, same protocol): HR@10, NDCG@10, MRR@10, Recall@20.
const REFERENCES: [(&str, [f64; 4]); 3] = [
    ("Pop (reference)", [0.0859, 0.0449, 0.0326, 0.1262]),
    ("ItemKNN (RecBole)", [0.1124, 0.0619, 0.0466, 0.1835]),
    ("EASE (RecBole)", [0.1347, 0.0698, 0.0504, 0.2163]),
];

pub fn run(common: &Common, from: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    let workspace = common.open_workspace()?;
    if !workspace.builtin_config {
        bail!(
            "quickstart runs on the built-in MovieLens-100k config; use `cascade import` and `cascade eval` with --config"
        );
    }
    let progress = Progress { quiet: false };
    let data = workspace.movielens_dir(from, progress)?;
    println!("MovieLens-100k: {} (checksums verified)", data.display());

    let prepared = prepare(&workspace, Some(&data), progress)?;
    let bar = progress.spinner("batch pipeline: splits, samples, features, statistics");
    prepared.pipeline.write_outputs()?;
    let summary = stats::compute(&prepared.pipeline)?;
    bar.finish_and_clear();
    println!("\n{summary}\n");
    println!("pipeline outputs under {}\n", workspace.pipeline_dir().display());

    let split = &prepared.split;
    let models = [ModelKind::Pop, ModelKind::Itemknn, ModelKind::Ease];
    let mut outcomes = Vec::new();
    for model in models {
        outcomes.push((
            model,
            fit_loo(LooRun {
                model,
                split,
                tower_features: None,
                tune: false,
                settings: &ModelSettings::default(),
                progress,
            })?,
        ));
    }

    print_loo_table(split, &outcomes);
    let plot = workspace.dir.join("reports").join("loo_full.svg");
    plot_against_references(&plot, &outcomes)?;
    println!("plot: {}", plot.display());

    let ctr = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let fit = fit_ctr(&ctr, prepared.users.len(), prepared.items.len());
    let (setting, report) = (fit.setting, fit.report);
    println!(
        "\nML100K-CTR, test: bias-ctr ({setting}) AUC {:.4}  LogLoss {:.4}  GAUC {:.4} over {} users",
        report.auc, report.logloss, report.gauc, report.gauc_users
    );

    let (_, best) = outcomes.last().context("no model was evaluated")?;
    show_sample_user(&workspace, &prepared, best)?;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The LOO-FULL test table of `outcomes`, with the reference rows under it.
fn print_loo_table(split: &LooSplit, outcomes: &[(ModelKind, LooOutcome)]) {
    println!(
        "ML100K-LOO-FULL, test (full ranking over {} items, {} users; hyperparameters chosen on validation)",
        split.n_items,
        split.n_users()
    );
    println!(
        "{:<20} {:>7} {:>8} {:>7} {:>9}  {:>8}  setting",
        "model", "HR@10", "NDCG@10", "MRR@10", "Recall@20", "cover@10"
    );
    for (model, outcome) in outcomes {
        let m = &outcome.test;
        println!(
            "{:<20} {:>7.4} {:>8.4} {:>7.4} {:>9.4}  {:>8.4}  {}",
            display_name(*model),
            m["hr@10"],
            m["ndcg@10"],
            m["mrr@10"],
            m["recall@20"],
            m["coverage@10"],
            outcome.fitted.setting
        );
    }
    for (name, [hr, ndcg, mrr, recall]) in REFERENCES {
        println!("{name:<20} {hr:>7.4} {ndcg:>8.4} {mrr:>7.4} {recall:>9.4}");
    }
}

/// A sample user's recent movies and `best`'s top 10 for them, by title.
fn show_sample_user(workspace: &Workspace, prepared: &Prepared, best: &LooOutcome) -> Result<()> {
    let split = &prepared.split;
    let store = workspace.store()?;
    let user = 0u32;
    let user_id = prepared.users.id(user).to_owned();
    let mut history = split.train[user as usize].clone();
    history.push(split.valid[user as usize]);
    history.push(split.test[user as usize]);
    let mut scores = vec![0f32; split.n_items];
    best.fitted.ranker.score_user(user, &history, &mut scores);
    let mut masked = vec![false; split.n_items];
    history.iter().for_each(|&i| masked[i as usize] = true);
    let title = |item: u32| -> Result<String> {
        let id = prepared.items.id(item);
        let record = store.get(EntityKind::Item, id)?;
        Ok(match record.as_ref().and_then(|r| r.get("title")) {
            Some(FeatureValue::Text(title)) => title.clone(),
            _ => format!("item {id}"),
        })
    };
    println!("\nuser {user_id} recently watched:");
    for &item in history.iter().rev().take(3) {
        println!("  - {}", title(item)?);
    }
    println!("EASE recommends (unseen movies):");
    for (rank, item) in top_k(&scores, &masked, 10).into_iter().enumerate() {
        println!("  {:>2}. {}", rank + 1, title(item)?);
    }
    Ok(())
}

/// HR@10 and NDCG@10 of each model beside the RecBole reference for it.
fn plot_against_references(path: &Path, outcomes: &[(ModelKind, LooOutcome)]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bars = Vec::new();
    for ((model, outcome), (_, [hr, ndcg, _, _])) in outcomes.iter().zip(REFERENCES) {
        let group = display_name(*model).to_owned();
        bars.push(Bar {
            group: group.clone(),
            series: "Cascade HR@10".into(),
            value: outcome.test["hr@10"],
        });
        bars.push(Bar { group: group.clone(), series: "RecBole HR@10".into(), value: hr });
        bars.push(Bar {
            group: group.clone(),
            series: "Cascade NDCG@10".into(),
            value: outcome.test["ndcg@10"],
        });
        bars.push(Bar { group, series: "RecBole NDCG@10".into(), value: ndcg });
    }
    grouped_bars(path, "ML100K-LOO-FULL, test (full ranking)", "metric value", &bars)
        .map_err(anyhow::Error::msg)
}

fn display_name(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Pop => "Pop",
        ModelKind::Itemknn => "ItemKNN",
        ModelKind::Ease => "EASE",
        ModelKind::BprMf => "BPR-MF",
        ModelKind::Neumf => "NeuMF",
        ModelKind::TwoTower => "two-tower",
        ModelKind::Sasrec => "SASRec",
        ModelKind::BiasCtr => "bias-CTR",
        ModelKind::Lr => "LR",
        ModelKind::Fm => "FM",
        ModelKind::WideDeep => "Wide&Deep",
        ModelKind::Deepfm => "DeepFM",
        ModelKind::Dcnv2 => "DCNv2",
        ModelKind::Din => "DIN",
        ModelKind::Dien => "DIEN",
    }
}
