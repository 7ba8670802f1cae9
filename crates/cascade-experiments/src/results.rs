//! An experiment's results from its variants' totals: per metric and
//! treatment, the lift against control with the fixed-horizon and the
//! always-valid tests, CUPED where a pre-period value is kept, Holm across
//! every comparison, and the sample-ratio checks that can withhold the
//! verdict. Costs O(variants × metrics), whatever the traffic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::statistics::{
    Estimate, Lift, PairedMoments, Scale, SequentialSrm, SrmCheck, chi_square_srm, cuped_theta,
    holm, sequential, variance_reduction, welch,
};

/// How a metric's per-user values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// The mean of a per-user value (`x`); `y` is the user's value before
    /// the experiment, CUPED's covariate.
    Mean,
    /// Σx / Σy over users (clicks per impression), by the delta method.
    Ratio,
}

/// One metric's sufficient statistics in one variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricTotals {
    pub kind: MetricKind,
    pub totals: PairedMoments,
}

/// What one variant accumulated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantTotals {
    pub name: String,
    /// The variant's configured share of the experiment's users.
    pub weight: f64,
    pub users: u64,
    pub metrics: BTreeMap<String, MetricTotals>,
}

/// The analysis' knobs (`[experiments_analysis]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSettings {
    /// Two-sided level of every test and interval.
    pub alpha: f64,
    /// The always-valid test's tuning: the total users at which its
    /// interval is tightest.
    pub sequential_tuning: f64,
    /// A χ² SRM p-value below this withholds the verdict.
    pub srm_threshold: f64,
    /// The sequential SRM test's Dirichlet prior concentration.
    pub srm_concentration: f64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            alpha: 0.05,
            sequential_tuning: 5_000.0,
            srm_threshold: 0.001,
            srm_concentration: 1_000.0,
        }
    }
}

/// Which test a verdict rests on, said in every response.
pub const DECISION_TEST: &str = "always-valid sequential test (normal-mixture confidence sequence, \
Waudby-Smith et al. 2023, as gbstats), on the CUPED-adjusted estimate where a pre-period value \
is kept, Holm-corrected across metrics and variants; safe to read at any time";

/// The sample-ratio checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRatio {
    pub users: Vec<u64>,
    pub weights: Vec<f64>,
    /// Fixed-horizon χ²: the classic check, valid read once.
    pub chi_square: SrmCheck,
    /// The always-valid Dirichlet-multinomial test's p-value, given the
    /// monitor's history (a fresh monitor when none is kept).
    pub sequential_p_value: f64,
    /// Either check fell below the threshold: no verdict is given.
    pub mismatch: bool,
}

/// CUPED's share in one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CupedLift {
    pub theta: f64,
    /// 1 − var(adjusted lift) / var(plain lift).
    pub variance_reduction: f64,
    pub absolute: Lift,
    pub relative: Lift,
    pub sequential_absolute: Lift,
}

/// One treatment against control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub variant: String,
    pub metric: String,
    pub control: Estimate,
    pub treatment: Estimate,
    /// Fixed-horizon Welch, read once at the planned sample size.
    pub absolute: Lift,
    pub relative: Lift,
    /// The always-valid test on the same estimate.
    pub sequential_absolute: Lift,
    pub sequential_relative: Lift,
    pub cuped: Option<CupedLift>,
    /// The decision's p-value (see [`DECISION_TEST`]) after Holm.
    pub decision_p_value: f64,
    /// `decision_p_value < alpha`, or with a planned sample size the
    /// group-sequential verdict; `None` while the sample ratio is off.
    pub significant: Option<bool>,
    /// The group-sequential test, for an experiment with a plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_sequential: Option<crate::planned::GroupSequentialVerdict>,
}

/// Everything `GET /v1/experiments/{id}/results` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentResults {
    pub decision_test: &'static str,
    pub alpha: f64,
    pub sample_ratio: SampleRatio,
    pub variants: Vec<VariantTotals>,
    pub comparisons: Vec<Comparison>,
    /// Metrics with too little data or no variance in some variant.
    pub not_computed: Vec<String>,
}

