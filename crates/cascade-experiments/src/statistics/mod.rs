//! From per-variant sufficient statistics to decisions.
//!
//! Every metric is per user (the randomisation unit): a variant keeps, per
//! metric, the users' count, sum and sum of squares ([`Moments`]), and for
//! ratio metrics (clicks per impression) or CUPED the sum of products with
//! a second per-user value ([`PairedMoments`]). [`Estimate`] turns those into
//! a mean and a per-user variance, by the delta method for ratios and by
//! regression on the pre-period value for CUPED; [`welch`] and
//! [`sequential`] compare two estimates. Sums merge, so results are
//! computed from durable aggregates and never from the log.

mod distributions;
mod estimate;
mod group_sequential;
mod lift;
mod moments;
mod multiple;
mod power;
mod srm;

pub use distributions::{normal_quantile, student_t_quantile, student_t_survival};
pub use estimate::{Estimate, cuped_theta, variance_reduction};
pub use group_sequential::{group_sequential_boundaries, obrien_fleming_spent};
pub use lift::{Lift, Scale, one_sample, sequential, welch, welch_dof};
pub use moments::{Moments, PairedMoments};
pub use multiple::holm;
pub use power::users_per_variant;
pub use srm::{SequentialSrm, SrmCheck, chi_square_srm, srm_log_bayes_factor};
