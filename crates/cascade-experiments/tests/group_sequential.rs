//! The group-sequential boundaries against the published Lan–DeMets
//! O'Brien–Fleming-type values (α = 0.05 two-sided, five equally spaced
//! looks: 4.877, 3.357, 2.680, 2.290, 2.031, as R's ldbounds and gsDesign
//! give them), and the error they spend.

use cascade_experiments::statistics::{group_sequential_boundaries, obrien_fleming_spent};

#[test]
fn five_looks_match_the_published_boundaries() {
    let fractions = [0.2, 0.4, 0.6, 0.8, 1.0];
    let boundaries = group_sequential_boundaries(&fractions, 0.05);
    let published = [4.877, 3.357, 2.680, 2.290, 2.031];
    for (got, expected) in boundaries.iter().zip(published) {
        assert!((got - expected).abs() < 2e-3, "{boundaries:?} against {published:?}");
    }
    assert!((obrien_fleming_spent(0.05, 1.0) - 0.05).abs() < 1e-12, "all of α by the horizon");
    assert!(obrien_fleming_spent(0.05, 0.2) < 1e-5, "little early on");
}
