//! The report's JSON as plots (SVG files), one HTML page with the plots
//! inline, and a Markdown page that links them.

use std::path::Path;

use anyhow::{Result, anyhow};
use serde_json::Value;

use cascade_eval::plots::{Bar, grouped_bars, value_curves};

/// A drawn plot: its file name under `plots/` and its SVG text.
pub struct Plot {
    pub name: String,
    pub title: String,
    pub svg: String,
}

/// The item-ranking metrics the tables show, in order, where present.
const RANKING_COLUMNS: [(&str, &str); 11] = [
    ("hr@10", "HR@10"),
    ("ndcg@10", "NDCG@10"),
    ("mrr@10", "MRR@10"),
    ("ndcg@20", "NDCG@20"),
    ("recall@20", "Recall@20"),
    ("coverage", "coverage"),
    ("diversity", "diversity"),
    ("novelty", "novelty (bits)"),
    ("long_tail_share", "long-tail share"),
    ("average_popularity", "avg popularity"),
    ("exposure_gini", "exposure Gini"),
];

const CLICK_COLUMNS: [(&str, &str); 3] = [("auc", "AUC"), ("gauc", "GAUC"), ("logloss", "LogLoss")];

/// The list qualities drawn as bars (all shares in [0, 1]).
const QUALITY_BARS: [&str; 5] =
    ["coverage", "diversity", "long_tail_share", "average_popularity", "exposure_gini"];

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Each K's mean over a model's runs of the curve in `field`.
fn mean_curve(model: &Value, field: &str) -> Vec<(f64, f64)> {
    let runs = array(model, "runs");
    let curves: Vec<Vec<f64>> =
        runs.iter().map(|r| array(r, field).iter().filter_map(Value::as_f64).collect()).collect();
    let length = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..length)
        .map(|k| {
            let mean = curves.iter().map(|c| c[k]).sum::<f64>() / curves.len() as f64;
            ((k + 1) as f64, mean)
        })
        .collect()
}

/// The first run's training curve of every trained model in `models`:
/// (model, [(epoch, value)]) for `field` (`loss` or `valid`).
fn training_series(models: &[Value], field: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    models
        .iter()
        .filter_map(|m| {
            let run = array(m, "runs").first()?;
            let points: Vec<(f64, f64)> = array(run, "training")
                .iter()
                .enumerate()
                .filter_map(|(e, p)| p[field].as_f64().map(|v| ((e + 1) as f64, v)))
                .collect();
            (!points.is_empty()).then(|| (text(&m["model"]), points))
        })
        .collect()
}

