//! `analyse`: the verdict, Holm across comparisons, and the sample-ratio
//! check that withholds the verdict.
#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::collections::BTreeMap;

use cascade_experiments::calibration::SplitMix;
use cascade_experiments::results::{
    AnalysisSettings, MetricKind, MetricTotals, VariantTotals, analyse,
};
use cascade_experiments::statistics::{PairedMoments, SequentialSrm, holm};

/// A variant of `users` users whose clicks are Poisson(rate × lift), with a
/// pre-period count from the same rate, and 20 impressions each.
fn variant(name: &str, weight: f64, users: usize, lift: f64, rng: &mut SplitMix) -> VariantTotals {
    let (mut clicks, mut ctr) = (PairedMoments::default(), PairedMoments::default());
    for _ in 0..users {
        let rate = -2.0 * (1.0 - rng.unit()).ln();
        let (post, pre) = (rng.poisson(rate * lift), rng.poisson(rate));
        clicks.add(post, pre);
        ctr.add(post, 20.0);
    }
    let metrics = BTreeMap::from([
        ("clicks_per_user".to_owned(), MetricTotals { kind: MetricKind::Mean, totals: clicks }),
        ("ctr".to_owned(), MetricTotals { kind: MetricKind::Ratio, totals: ctr }),
    ]);
    VariantTotals { name: name.into(), weight, users: users as u64, metrics }
}

#[test]
fn a_real_lift_is_found_with_cuped_and_holm() {
    let mut rng = SplitMix::new(7);
    let variants = [
        variant("control", 0.5, 20_000, 1.0, &mut rng),
        variant("better", 0.5, 20_000, 1.1, &mut rng),
    ];
    let results =
        analyse(&variants, &AnalysisSettings::default(), &mut SequentialSrm::new(1_000.0));
    assert!(!results.sample_ratio.mismatch);
    assert_eq!(results.comparisons.len(), 2);
    let clicks = results.comparisons.iter().find(|c| c.metric == "clicks_per_user").unwrap();
    let cuped = clicks.cuped.unwrap();
    assert!(
        cuped.variance_reduction > 0.2,
        "pre-period clicks explain much: {}",
        cuped.variance_reduction
    );
    assert!(cuped.absolute.lower > 0.0 && clicks.significant == Some(true), "{clicks:?}");
    assert!((clicks.relative.estimate - 0.1).abs() < 0.05, "{}", clicks.relative.estimate);
    let ctr = results.comparisons.iter().find(|c| c.metric == "ctr").unwrap();
    assert!(ctr.cuped.is_none(), "ratios have no covariate here");
    let raw = [cuped.sequential_absolute.p_value, ctr.sequential_absolute.p_value];
    let adjusted = holm(&raw);
    assert_eq!([clicks.decision_p_value, ctr.decision_p_value], [adjusted[0], adjusted[1]]);
}

#[test]
fn a_sample_ratio_mismatch_withholds_the_verdict() {
    let mut rng = SplitMix::new(8);
    let variants = [
        variant("control", 0.5, 9_800, 1.0, &mut rng),
        variant("better", 0.5, 10_200, 1.3, &mut rng),
    ];
    let results =
        analyse(&variants, &AnalysisSettings::default(), &mut SequentialSrm::new(1_000.0));
    assert!(results.sample_ratio.chi_square.p_value < 0.01);
    // A 49/51 split on 20,000 users: χ² p ≈ 0.005, above the 0.001 threshold.
    let strict = AnalysisSettings { srm_threshold: 0.01, ..AnalysisSettings::default() };
    let results = analyse(&variants, &strict, &mut SequentialSrm::new(1_000.0));
    assert!(results.sample_ratio.mismatch);
    assert!(results.comparisons.iter().all(|c| c.significant.is_none()), "no verdict under SRM");
}
