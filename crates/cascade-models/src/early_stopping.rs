//! Early stopping on a validation metric (higher is better).

/// Tracks the best epoch and says when patience has run out.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    best: Option<(usize, f64)>,
    /// When training must stop, from its time budget.
    deadline: Option<std::time::Instant>,
}

/// What to do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This epoch is the best so far: keep its weights.
    Improved,
    /// Not better; keep training.
    Continue,
    /// `patience` epochs without improvement: stop.
    Stop,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without a new best.
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping { patience, best: None, deadline: None }
    }

    /// Stops on `training`'s patience, or at the end of the epoch that
    /// runs past its time budget, counted from now.
    pub fn for_training(training: &crate::training::TrainingSettings) -> EarlyStopping {
        let deadline = training.time_budget_s.map(|budget| {
            std::time::Instant::now() + std::time::Duration::from_secs_f64(budget.max(0.0))
        });
        EarlyStopping { deadline, ..EarlyStopping::new(training.patience) }
    }

    /// Whether the time budget is spent: the loop stops after this epoch,
    /// its best weights kept as on any stop.
    pub fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }

    /// Records epoch `epoch`'s validation value.
    pub fn observe(&mut self, epoch: usize, value: f64) -> Verdict {
        match self.best {
            Some((best_epoch, best)) if value <= best => {
                if epoch - best_epoch >= self.patience {
                    Verdict::Stop
                } else {
                    Verdict::Continue
                }
            }
            _ => {
                self.best = Some((epoch, value));
                Verdict::Improved
            }
        }
    }

    /// The best epoch so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(epoch, _)| epoch)
    }

    /// The best value so far.
    pub fn best_value(&self) -> Option<f64> {
        self.best.map(|(_, value)| value)
    }
}

/// How many epochs early stopping kept, given each epoch's validation
/// value in order: up to and including the first best (0 for none). A refit
/// on every row trains this many.
pub fn kept_epochs(values: impl IntoIterator<Item = f64>) -> usize {
    let mut stopping = EarlyStopping::new(usize::MAX);
    for (epoch, value) in values.into_iter().enumerate() {
        stopping.observe(epoch, value);
    }
    stopping.best_epoch().map_or(0, |epoch| epoch + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_epochs_counts_up_to_the_first_best() {
        assert_eq!(kept_epochs([0.1, 0.3, 0.3, 0.2]), 2);
        assert_eq!(kept_epochs([0.5]), 1);
        assert_eq!(kept_epochs([]), 0);
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut stop = EarlyStopping::new(2);
        assert_eq!(stop.observe(0, 0.1), Verdict::Improved);
        assert_eq!(stop.observe(1, 0.2), Verdict::Improved);
        assert_eq!(stop.observe(2, 0.2), Verdict::Continue);
        assert_eq!(stop.observe(3, 0.15), Verdict::Stop);
        assert_eq!((stop.best_epoch(), stop.best_value()), (Some(1), Some(0.2)));
    }
}
