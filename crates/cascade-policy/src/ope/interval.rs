//! How far to trust an estimate: the effective sample size of its weights
//! and a bootstrap interval.

use cascade_experiments::calibration::SplitMix;
use serde::{Deserialize, Serialize};

use super::OpeError;
use super::standard::{Estimator, Round, check};

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

impl Interval {
    /// Whether `value` lies inside, ends included.
    pub fn covers(&self, value: f64) -> bool {
        self.lower <= value && value <= self.upper
    }
}

/// Kish's effective sample size of the importance weights, (Σw)² / Σw²:
/// how many on-policy rounds the log is worth for this target policy.
pub fn effective_sample_size(rounds: &[Round]) -> f64 {
    let (sum, sum_sq) =
        rounds.iter().map(Round::weight).fold((0.0, 0.0), |(s, q), w| (s + w, q + w * w));
    if sum_sq > 0.0 { sum * sum / sum_sq } else { 0.0 }
}

/// The percentile bootstrap interval at level `1 − alpha`: the log's rounds
/// resampled with replacement `resamples` times (seeded), the estimator
/// recomputed on each, so that self-normalised estimators normalise within
/// each resample.
pub fn bootstrap_interval(
    estimator: Estimator,
    rounds: &[Round],
    resamples: usize,
    alpha: f64,
    seed: u64,
) -> Result<Interval, OpeError> {
    check(rounds)?;
    let mut rng = SplitMix::new(seed);
    let mut sample = Vec::with_capacity(rounds.len());
    let mut estimates: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            sample.clear();
            sample.extend((0..rounds.len()).map(|_| rounds[rng.below(rounds.len())]));
            let values = estimator.round_values(&sample);
            values.iter().sum::<f64>() / values.len() as f64
        })
        .collect();
    estimates.sort_by(f64::total_cmp);
    Ok(Interval {
        lower: percentile(&estimates, alpha / 2.0),
        upper: percentile(&estimates, 1.0 - alpha / 2.0),
    })
}

/// The percentile bootstrap interval of one target's relative lift over
/// another, V̂(treatment) / V̂(control) − 1: `treatment[i]` and
/// `control[i]` are the same logged round seen from the two targets, so
/// each resample draws the same rounds for both and their shared noise
/// (the same users, the same clicks) cancels in the ratio.
pub fn bootstrap_lift_interval(
    estimator: Estimator,
    (treatment, control): (&[Round], &[Round]),
    resamples: usize,
    alpha: f64,
    seed: u64,
) -> Result<Interval, OpeError> {
    check(treatment)?;
    check(control)?;
    if treatment.len() != control.len() {
        return Err(OpeError::Unpaired { treatment: treatment.len(), control: control.len() });
    }
    let mut rng = SplitMix::new(seed);
    let n = treatment.len();
    let (mut treated, mut controlled) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mean = |rounds: &[Round]| {
        let values = estimator.round_values(rounds);
        values.iter().sum::<f64>() / values.len() as f64
    };
    let mut lifts: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            treated.clear();
            controlled.clear();
            for _ in 0..n {
                let i = rng.below(n);
                treated.push(treatment[i]);
                controlled.push(control[i]);
            }
            mean(&treated) / mean(&controlled) - 1.0
        })
        .filter(|lift| lift.is_finite())
        .collect();
    if lifts.is_empty() {
        return Ok(Interval { lower: f64::NAN, upper: f64::NAN });
    }
    lifts.sort_by(f64::total_cmp);
    Ok(Interval {
        lower: percentile(&lifts, alpha / 2.0),
        upper: percentile(&lifts, 1.0 - alpha / 2.0),
    })
}

/// NumPy's default (linear) percentile of sorted values, `q` in [0, 1].
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_are_worth_every_round() {
        let round = Round {
            reward: 1.0,
            behavior_pscore: 0.5,
            target_pscore: 0.5,
            predicted_reward: 0.0,
            direct_value: 0.0,
        };
        assert!((effective_sample_size(&[round; 40]) - 40.0).abs() < 1e-9);
        let heavy = Round { target_pscore: 1.0, behavior_pscore: 0.01, ..round };
        let mut rounds = vec![round; 40];
        rounds.push(heavy);
        assert!(effective_sample_size(&rounds) < 3.0, "one weight of 100 dominates");
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 1.0), 4.0);
        assert!((percentile(&sorted, 0.5) - 2.5).abs() < 1e-15);
        assert!((percentile(&sorted, 0.025) - 1.075).abs() < 1e-12);
    }

    /// Two targets that see the same logged rounds, one weighting every
    /// click 1.2 times as much: their lift is exactly +20% in every
    /// resample, however noisy each estimate is alone; a lift of a target
    /// over itself is 0; unpaired logs are refused.
    #[test]
    fn the_lift_interval_pairs_the_rounds() {
        let mut rng = SplitMix::new(11);
        let control: Vec<Round> = (0..500)
            .map(|_| Round {
                reward: if rng.unit() < 0.05 { 1.0 } else { 0.0 },
                behavior_pscore: 0.5,
                target_pscore: 0.5,
                predicted_reward: 0.0,
                direct_value: 0.0,
            })
            .collect();
        let treatment: Vec<Round> =
            control.iter().map(|r| Round { target_pscore: 0.6, ..*r }).collect();
        let ips = Estimator::Ips { clip: None };
        let lift = bootstrap_lift_interval(ips, (&treatment, &control), 300, 0.05, 3).unwrap();
        assert!((lift.lower - 0.2).abs() < 1e-9 && (lift.upper - 0.2).abs() < 1e-9, "{lift:?}");
        let alone = bootstrap_interval(ips, &control, 300, 0.05, 3).unwrap();
        assert!(alone.upper - alone.lower > 0.01, "each estimate alone is noisy: {alone:?}");
        let same = bootstrap_lift_interval(ips, (&control, &control), 300, 0.05, 3).unwrap();
        assert_eq!((same.lower, same.upper), (0.0, 0.0));
        let error = bootstrap_lift_interval(ips, (&treatment[1..], &control), 10, 0.05, 3);
        assert_eq!(error, Err(OpeError::Unpaired { treatment: 499, control: 500 }));
    }

    /// A Bernoulli(0.3) log evaluated on-policy: the 95% interval covers
    /// 0.3 and is about ±2·sqrt(0.21 / n) wide.
    #[test]
    fn the_bootstrap_interval_has_the_binomial_width() {
        let mut rng = SplitMix::new(5);
        let rounds: Vec<Round> = (0..4000)
            .map(|_| Round {
                reward: if rng.unit() < 0.3 { 1.0 } else { 0.0 },
                behavior_pscore: 0.2,
                target_pscore: 0.2,
                predicted_reward: 0.0,
                direct_value: 0.0,
            })
            .collect();
        let interval =
            bootstrap_interval(Estimator::Ips { clip: None }, &rounds, 2000, 0.05, 9).unwrap();
        assert!(interval.covers(0.3), "{interval:?}");
        let half_width = (interval.upper - interval.lower) / 2.0;
        let expected = 1.96 * (0.21f64 / 4000.0).sqrt();
        assert!((half_width / expected - 1.0).abs() < 0.1, "{half_width} against {expected}");
    }
}
