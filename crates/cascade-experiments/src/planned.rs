//! The verdict of an experiment with a planned sample size: a
//! group-sequential test whose looks are taken when each planned fraction of
//! the users has been exposed, not when someone reads the results, so
//! reading them every minute changes nothing. Its boundaries come from
//! Lan-DeMets O'Brien-Fleming-type spending at the fractions the looks were
//! actually taken at (a look taken late still spends correctly); several
//! comparisons share α by Bonferroni.
//!
//! Against the always-valid test, it spends its α on the looks it plans
//! rather than on infinitely many, so its false-positive rate is close to α
//! instead of well under it (`cascade experiment calibrate`), and it needs a
//! horizon.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::{Comparison, ExperimentResults};
use crate::statistics::group_sequential_boundaries;

/// Which test the verdict rests on when the experiment has a plan.
pub const GROUP_SEQUENTIAL_TEST: &str = "group-sequential test (Lan-DeMets O'Brien-Fleming-type \
spending) at the looks the server takes when each planned fraction of users has been exposed, on \
the CUPED-adjusted estimate where a pre-period value is kept, Bonferroni across metrics and variants";

/// One look the server took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// How many of the planned fractions had been reached (1..=planned looks).
    pub index: usize,
    /// Exposed users / planned users, at most 1.
    pub fraction: f64,
    /// Each comparison's z statistic (`metric/variant`).
    pub z: BTreeMap<String, f64>,
}

/// A comparison's group-sequential verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSequentialVerdict {
    /// Looks taken so far, of `planned_looks`.
    pub looks: usize,
    pub planned_looks: usize,
    /// The |z| boundary of each look taken.
    pub boundaries: Vec<f64>,
    /// The first look whose |z| reached its boundary (1-based).
    pub crossed_at_look: Option<usize>,
}

/// A comparison's name in the looks.
pub fn comparison_key(comparison: &Comparison) -> String {
    format!("{}/{}", comparison.metric, comparison.variant)
}

/// The z statistic the verdict reads: the CUPED-adjusted absolute lift
/// where a pre-period value is kept, else the plain one.
pub fn decision_z(comparison: &Comparison) -> f64 {
    let lift = comparison.cuped.map_or(comparison.absolute, |cuped| cuped.absolute);
    lift.estimate / lift.standard_error
}

/// The planned fraction `users` exposed users reach (1..=planned looks),
/// if it is beyond the last look's: a look is due. Cheap, so a caller can
/// ask before computing the results a look reads.
pub fn look_due(
    looks: &[Look],
    users: u64,
    planned_users: u64,
    planned_looks: usize,
) -> Option<usize> {
    let reached = (users.saturating_mul(planned_looks as u64) / planned_users.max(1))
        .min(planned_looks as u64) as usize;
    (reached > looks.last().map_or(0, |look| look.index)).then_some(reached)
}

/// Takes the next look if `users` exposed users reach a planned fraction
/// beyond the last look's; several fractions passed at once make one look.
/// Returns whether it took one.
pub fn take_look(
    looks: &mut Vec<Look>,
    results: &ExperimentResults,
    users: u64,
    planned_users: u64,
    planned_looks: usize,
) -> bool {
    let Some(reached) = look_due(looks, users, planned_users, planned_looks) else {
        return false;
    };
    let z = results
        .comparisons
        .iter()
        .map(|comparison| (comparison_key(comparison), decision_z(comparison)))
        .filter(|(_, z)| z.is_finite())
        .collect();
    let fraction = (users as f64 / planned_users.max(1) as f64).min(1.0);
    looks.push(Look { index: reached, fraction, z });
    true
}

/// Rests `results`' verdict on the group-sequential test over `looks`:
/// a comparison is significant once its |z| has reached the boundary of a
/// look (withheld while the sample ratio is off, as always).
pub fn decide(results: &mut ExperimentResults, looks: &[Look], planned_looks: usize) {
    let boundaries = boundaries(results, looks);
    decide_at(results, looks, planned_looks, &boundaries);
}

/// The |z| boundary of each look in `looks`, at α shared by `results`'
/// comparisons.
pub fn boundaries(results: &ExperimentResults, looks: &[Look]) -> Vec<f64> {
    let fractions: Vec<f64> = looks.iter().map(|look| look.fraction).collect();
    let alpha = results.alpha / results.comparisons.len().max(1) as f64;
    group_sequential_boundaries(&fractions, alpha)
}

