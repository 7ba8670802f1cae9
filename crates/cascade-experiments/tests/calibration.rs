//! A/A experiments, looked at repeatedly: the fixed-horizon test is right
//! read once and wrong read at every look; the always-valid test stays
//! under α at every look, and the group-sequential test of an experiment
//! with a plan is near α at every look. The setting: 1,000 experiments, 20 looks
//! (`cascade experiment calibrate` prints the same report).

use cascade_experiments::calibration::{CalibrationSettings, calibrate, srm_monitoring};

#[test]
fn fixed_horizon_peeks_badly_and_sequential_does_not() {
    let report = calibrate(&CalibrationSettings::default());
    assert_eq!((report.settings.experiments, report.settings.looks), (1_000, 20));
    assert!((0.03..=0.07).contains(&report.fixed_read_once), "{report:?}");
    assert!(report.fixed_every_look > 0.15, "peeking inflates the fixed test: {report:?}");
    assert!(report.sequential_every_look <= 0.06, "{report:?}");
    assert!(report.sequential_cuped_every_look <= 0.06, "{report:?}");
    // The server's verdict for an experiment with planned_users: looks
    // taken by `planned::take_look`, decided by `planned::decide`.
    assert!((0.03..=0.06).contains(&report.group_sequential_every_look), "{report:?}");
}

#[test]
fn sequential_srm_keeps_its_error_rate_and_catches_a_49_51_split() {
    // 100 looks of 1,000 users: the χ² check read at every look.
    let settings = CalibrationSettings {
        experiments: 500,
        looks: 100,
        users_per_look: 1_000,
        ..Default::default()
    };
    let balanced = srm_monitoring(&settings, 0.5, 1_000.0);
    assert!(balanced.sequential_flagged <= 0.05, "{balanced:?}");
    assert!(
        balanced.chi_square_flagged > 0.15,
        "χ² under monitoring raises false alarms: {balanced:?}"
    );
    let skewed = srm_monitoring(&settings, 0.51, 1_000.0);
    assert!(skewed.sequential_flagged >= 0.95, "{skewed:?}");
}
