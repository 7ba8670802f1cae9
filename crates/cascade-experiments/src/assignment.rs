//! Which experiments and variants a user is in.
//!
//! Positions come from GrowthBook's hash (v2): FNV-1a 32 of the salt and the
//! user id, hashed again and reduced to 10,000 buckets, so a user's
//! position in [0, 1) is the same in Cascade and in any GrowthBook SDK.
//! - A **layer** is a salt; each experiment on it owns a range of its
//!   positions, `[traffic_start, traffic_start + allocation)`. Ranges on one
//!   layer may not overlap, so a user is in at most one of its experiments;
//!   different layers hash independently, so their experiments are
//!   orthogonal and run at once.
//! - The **variant** comes from a second position, salted by the
//!   experiment, cut by the variants' weights. It does not depend on the
//!   allocation: raising an allocation adds users and moves nobody who was
//!   already in.
//! - The global **holdout** is a position of its own salt: users below the
//!   holdout fraction are in no experiment and get the default pipeline.

use serde::Serialize;
use thiserror::Error;

/// Tolerance on the weights summing to 1.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

/// FNV-1a, 32 bits, over the text's UTF-16 code units (GrowthBook's SDKs
/// hash the way JavaScript's `charCodeAt` reads a string; for ASCII these
/// are the bytes).
pub fn fnv1a32(text: &str) -> u32 {
    text.encode_utf16()
        .fold(0x811c_9dc5_u32, |hash, unit| (hash ^ u32::from(unit)).wrapping_mul(0x0100_0193))
}

/// GrowthBook's hash v2: the user's position in [0, 1) under `salt`, in
/// steps of 1/10,000.
pub fn position(salt: &str, user_id: &str) -> f64 {
    let inner = fnv1a32(&format!("{salt}{user_id}"));
    f64::from(fnv1a32(&inner.to_string()) % 10_000) / 10_000.0
}

/// One experiment's traffic and variants, as assignment needs them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentLayout {
    pub name: String,
    /// The salt that places users on the layer.
    pub layer: String,
    /// The salt that picks the variant.
    pub salt: String,
    pub traffic_start: f64,
    /// The share of the layer's users in the experiment.
    pub allocation: f64,
    /// Variant names and weights, the first the control; weights sum to 1.
    pub variants: Vec<(String, f64)>,
}

impl ExperimentLayout {
    fn traffic_end(&self) -> f64 {
        self.traffic_start + self.allocation
    }

    /// The variant index of a user already known to be in the experiment.
    fn variant_at(&self, user_id: &str) -> usize {
        let at = position(&self.salt, user_id);
        let mut cumulative = 0.0;
        for (index, (_, weight)) in self.variants.iter().enumerate() {
            cumulative += weight;
            if at < cumulative {
                return index;
            }
        }
        self.variants.len() - 1
    }
}

/// The holdout: users who never enter an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holdout {
    pub salt: String,
    pub fraction: f64,
}

/// A layout that cannot assign users, naming the experiment and the field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LayoutError {
    #[error("experiment {experiment:?}: {field} {problem}")]
    Field { experiment: String, field: &'static str, problem: String },
    #[error(
        "experiments {first:?} and {second:?} share traffic on layer {layer:?}: their ranges [{first_start}, {first_end}) and [{second_start}, {second_end}) overlap"
    )]
    Overlap {
        layer: String,
        first: String,
        first_start: f64,
        first_end: f64,
        second: String,
        second_start: f64,
        second_end: f64,
    },
    #[error("holdout fraction must be in [0, 1), got {0}")]
    Holdout(f64),
}

/// Where a user stands: in the holdout, or in one variant of each
/// experiment whose traffic covers them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Assignment {
    pub holdout: bool,
    /// (experiment index, variant index), in the layout's experiment order.
    pub variants: Vec<(usize, usize)>,
}

/// Validated experiments and the holdout; assigns users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assigner {
    holdout: Option<Holdout>,
    experiments: Vec<ExperimentLayout>,
}

impl Assigner {
    pub fn new(
        holdout: Option<Holdout>,
        experiments: Vec<ExperimentLayout>,
    ) -> Result<Assigner, LayoutError> {
        if let Some(holdout) = &holdout
            && !(0.0..1.0).contains(&holdout.fraction)
        {
            return Err(LayoutError::Holdout(holdout.fraction));
        }
        for experiment in &experiments {
            validate(experiment)?;
        }
        for (index, first) in experiments.iter().enumerate() {
            if let Some(second) = experiments[index + 1..].iter().find(|second| {
                second.layer == first.layer
                    && second.traffic_start < first.traffic_end()
                    && first.traffic_start < second.traffic_end()
            }) {
                return Err(LayoutError::Overlap {
                    layer: first.layer.clone(),
                    first: first.name.clone(),
                    first_start: first.traffic_start,
                    first_end: first.traffic_end(),
                    second: second.name.clone(),
                    second_start: second.traffic_start,
                    second_end: second.traffic_end(),
                });
            }
        }
        Ok(Assigner { holdout, experiments })
    }

    pub fn experiments(&self) -> &[ExperimentLayout] {
        &self.experiments
    }

    pub fn assign(&self, user_id: &str) -> Assignment {
        if let Some(holdout) = &self.holdout
            && position(&holdout.salt, user_id) < holdout.fraction
        {
            return Assignment { holdout: true, variants: Vec::new() };
        }
        let variants = self
            .experiments
            .iter()
            .enumerate()
            .filter(|(_, experiment)| {
                let at = position(&experiment.layer, user_id);
                experiment.traffic_start <= at && at < experiment.traffic_end()
            })
            .map(|(index, experiment)| (index, experiment.variant_at(user_id)))
            .collect();
        Assignment { holdout: false, variants }
    }
}

fn validate(experiment: &ExperimentLayout) -> Result<(), LayoutError> {
    let field = |field: &'static str, problem: String| LayoutError::Field {
        experiment: experiment.name.clone(),
        field,
        problem,
    };
    if experiment.name.is_empty() {
        return Err(field("name", "is empty".into()));
    }
    if !(0.0..=1.0).contains(&experiment.allocation) {
        return Err(field(
            "allocation",
            format!("must be in [0, 1], got {}", experiment.allocation),
        ));
    }
    if experiment.traffic_start < 0.0 || experiment.traffic_end() > 1.0 + WEIGHT_SUM_TOLERANCE {
        return Err(field(
            "traffic_start",
            format!(
                "{} plus allocation {} leaves [0, 1]",
                experiment.traffic_start, experiment.allocation
            ),
        ));
    }
    if experiment.variants.len() < 2 {
        return Err(field("variants", "needs a control and at least one treatment".into()));
    }
    let mut names: Vec<&str> = experiment.variants.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(field("variants", format!("name {:?} appears twice", pair[0])));
    }
    if let Some((name, weight)) =
        experiment.variants.iter().find(|(_, weight)| !weight.is_finite() || *weight <= 0.0)
    {
        return Err(field(
            "variants.weight",
            format!("of {name:?} must be positive, got {weight}"),
        ));
    }
    let sum: f64 = experiment.variants.iter().map(|(_, weight)| weight).sum();
    if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(field("variants.weight", format!("must sum to 1, they sum to {sum}")));
    }
    Ok(())
}
