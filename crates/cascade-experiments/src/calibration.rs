//! A/A calibration: many experiments whose variants are identical, looked
//! at repeatedly. A test that is right at α rejects about α of them; one
//! read at every look by a test built to be read once rejects far more.
//! This is the statistics code alone, on simulated per-user values, so it
//! runs in seconds and needs no server.

use serde::Serialize;

use crate::planned::{boundaries, decide_at, take_look};
use crate::results::{AnalysisSettings, MetricKind, MetricTotals, VariantTotals, analyse};
use crate::statistics::{
    Estimate, PairedMoments, Scale, SequentialSrm, cuped_theta, sequential, welch,
};

/// The simulation's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationSettings {
    pub experiments: usize,
    pub looks: usize,
    /// Users who arrive between two looks (split 50/50).
    pub users_per_look: usize,
    pub alpha: f64,
    /// The always-valid test's tuning (total users where it is tightest).
    pub sequential_tuning: f64,
    pub seed: u64,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        CalibrationSettings {
            experiments: 1_000,
            looks: 20,
            users_per_look: 500,
            alpha: 0.05,
            sequential_tuning: 5_000.0,
            seed: 2026,
        }
    }
}

/// False-positive rates: the share of A/A experiments a test called
/// significant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationReport {
    pub settings: CalibrationSettings,
    /// Welch read once, at the last look: should be α.
    pub fixed_read_once: f64,
    /// Welch read at every look, stopping at the first rejection: the
    /// peeking problem.
    pub fixed_every_look: f64,
    /// The always-valid test read at every look: at most α.
    pub sequential_every_look: f64,
    /// The same on the CUPED-adjusted estimate.
    pub sequential_cuped_every_look: f64,
    /// The group-sequential test (O'Brien–Fleming-type spending over the
    /// planned users) at every look, on the CUPED-adjusted estimate: the
    /// server's own path for an experiment with `planned_users`
    /// (`planned::take_look` at each look, `planned::decide` at the end).
    /// α, when the horizon is planned.
    pub group_sequential_every_look: f64,
}

/// Runs the A/A simulation. Users' clicks are Poisson around a per-user
/// rate drawn from an exponential (heavy users and light ones), and each
/// has a pre-period count from the same rate, CUPED's covariate.
pub fn calibrate(settings: &CalibrationSettings) -> CalibrationReport {
    let mut rng = SplitMix::new(settings.seed);
    let (mut once, mut fixed_any, mut sequential_any, mut cuped_any) =
        (0usize, 0usize, 0usize, 0usize);
    let mut planned_any = 0usize;
    let planned_users = (settings.looks * settings.users_per_look) as u64;
    let analysis = AnalysisSettings {
        alpha: settings.alpha,
        sequential_tuning: settings.sequential_tuning,
        ..AnalysisSettings::default()
    };
    let mut shared_boundaries: Option<Vec<f64>> = None;
    for _ in 0..settings.experiments {
        let mut arms = [PairedMoments::default(); 2];
        let (mut fixed_seen, mut sequential_seen, mut cuped_seen) = (false, false, false);
        let mut last_fixed = false;
        let mut looks = Vec::new();
        let mut results = None;
        for _ in 0..settings.looks {
            for _ in 0..settings.users_per_look {
                let rate = -2.0 * (1.0 - rng.unit()).ln();
                let arm = usize::from(rng.unit() < 0.5);
                arms[arm].add(rng.poisson(rate), rng.poisson(rate));
            }
            let control = Estimate::mean_of(&arms[0].x);
            let treatment = Estimate::mean_of(&arms[1].x);
            let rejects = |lift: Option<crate::statistics::Lift>| {
                lift.is_some_and(|lift| lift.p_value < settings.alpha)
            };
            last_fixed = rejects(welch(&control, &treatment, Scale::Absolute, settings.alpha));
            fixed_seen |= last_fixed;
            sequential_seen |= rejects(sequential(
                &control,
                &treatment,
                Scale::Absolute,
                settings.alpha,
                settings.sequential_tuning,
            ));
            let theta = cuped_theta(&arms[0], &arms[1]);
            cuped_seen |= rejects(sequential(
                &Estimate::cuped(&arms[0], theta),
                &Estimate::cuped(&arms[1], theta),
                Scale::Absolute,
                settings.alpha,
                settings.sequential_tuning,
            ));
            let variants = arms.map(|totals| VariantTotals {
                name: String::new(),
                weight: 0.5,
                users: totals.n(),
                metrics: [("clicks".to_owned(), MetricTotals { kind: MetricKind::Mean, totals })]
                    .into(),
            });
            let mut srm = SequentialSrm::new(analysis.srm_concentration);
            let looked = analyse(&variants, &analysis, &mut srm);
            let users = arms.iter().map(PairedMoments::n).sum();
            take_look(&mut looks, &looked, users, planned_users, settings.looks);
            results = Some(looked);
        }
        let planned_seen = results.is_some_and(|mut results| {
            // Every experiment looks at the same fractions: one set of boundaries.
            let boundaries = shared_boundaries.get_or_insert_with(|| boundaries(&results, &looks));
            decide_at(&mut results, &looks, settings.looks, boundaries);
            results.comparisons.iter().any(|c| c.significant == Some(true))
        });
        once += usize::from(last_fixed);
        fixed_any += usize::from(fixed_seen);
        sequential_any += usize::from(sequential_seen);
        cuped_any += usize::from(cuped_seen);
        planned_any += usize::from(planned_seen);
    }
    let share = |count: usize| count as f64 / settings.experiments as f64;
    CalibrationReport {
        settings: *settings,
        fixed_read_once: share(once),
        fixed_every_look: share(fixed_any),
        sequential_every_look: share(sequential_any),
        sequential_cuped_every_look: share(cuped_any),
        group_sequential_every_look: share(planned_any),
    }
}