/// Results of an experiment whose first variant is the control.
/// `srm_monitor` carries the sequential SRM test across looks; pass the
/// stored one so the always-valid p-value remembers earlier looks.
pub fn analyse(
    variants: &[VariantTotals],
    settings: &AnalysisSettings,
    srm_monitor: &mut SequentialSrm,
) -> ExperimentResults {
    let users: Vec<u64> = variants.iter().map(|variant| variant.users).collect();
    let weights: Vec<f64> = variants.iter().map(|variant| variant.weight).collect();
    let chi_square = chi_square_srm(&users, &weights, settings.srm_threshold);
    let sequential_p_value = srm_monitor.observe(&users, &weights);
    let mismatch = chi_square.mismatch || sequential_p_value < settings.srm_threshold;

    let mut comparisons = Vec::new();
    let mut not_computed = Vec::new();
    if let Some((control, treatments)) = variants.split_first() {
        for treatment in treatments {
            for (metric, control_totals) in &control.metrics {
                let compared = treatment.metrics.get(metric).and_then(|treatment_totals| {
                    compare(metric, treatment, control_totals, treatment_totals, settings)
                });
                match compared {
                    Some(comparison) => comparisons.push(comparison),
                    None => not_computed.push(format!("{metric} ({})", treatment.name)),
                }
            }
        }
    }
    let decision: Vec<f64> =
        comparisons.iter().map(|comparison| comparison.decision_p_value).collect();
    for (comparison, adjusted) in comparisons.iter_mut().zip(holm(&decision)) {
        comparison.decision_p_value = adjusted;
        comparison.significant = (!mismatch).then_some(adjusted < settings.alpha);
    }
    ExperimentResults {
        decision_test: DECISION_TEST,
        alpha: settings.alpha,
        sample_ratio: SampleRatio { users, weights, chi_square, sequential_p_value, mismatch },
        variants: variants.to_vec(),
        comparisons,
        not_computed,
    }
}

fn compare(
    metric: &str,
    treatment_variant: &VariantTotals,
    control_totals: &MetricTotals,
    treatment_totals: &MetricTotals,
    settings: &AnalysisSettings,
) -> Option<Comparison> {
    let estimate = |totals: &MetricTotals| match totals.kind {
        MetricKind::Mean => Estimate::mean_of(&totals.totals.x),
        MetricKind::Ratio => Estimate::ratio_of(&totals.totals),
    };
    let (control, treatment) = (estimate(control_totals), estimate(treatment_totals));
    let alpha = settings.alpha;
    let tuning = settings.sequential_tuning;
    let absolute = welch(&control, &treatment, Scale::Absolute, alpha)?;
    let relative = welch(&control, &treatment, Scale::Relative, alpha)?;
    let sequential_absolute = sequential(&control, &treatment, Scale::Absolute, alpha, tuning)?;
    let sequential_relative = sequential(&control, &treatment, Scale::Relative, alpha, tuning)?;
    let cuped = (control_totals.kind == MetricKind::Mean)
        .then(|| {
            cuped_lift(
                &control_totals.totals,
                &treatment_totals.totals,
                (&control, &treatment),
                settings,
            )
        })
        .flatten();
    let decision_p_value =
        cuped.map(|cuped| cuped.sequential_absolute.p_value).unwrap_or(sequential_absolute.p_value);
    Some(Comparison {
        variant: treatment_variant.name.clone(),
        metric: metric.to_owned(),
        control,
        treatment,
        absolute,
        relative,
        sequential_absolute,
        sequential_relative,
        cuped,
        decision_p_value,
        significant: None,
        group_sequential: None,
    })
}

/// CUPED when the pre-period values vary (a log with no history before the
/// experiment has nothing to adjust by).
fn cuped_lift(
    control_totals: &PairedMoments,
    treatment_totals: &PairedMoments,
    plain: (&Estimate, &Estimate),
    settings: &AnalysisSettings,
) -> Option<CupedLift> {
    let theta = cuped_theta(control_totals, treatment_totals);
    if theta == 0.0 {
        return None;
    }
    let control = Estimate::cuped(control_totals, theta);
    let treatment = Estimate::cuped(treatment_totals, theta);
    Some(CupedLift {
        theta,
        variance_reduction: variance_reduction(plain, (&control, &treatment)),
        absolute: welch(&control, &treatment, Scale::Absolute, settings.alpha)?,
        relative: welch(&control, &treatment, Scale::Relative, settings.alpha)?,
        sequential_absolute: sequential(
            &control,
            &treatment,
            Scale::Absolute,
            settings.alpha,
            settings.sequential_tuning,
        )?,
    })
}
