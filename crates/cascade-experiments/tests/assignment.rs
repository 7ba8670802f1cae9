//! Assignment: uniform positions, independent layers, allocations that
//! only ever add users, and layouts refused with the field named.
#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use cascade_experiments::assignment::{Assigner, ExperimentLayout, Holdout, LayoutError, position};
use proptest::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const IDS: usize = 1_000_000;
const BINS: usize = 100;

fn chi_square_p(statistic: f64, dof: usize) -> f64 {
    ChiSquared::new(dof as f64).unwrap().sf(statistic)
}

fn bin(at: f64) -> usize {
    ((at * BINS as f64) as usize).min(BINS - 1)
}

fn experiment(
    name: &str,
    layer: &str,
    start: f64,
    allocation: f64,
    weights: &[f64],
) -> ExperimentLayout {
    ExperimentLayout {
        name: name.into(),
        layer: layer.into(),
        salt: name.into(),
        traffic_start: start,
        allocation,
        variants: weights.iter().enumerate().map(|(i, &w)| (format!("v{i}"), w)).collect(),
    }
}

#[test]
fn positions_are_uniform_over_a_million_ids() {
    let mut counts = [0u64; BINS];
    for id in 0..IDS {
        counts[bin(position("layer-1", &format!("user-{id}")))] += 1;
    }
    let expected = IDS as f64 / BINS as f64;
    let statistic: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    let p = chi_square_p(statistic, BINS - 1);
    assert!(p > 0.01, "χ² = {statistic:.1}, p = {p:.4}");
}

#[test]
fn two_layers_are_independent() {
    const SIDE: usize = 10;
    let mut table = [[0u64; SIDE]; SIDE];
    for id in 0..IDS {
        let user = format!("user-{id}");
        let first = (position("ranking", &user) * SIDE as f64) as usize;
        let second = (position("recall", &user) * SIDE as f64) as usize;
        table[first.min(SIDE - 1)][second.min(SIDE - 1)] += 1;
    }
    let rows: Vec<f64> = table.iter().map(|row| row.iter().sum::<u64>() as f64).collect();
    let columns: Vec<f64> =
        (0..SIDE).map(|c| table.iter().map(|row| row[c]).sum::<u64>() as f64).collect();
    let mut statistic = 0.0;
    for r in 0..SIDE {
        for c in 0..SIDE {
            let expected = rows[r] * columns[c] / IDS as f64;
            statistic += (table[r][c] as f64 - expected).powi(2) / expected;
        }
    }
    let p = chi_square_p(statistic, (SIDE - 1) * (SIDE - 1));
    assert!(p > 0.01, "χ² = {statistic:.1}, p = {p:.4}");
}

#[test]
fn variants_split_by_weight_and_layers_overlap_only_across() {
    let assigner = Assigner::new(
        Some(Holdout { salt: "holdout".into(), fraction: 0.1 }),
        vec![
            experiment("ranker", "ranking", 0.0, 0.5, &[0.2, 0.8]),
            experiment("mmr", "ranking", 0.5, 0.5, &[0.5, 0.5]),
            experiment("recall", "recall", 0.0, 1.0, &[0.5, 0.5]),
        ],
    )
    .unwrap();
    let (mut held_out, mut ranker, mut treated, mut both_ranking_layers) = (0u64, 0u64, 0u64, 0u64);
    for id in 0..100_000 {
        let assignment = assigner.assign(&format!("user-{id}"));
        if assignment.holdout {
            held_out += 1;
            assert!(assignment.variants.is_empty());
            continue;
        }
        let on_ranking = assignment.variants.iter().filter(|(e, _)| *e < 2).count();
        assert_eq!(
            on_ranking, 1,
            "one experiment per layer, and the ranking layer is fully covered"
        );
        both_ranking_layers += u64::from(on_ranking > 1);
        assert!(
            assignment.variants.iter().any(|(e, _)| *e == 2),
            "the recall layer covers everyone"
        );
        if let Some((_, variant)) = assignment.variants.iter().find(|(e, _)| *e == 0) {
            ranker += 1;
            treated += u64::from(*variant == 1);
        }
    }
    assert_eq!(both_ranking_layers, 0);
    assert!((9_000..11_000).contains(&held_out), "holdout {held_out}");
    let share = treated as f64 / ranker as f64;
    assert!((share - 0.8).abs() < 0.01, "treatment share {share}");
}

#[test]
fn layouts_are_refused_with_the_field_named() {
    let refuse = |experiments: Vec<ExperimentLayout>| {
        Assigner::new(None, experiments).unwrap_err().to_string()
    };
    let message = refuse(vec![
        experiment("a", "l", 0.0, 0.6, &[0.5, 0.5]),
        experiment("b", "l", 0.5, 0.5, &[0.5, 0.5]),
    ]);
    assert!(message.contains("\"a\" and \"b\"") && message.contains("overlap"), "{message}");
    let message = refuse(vec![experiment("a", "l", 0.0, 1.0, &[0.5, 0.6])]);
    assert!(message.contains("variants.weight") && message.contains("sum to 1"), "{message}");
    let message = refuse(vec![experiment("a", "l", 0.0, 1.0, &[1.0])]);
    assert!(message.contains("variants"), "{message}");
    let message = refuse(vec![experiment("a", "l", 0.7, 0.5, &[0.5, 0.5])]);
    assert!(message.contains("traffic_start"), "{message}");
    assert!(matches!(
        Assigner::new(Some(Holdout { salt: "h".into(), fraction: 1.0 }), Vec::new()),
        Err(LayoutError::Holdout(_))
    ));
    // Different layers may use the same range.
    Assigner::new(
        None,
        vec![
            experiment("a", "l1", 0.0, 1.0, &[0.5, 0.5]),
            experiment("b", "l2", 0.0, 1.0, &[0.5, 0.5]),
        ],
    )
    .unwrap();
}

proptest! {
    #[test]
    fn raising_an_allocation_never_moves_a_user(
        start in 0.0f64..0.5,
        low in 0.0f64..0.25,
        raise in 0.0f64..0.25,
        control in 0.05f64..0.95,
        users in proptest::collection::vec("[a-z0-9]{1,12}", 1..200),
    ) {
        let weights = [control, 1.0 - control];
        let before = Assigner::new(None, vec![experiment("e", "l", start, low, &weights)]).unwrap();
        let after = Assigner::new(None, vec![experiment("e", "l", start, low + raise, &weights)]).unwrap();
        for user in &users {
            if let Some(&(_, variant)) = before.assign(user).variants.first() {
                prop_assert_eq!(after.assign(user).variants.first().map(|&(_, v)| v), Some(variant));
            }
        }
    }
}