/// [`decide`] with the looks' boundaries computed already (a calibration
/// whose experiments all look at the same fractions computes them once).
pub fn decide_at(
    results: &mut ExperimentResults,
    looks: &[Look],
    planned_looks: usize,
    boundaries: &[f64],
) {
    let mismatch = results.sample_ratio.mismatch;
    for comparison in &mut results.comparisons {
        let key = comparison_key(comparison);
        let crossed_at_look = looks
            .iter()
            .zip(boundaries)
            .position(|(look, &boundary)| look.z.get(&key).is_some_and(|z| z.abs() >= boundary))
            .map(|k| k + 1);
        comparison.significant = (!mismatch).then_some(crossed_at_look.is_some());
        comparison.group_sequential = Some(GroupSequentialVerdict {
            looks: looks.len(),
            planned_looks,
            boundaries: boundaries.to_vec(),
            crossed_at_look,
        });
    }
    results.decision_test = GROUP_SEQUENTIAL_TEST;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{AnalysisSettings, MetricKind, MetricTotals, VariantTotals, analyse};
    use crate::statistics::{PairedMoments, SequentialSrm};

    /// Two variants of `users` users each whose clicks differ by `shift`.
    fn results(users: u64, shift: f64) -> ExperimentResults {
        let variant = |name: &str, shift: f64| {
            let x: Vec<f64> = (0..users).map(|u| (u % 5) as f64 + shift).collect();
            let y: Vec<f64> = (0..users).map(|u| ((u * 7) % 3) as f64).collect();
            let totals = PairedMoments::of(&x, &y);
            VariantTotals {
                name: name.into(),
                weight: 0.5,
                users,
                metrics: [("clicks".to_owned(), MetricTotals { kind: MetricKind::Mean, totals })]
                    .into(),
            }
        };
        let variants = [variant("a", 0.0), variant("b", shift)];
        analyse(&variants, &AnalysisSettings::default(), &mut SequentialSrm::new(1_000.0))
    }

    /// A look is taken when the exposed users pass the next planned
    /// fraction; fractions passed at once make one look; none after the last.
    #[test]
    fn looks_are_taken_at_planned_fractions_once() {
        let mut looks = Vec::new();
        let plan =
            |looks: &mut Vec<Look>, users| take_look(looks, &results(50, 0.1), users, 100, 4);
        assert!(!plan(&mut looks, 10));
        assert!(plan(&mut looks, 25));
        assert!(!plan(&mut looks, 30));
        assert!(plan(&mut looks, 80), "fractions 2 and 3 passed at once");
        assert!(plan(&mut looks, 150));
        assert!(!plan(&mut looks, 200), "the plan's last look was taken");
        let taken: Vec<(usize, f64)> = looks.iter().map(|l| (l.index, l.fraction)).collect();
        assert_eq!(taken, [(1, 0.25), (3, 0.8), (4, 1.0)]);
        assert!(looks[0].z.contains_key("clicks/b"));
    }

    /// A large effect crosses at the first look (O'Brien-Fleming asks for
    /// |z| above 4 there), a smaller one at a later look, none never; the
    /// verdict names the group-sequential test.
    #[test]
    fn the_verdict_is_the_first_crossing() {
        for (shift, crossed) in [(3.0, Some(1)), (1.0, Some(2)), (0.0, None)] {
            let mut looks = Vec::new();
            for users in [100, 200, 300, 400] {
                take_look(&mut looks, &results(users / 2, shift), users, 400, 4);
            }
            let mut decided = results(200, shift);
            decide(&mut decided, &looks, 4);
            let comparison = &decided.comparisons[0];
            let verdict = comparison.group_sequential.as_ref().unwrap();
            assert_eq!(verdict.looks, 4);
            assert_eq!(verdict.crossed_at_look, crossed, "shift {shift}");
            assert_eq!(comparison.significant, Some(crossed.is_some()));
            // O'Brien-Fleming-type boundaries fall towards the end.
            assert!(verdict.boundaries[0] > verdict.boundaries[3]);
            assert_eq!(decided.decision_test, GROUP_SEQUENTIAL_TEST);
        }
    }
}