/// Draws every plot the report's numbers support into `dir`.
pub fn plots(report: &Value, dir: &Path) -> Result<Vec<Plot>> {
    std::fs::create_dir_all(dir)?;
    let mut plots = Vec::new();
    let mut draw = |name: &str, title: &str, painter: &dyn Fn(&Path) -> Result<(), String>| {
        let path = dir.join(format!("{name}.svg"));
        painter(&path).map_err(|e| anyhow!("drawing {name}: {e}"))?;
        let svg = std::fs::read_to_string(&path)?;
        plots.push(Plot { name: name.into(), title: title.into(), svg });
        Ok::<_, anyhow::Error>(())
    };
    let ranking = array(report, "item_ranking");
    if !ranking.is_empty() {
        for (field, name, label) in
            [("ndcg_at_k", "ndcg_at_k", "NDCG@K"), ("recall_at_k", "recall_at_k", "Recall@K")]
        {
            let series: Vec<(String, Vec<(f64, f64)>)> =
                ranking.iter().map(|m| (text(&m["model"]), mean_curve(m, field))).collect();
            let refs: Vec<(&str, Vec<(f64, f64)>)> =
                series.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
            let title = format!("{label} on ML100K-LOO-FULL test (mean over seeds)");
            draw(name, &title, &|path| value_curves(path, &title, ("K", label), &refs))?;
        }
        let bars: Vec<Bar> = ranking
            .iter()
            .flat_map(|m| {
                QUALITY_BARS.iter().filter_map(move |q| {
                    Some(Bar {
                        group: text(&m["model"]),
                        series: (*q).into(),
                        value: m["summary"][*q]["mean"].as_f64()?,
                    })
                })
            })
            .collect();
        let title = "Top-10 lists: coverage, diversity and popularity bias";
        draw("list_quality", title, &|path| grouped_bars(path, title, "share", &bars))?;
    }
    let clicks = array(report, "click_prediction");
    for (models, protocol) in [(ranking, "item ranking"), (clicks, "click models")] {
        for (field, what) in [("valid", "validation metric"), ("loss", "training loss")] {
            let series = training_series(models, field);
            if series.is_empty() {
                continue;
            }
            let refs: Vec<(&str, Vec<(f64, f64)>)> =
                series.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
            let name = format!("training_{}_{field}", protocol.replace(' ', "_"));
            let title = format!("Training, {protocol}: {what} per epoch (first seed)");
            draw(&name, &title, &|path| value_curves(path, &title, ("epoch", what), &refs))?;
        }
    }
    if !clicks.is_empty() {
        let mut series: Vec<(String, Vec<(f64, f64)>)> =
            vec![("perfect".into(), vec![(0.0, 0.0), (1.0, 1.0)])];
        for m in clicks {
            let Some(run) = array(m, "runs").first() else { continue };
            let points = array(run, "calibration")
                .iter()
                .filter_map(|b| Some((b["predicted"].as_f64()?, b["observed"].as_f64()?)))
                .collect();
            series.push((text(&m["model"]), points));
        }
        let refs: Vec<(&str, Vec<(f64, f64)>)> =
            series.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
        let title = "Calibration on ML100K-CTR test (first seed)";
        draw("calibration", title, &|path| {
            value_curves(path, title, ("predicted probability", "observed positive rate"), &refs)
        })?;
        let bars: Vec<Bar> = clicks
            .iter()
            .flat_map(|m| {
                let run = array(m, "runs").first().cloned().unwrap_or(Value::Null);
                array(&run, "auc_by_activity")
                    .iter()
                    .filter_map(|b| {
                        Some(Bar {
                            group: format!("{}-{}", b["min_activity"], b["max_activity"]),
                            series: text(&m["model"]),
                            value: b["auc"].as_f64()?,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let title = "AUC by user activity (training interactions; first seed)";
        draw("auc_by_activity", title, &|path| grouped_bars(path, title, "AUC", &bars))?;
    }
    let targets = array(&report["off_policy"], "targets");
    if !targets.is_empty() {
        let bars: Vec<Bar> = targets
            .iter()
            .flat_map(|t| {
                array(t, "estimates")
                    .iter()
                    .filter(|e| {
                        ["IPS", "SNIPS", "DR", "SNDR"].contains(&text(&e["estimator"]).as_str())
                    })
                    .filter_map(|e| {
                        Some(Bar {
                            group: text(&t["policy"]),
                            series: text(&e["estimator"]),
                            value: e["ctr"].as_f64()?,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let title = "Off-policy estimates of click rate per impression";
        draw("off_policy", title, &|path| grouped_bars(path, title, "CTR", &bars))?;
    }
    Ok(plots)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn mean_sd(summary: &Value, key: &str) -> String {
    let entry = &summary[key];
    match (entry["mean"].as_f64(), entry["sd"].as_f64(), entry["runs"].as_u64()) {
        (Some(mean), Some(sd), Some(runs)) if runs > 1 => format!("{mean:.4} ± {sd:.4}"),
        (Some(mean), ..) => format!("{mean:.4}"),
        _ => "-".into(),
    }
}

/// A table as rows of cells; the first row is the header.
type Table = Vec<Vec<String>>;

fn metrics_table(models: &[Value], columns: &[(&str, &str)]) -> Table {
    let mut header = vec!["model".to_owned(), "runs".to_owned()];
    header.extend(columns.iter().map(|(_, label)| (*label).to_owned()));
    header.push("fit seconds".into());
    let mut rows = vec![header];
    for m in models {
        let mut row = vec![text(&m["model"]), array(m, "runs").len().to_string()];
        row.extend(columns.iter().map(|(key, _)| mean_sd(&m["summary"], key)));
        row.push(mean_sd(&m["summary"], "fit_seconds"));
        rows.push(row);
    }
    rows
}

fn settings_table(models: &[Value]) -> Table {
    let mut rows = vec![vec!["model".into(), "seed".into(), "setting".into(), "epochs".into()]];
    for m in models {
        for run in array(m, "runs") {
            let epochs = match (run["epochs"]["trained"].as_u64(), run["epochs"]["best"].as_u64()) {
                (Some(trained), Some(best)) => format!("{trained} (kept {best})"),
                _ => match array(run, "training").len() {
                    0 => "-".into(),
                    n => n.to_string(),
                },
            };
            rows.push(vec![text(&m["model"]), text(&run["seed"]), text(&run["setting"]), epochs]);
        }
    }
    rows
}

fn activity_table(models: &[Value]) -> Table {
    let mut rows =
        vec![vec!["model".into(), "activity".into(), "users".into(), "rows".into(), "AUC".into()]];
    for m in models {
        let Some(run) = array(m, "runs").first() else { continue };
        for b in array(run, "auc_by_activity") {
            rows.push(vec![
                text(&m["model"]),
                format!("{}-{}", b["min_activity"], b["max_activity"]),
                text(&b["users"]),
                text(&b["rows"]),
                b["auc"].as_f64().map_or("-".into(), |a| format!("{a:.4}")),
            ]);
        }
    }
    rows
}

fn off_policy_table(report: &Value) -> Option<Table> {
    let targets = array(&report["off_policy"], "targets");
    if targets.is_empty() {
        return None;
    }
    let mut rows = vec![vec![
        "target".into(),
        "estimator".into(),
        "CTR".into(),
        "95% interval".into(),
        "effective sample size".into(),
    ]];
    for t in targets {
        for e in array(t, "estimates") {
            let interval = match (e["lower"].as_f64(), e["upper"].as_f64()) {
                (Some(l), Some(u)) => format!("[{l:.5}, {u:.5}]"),
                _ => "-".into(),
            };
            rows.push(vec![
                text(&t["policy"]),
                text(&e["estimator"]),
                e["ctr"].as_f64().map_or("-".into(), |c| format!("{c:.5}")),
                interval,
                t["effective_sample_size"].as_f64().map_or("-".into(), |s| format!("{s:.0}")),
            ]);
        }
    }
    Some(rows)
}

fn data_table(report: &Value) -> Table {
    let data = &report["data"];
    let mut rows = vec![vec!["".into(), "".into()]];
    for key in ["events", "users", "items", "first_event", "last_event"] {
        rows.push(vec![key.replace('_', " "), text(&data[key])]);
    }
    rows
}

fn html_table(table: &Table) -> String {
    let mut out = String::from("<div class=\"scroll\"><table>\n");
    for (i, row) in table.iter().enumerate() {
        let cell = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for value in row {
            out.push_str(&format!("<{cell}>{}</{cell}>", escape(value)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    out
}

fn markdown_table(table: &Table) -> String {
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
        }
    }
    out
}

/// A report section: a heading, its tables and the plots whose names start
/// with one of `plot_prefixes`.
struct Section {
    heading: &'static str,
    note: String,
    tables: Vec<Table>,
    plot_prefixes: &'static [&'static str],
}

fn sections(report: &Value) -> Vec<Section> {
    let ranking = array(report, "item_ranking");
    let clicks = array(report, "click_prediction");
    let mut out = vec![Section {
        heading: "Data",
        note: String::new(),
        tables: vec![data_table(report)],
        plot_prefixes: &[],
    }];
    if !ranking.is_empty() {
        out.push(Section {
            heading: "Item ranking (ML100K-LOO-FULL)",
            note: "Leave-one-out, full ranking over every item; trained models chosen on \
                   validation and scored on test once per seed (mean ± sd over seeds). List \
                   qualities are of the top-10 test lists; diversity is 1 − Jaccard of item \
                   categories; the long tail is outside the 20% most popular items."
                .into(),
            tables: vec![metrics_table(ranking, &RANKING_COLUMNS), settings_table(ranking)],
            plot_prefixes: &["ndcg_at_k", "recall_at_k", "list_quality", "training_item_ranking"],
        });
    }
    if !clicks.is_empty() {
        out.push(Section {
            heading: "Click prediction (ML100K-CTR)",
            note: "Per-user 80/10/10 in time, label = rating ≥ 4. Calibration bins test rows \
                   by predicted probability; activity buckets split test users by their \
                   training interactions into groups of about equal size."
                .into(),
            tables: vec![
                metrics_table(clicks, &CLICK_COLUMNS),
                settings_table(clicks),
                activity_table(clicks),
            ],
            plot_prefixes: &["calibration", "auc_by_activity", "training_click_models"],
        });
    }
    let off_policy = &report["off_policy"];
    out.push(Section {
        heading: "Off-policy estimates",
        note: match off_policy["skipped"].as_str() {
            Some(reason) => format!("Not estimated: {reason}."),
            None => format!(
                "Estimated from {} explored lists ({} impressions, {} clicks) logged by {}.",
                off_policy["logged"]["lists"],
                off_policy["logged"]["impressions"],
                off_policy["logged"]["clicks"],
                text(&off_policy["logged"]["policies"]),
            ),
        },
        tables: off_policy_table(report).into_iter().collect(),
        plot_prefixes: &["off_policy"],
    });
    out
}

fn plots_of<'a>(plots: &'a [Plot], prefixes: &[&str]) -> impl Iterator<Item = &'a Plot> {
    plots.iter().filter(move |p| prefixes.iter().any(|prefix| p.name.starts_with(prefix)))
}

fn reproduce_lines(report: &Value) -> Vec<String> {
    let environment = report["config"]["environment"].as_object().cloned().unwrap_or_default();
    let mut lines = vec![
        format!("Cascade {}", text(&report["version"])),
        format!("generated {}", text(&report["generated_at"])),
        format!("command: {}", text(&report["command"])),
    ];
    lines.extend(environment.iter().map(|(k, v)| format!("environment: {k}={}", text(v))));
    lines
}

/// The self-contained page: tables, plots inline, the config at the end.
pub fn html(report: &Value, plots: &[Plot]) -> String {
    let title = text(&report["title"]);
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    for section in sections(report) {
        body.push_str(&format!("<h2>{}</h2>\n", escape(section.heading)));
        if !section.note.is_empty() {
            body.push_str(&format!("<p>{}</p>\n", escape(&section.note)));
        }
        for table in &section.tables {
            body.push_str(&html_table(table));
        }
        for plot in plots_of(plots, section.plot_prefixes) {
            let svg = plot.svg.trim_start_matches(|c| c != '<');
            body.push_str(&format!(
                "<figure id=\"{}\">{svg}<figcaption>{}</figcaption></figure>\n",
                escape(&plot.name),
                escape(&plot.title)
            ));
        }
    }
    body.push_str("<h2>Reproduce</h2>\n<ul>\n");
    for line in reproduce_lines(report) {
        body.push_str(&format!("<li>{}</li>\n", escape(&line)));
    }
    body.push_str("</ul>\n<h3>Config</h3>\n");
    body.push_str(&format!("<pre>{}</pre>\n", escape(&text(&report["config"]["text"]))));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;\
         text-align:left}}th{{background:#f3f3f3}}figure{{margin:1em 0}}.scroll{{overflow-x:auto}}svg{{max-width:100%;height:auto}}\
         pre{{background:#f7f7f7;padding:1em;overflow-x:auto}}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(&title)
    )
}

/// The Markdown page; plots link the SVG files under `plots/`.
pub fn markdown(report: &Value, plots: &[Plot]) -> String {
    let mut out = format!("# {}\n\n", text(&report["title"]));
    for section in sections(report) {
        out.push_str(&format!("## {}\n\n", section.heading));
        if !section.note.is_empty() {
            out.push_str(&format!("{}\n\n", section.note));
        }
        for table in &section.tables {
            out.push_str(&markdown_table(table));
            out.push('\n');
        }
        for plot in plots_of(plots, section.plot_prefixes) {
            out.push_str(&format!("![{}](plots/{}.svg)\n\n", plot.title, plot.name));
        }
    }
    out.push_str("## Reproduce\n\n");
    for line in reproduce_lines(report) {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str(&format!("\n```toml\n{}\n```\n", text(&report["config"]["text"]).trim_end()));
    out
}