/// SplitMix64: small, seeded, and good enough for simulated users.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A Poisson draw (Knuth's product of uniforms; rates here are small).
    pub fn poisson(&mut self, rate: f64) -> f64 {
        let limit = (-rate).exp();
        let mut product = self.unit();
        let mut count = 0.0;
        while product > limit {
            product *= self.unit();
            count += 1.0;
        }
        count
    }
}

/// The SRM checks under continuous monitoring: `experiments` 50/50
/// experiments whose users arrive in `looks` batches of `users_per_look`,
/// checked after every batch at level `alpha`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SrmMonitoringReport {
    /// The true share of users sent to the second variant.
    pub true_share: f64,
    pub experiments: usize,
    pub looks: usize,
    pub users_per_look: usize,
    pub alpha: f64,
    /// Share of experiments the χ² check flagged at some look.
    pub chi_square_flagged: f64,
    /// Share the always-valid test flagged at some look.
    pub sequential_flagged: f64,
    /// Median users seen when the always-valid test first flagged
    /// (flagged experiments only; 0 when none was).
    pub sequential_median_users_to_flag: f64,
}

/// Runs the SRM monitoring simulation with a true split of
/// `1 − true_share : true_share` against configured weights of 50/50.
pub fn srm_monitoring(
    settings: &CalibrationSettings,
    true_share: f64,
    concentration: f64,
) -> SrmMonitoringReport {
    let mut rng = SplitMix::new(settings.seed ^ 0x5e5e);
    let weights = [0.5, 0.5];
    let (mut chi_flagged, mut sequential_flagged) = (0usize, 0usize);
    let mut users_to_flag = Vec::new();
    for _ in 0..settings.experiments {
        let mut users = [0u64; 2];
        let mut monitor = crate::statistics::SequentialSrm::new(concentration);
        let (mut chi_seen, mut sequential_seen) = (false, false);
        for _ in 0..settings.looks {
            for _ in 0..settings.users_per_look {
                users[usize::from(rng.unit() < true_share)] += 1;
            }
            chi_seen |=
                crate::statistics::chi_square_srm(&users, &weights, settings.alpha).mismatch;
            if !sequential_seen && monitor.observe(&users, &weights) < settings.alpha {
                sequential_seen = true;
                users_to_flag.push((users[0] + users[1]) as f64);
            }
        }
        chi_flagged += usize::from(chi_seen);
        sequential_flagged += usize::from(sequential_seen);
    }
    users_to_flag.sort_by(f64::total_cmp);
    let share = |count: usize| count as f64 / settings.experiments as f64;
    SrmMonitoringReport {
        true_share,
        experiments: settings.experiments,
        looks: settings.looks,
        users_per_look: settings.users_per_look,
        alpha: settings.alpha,
        chi_square_flagged: share(chi_flagged),
        sequential_flagged: share(sequential_flagged),
        sequential_median_users_to_flag: users_to_flag
            .get(users_to_flag.len() / 2)
            .copied()
            .unwrap_or(0.0),
    }
}
