//! Freshness and popularity: two steps that shift each item's relevance
//! (its slate `order`) before diversity picks among the most relevant.

use crate::request::ServeError;
use crate::rerank::{RerankContext, Reranker, Slate};

/// How ages and popularity shift relevance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustments {
    /// Added to a just-published item's relevance (relevance spans 0..1);
    /// halves every `half_life_seconds`.
    pub freshness_boost: f32,
    /// The boost's half-life.
    pub half_life_seconds: f64,
    /// Subtracted from the most popular item's relevance, in proportion to
    /// log(1 + count) / log(1 + max count) for the others.
    pub popularity_dampening: f32,
}

/// The freshness boost of an item `age_seconds` old.
pub fn freshness_bonus(settings: Adjustments, age_seconds: f64) -> f32 {
    settings.freshness_boost * 0.5f64.powf(age_seconds / settings.half_life_seconds) as f32
}

/// The popularity dampening of an item consumed `count` times, when the
/// most consumed item has `max_count`.
pub fn popularity_penalty(settings: Adjustments, count: f32, max_count: f32) -> f32 {
    let log_max = max_count.max(0.0).ln_1p().max(f32::EPSILON);
    settings.popularity_dampening * count.max(0.0).ln_1p() / log_max
}

/// `freshness`: newly published items rise; items without a publication
/// time keep their relevance.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    settings: Adjustments,
}

impl Freshness {
    /// With the boost and half-life of `settings`.
    pub fn new(settings: Adjustments) -> Freshness {
        Freshness { settings }
    }
}

impl Reranker for Freshness {
    fn name(&self) -> &str {
        "freshness"
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        let catalog = &context.models.catalog;
        for entry in &mut slate.items {
            if let Some(age) = catalog.age_seconds(entry.item) {
                entry.order += freshness_bonus(self.settings, age);
            }
        }
        slate.sort_by_order();
        Ok(())
    }
}

/// `popularity`: the most consumed items sink a little, so that a list is
/// not only what everyone already knows.
#[derive(Debug, Clone, Copy)]
pub struct Popularity {
    settings: Adjustments,
}

impl Popularity {
    /// With the dampening of `settings`.
    pub fn new(settings: Adjustments) -> Popularity {
        Popularity { settings }
    }
}

impl Reranker for Popularity {
    fn name(&self) -> &str {
        "popularity"
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        let popular = &context.models.popular;
        let max_count = popular.max_count();
        for entry in &mut slate.items {
            entry.order -= popularity_penalty(self.settings, popular.count(entry.item), max_count);
        }
        slate.sort_by_order();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Adjustments =
        Adjustments { freshness_boost: 0.2, half_life_seconds: 100.0, popularity_dampening: 0.1 };

    #[test]
    fn the_boost_halves_every_half_life() {
        assert!((freshness_bonus(SETTINGS, 0.0) - 0.2).abs() < 1e-6);
        assert!((freshness_bonus(SETTINGS, 100.0) - 0.1).abs() < 1e-6);
        assert!((freshness_bonus(SETTINGS, 200.0) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn the_most_popular_item_loses_the_whole_dampening() {
        assert!((popularity_penalty(SETTINGS, 100.0, 100.0) - 0.1).abs() < 1e-6);
        assert_eq!(popularity_penalty(SETTINGS, 0.0, 100.0), 0.0);
        let middling = popularity_penalty(SETTINGS, 10.0, 100.0);
        assert!(middling > 0.0 && middling < 0.1, "{middling}");
        assert!(popularity_penalty(SETTINGS, 5.0, 0.0).is_finite(), "no consumption at all");
    }
}
