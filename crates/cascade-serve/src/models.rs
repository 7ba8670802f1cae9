//! The models a server answers with, built together on one catalog and
//! swapped as one; and how an item created through the API joins them
//! before the next build (`Models::add_item`).

use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};

use cascade_core::Record;
use cascade_core::timestamp::now_ms;

use crate::catalog::{Catalog, ItemFactsReader};
use crate::rank::{CtrRanker, Ranker};
use crate::recall::{
    AnnRecall, CandidateSource, CategoryPopularRecall, FreshRecall, ItemCfRecall, PopularRecall,
};

/// Everything built from the data, swapped as one: the catalog (its dense
/// indices) and the models that use those indices cannot change apart.
pub struct Models {
    /// Shown in responses, e.g. the build time or checkpoint name.
    pub version: String,
    /// Ids, histories and item facts the models were built on.
    pub catalog: Catalog,
    /// `recall/ann` over the retrieval model's embeddings.
    pub ann: AnnRecall,
    /// `recall/item_cf`.
    pub item_cf: ItemCfRecall,
    /// `recall/category_popular`.
    pub category_popular: CategoryPopularRecall,
    /// `recall/popular`; also the counts popularity dampening reads.
    pub popular: PopularRecall,
    /// `recall/fresh`.
    pub fresh: FreshRecall,
    /// The ranking model; without one, candidates keep their recall order.
    ranker: Option<Arc<dyn Ranker>>,
    /// The same ranker where it is a CTR model, which online learning
    /// updates; `None` for a ranker of another kind.
    online_ranker: Option<Arc<CtrRanker>>,
    /// Adds one item at a time: the catalog, the ranker and the index
    /// must hand out the same next index.
    adding: Mutex<()>,
    /// Cold-start vectors' ingredients, from the first added item on.
    category_sums: OnceLock<CategorySums>,
}

impl Models {
    /// Trained parts plus the channels that only count: popularity overall
    /// and per category (from `counts`, consumptions by dense item index)
    /// and freshness (from the facts' publication times).
    pub fn new(
        version: String,
        catalog: Catalog,
        ann: AnnRecall,
        item_cf: ItemCfRecall,
        counts: &[f32],
        ranker: Option<CtrRanker>,
    ) -> Models {
        let online_ranker = ranker.map(Arc::new);
        let facts = &catalog.facts;
        Models {
            version,
            category_popular: CategoryPopularRecall::new(&facts.item_categories, counts),
            popular: PopularRecall::new(counts),
            fresh: FreshRecall::new(&facts.published, catalog.added.clone()),
            catalog,
            ann,
            item_cf,
            ranker: online_ranker.clone().map(|r| r as Arc<dyn Ranker>),
            online_ranker,
            adding: Mutex::new(()),
            category_sums: OnceLock::new(),
        }
    }
}

impl Models {
    /// The ranking model, if any.
    pub fn ranker(&self) -> Option<&dyn Ranker> {
        self.ranker.as_deref()
    }

    /// The CTR ranker online learning updates, if the ranker is one.
    pub fn online_ranker(&self) -> Option<&CtrRanker> {
        self.online_ranker.as_deref()
    }

    /// Ranks with `ranker` instead (a ranker of your own; online learning
    /// then has nothing to update), or by recall order with `None`.
    pub fn set_ranker(&mut self, ranker: Option<Box<dyn Ranker>>) {
        self.ranker = ranker.map(Arc::from);
        self.online_ranker = None;
    }

    /// The built-in recall channel `[recommend] channels` calls `name`;
    /// `trending` is the recommender's, since it reads the live stream.
    pub fn channel(&self, name: &str) -> Option<&dyn CandidateSource> {
        let channel: &dyn CandidateSource = match name {
            "ann" => &self.ann,
            "item_cf" => &self.item_cf,
            "category_popular" => &self.category_popular,
            "popular" => &self.popular,
            "fresh" => &self.fresh,
            _ => return None,
        };
        Some(channel)
    }
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models").field("version", &self.version).finish()
    }
}

impl Models {
    /// Makes an item the build did not have recommendable at once: the
    /// catalog numbers it after its items, the ranker encodes its record,
    /// and the ANN index takes it with a cold-start vector (its
    /// categories' centroid, at their items' mean length). Returns its
    /// index and whether it is new; `None` for an item the build has. An item added before gets
    /// its categories and ranker fields refreshed and keeps its vector,
    /// which online learning may have moved.
    pub fn add_item(
        &self,
        id: &str,
        record: &Record,
        reader: &ItemFactsReader,
    ) -> Result<Option<(u32, bool)>, String> {
        let _one_at_a_time = self.adding.lock();
        let published = reader.published(record).unwrap_or_else(|| now_ms() / 1000);
        let categories = self.catalog.category_indices(&reader.categories(record));
        let of_categories = categories.clone();
        // Requests find the item through the catalog: the ranker and the
        // index learn it first, under the catalog's lock. The vector is
        // made only for a new item: every build offers every stored record.
        self.catalog.add_item(id, categories, published, |item, new| {
            if let Some(ranker) = &self.ranker {
                ranker.add_item(item, id, record);
            }
            match new {
                true => self.ann.index().set_added(item, &self.cold_start_vector(&of_categories)),
                false => Ok(()),
            }
        })
    }

    /// The mean of the built items' vectors in `categories` (an item in
    /// two of them counts twice; all items when it has none, or they have
    /// no items), scaled to their mean length: averaging shortens vectors,
    /// and a short one would never reach an inner-product top list.
    fn cold_start_vector(&self, categories: &[u32]) -> Vec<f32> {
        let sums = self.category_sums.get_or_init(|| CategorySums::of(self));
        let mut total = sums.categories.iter().enumerate().fold(
            VectorSum::new(sums.all.vector.len()),
            |mut total, (category, sum)| {
                if categories.contains(&(category as u32)) {
                    total.add(sum);
                }
                total
            },
        );
        if total.count == 0 {
            total = sums.all.clone();
        }
        total.at_mean_length()
    }
}

/// A sum of vectors, their lengths, and how many.
#[derive(Debug, Clone)]
struct VectorSum {
    vector: Vec<f32>,
    length: f32,
    count: usize,
}

impl VectorSum {
    fn new(dim: usize) -> VectorSum {
        VectorSum { vector: vec![0.0; dim], length: 0.0, count: 0 }
    }

    fn push(&mut self, vector: &[f32]) {
        self.vector.iter_mut().zip(vector).for_each(|(s, v)| *s += v);
        self.length += vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        self.count += 1;
    }

    fn add(&mut self, other: &VectorSum) {
        self.vector.iter_mut().zip(&other.vector).for_each(|(s, v)| *s += v);
        self.length += other.length;
        self.count += other.count;
    }

    /// The summed direction at the vectors' mean length.
    fn at_mean_length(mut self) -> Vec<f32> {
        let norm = self.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            let scale = (self.length / self.count.max(1) as f32) / norm;
            self.vector.iter_mut().for_each(|v| *v *= scale);
        }
        self.vector
    }
}

/// The built items' vectors summed per category and overall: computed once
/// per build, at its first added item, so adding is O(categories × D)
/// rather than a scan of the catalog.
#[derive(Debug)]
struct CategorySums {
    categories: Vec<VectorSum>,
    all: VectorSum,
}

impl CategorySums {
    fn of(models: &Models) -> CategorySums {
        let index = models.ann.index();
        let facts = &models.catalog.facts;
        let dim = index.dim();
        let mut categories = vec![VectorSum::new(dim); facts.categories.len()];
        let mut all = VectorSum::new(dim);
        for item in 0..index.catalog_items() {
            let vector = index.item(item);
            all.push(&vector);
            for &category in facts.item_categories.get(item as usize).into_iter().flatten() {
                categories[category as usize].push(&vector);
            }
        }
        CategorySums { categories, all }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cascade_core::FeatureValue;

    use crate::catalog::ItemFactsReader;
    use crate::recall::AnnBackend;
    use crate::recommender::{Filters, PipelineSettings, RecommendRequest};
    use crate::test_fixture::small_recommender;

    fn ask(r: &crate::recommender::Recommender, user: &str, filters: Filters) -> Vec<String> {
        let request = RecommendRequest {
            user_id: user.into(),
            context: BTreeMap::new(),
            n: Some(25),
            exclude: Vec::new(),
            pin: Vec::new(),
            filters,
        };
        r.recommend(&request).unwrap().items.into_iter().map(|i| i.item_id).collect()
    }

    /// An item created after the build is recommended, found similar,
    /// filtered by its category and hidden like any other, with a vector
    /// in its category's direction.
    #[test]
    fn an_added_item_serves_like_a_built_one() {
        let reader = ItemFactsReader {
            category_feature: Some("genres".into()),
            time_feature: Some("release".into()),
        };
        let settings = PipelineSettings { exposure_cap: None, ..PipelineSettings::default() };
        let r = small_recommender(settings, AnnBackend::Usearch).with_item_facts(reader);
        let record = cascade_core::Record::from([
            ("genres".to_owned(), FeatureValue::List(vec!["c1".into()])),
            // Newer than every built item: `recall/fresh` leads with it.
            ("release".to_owned(), FeatureValue::Number(1e9)),
        ]);
        r.add_item("new", &record);
        let models = r.models();
        let item = models.catalog.item_index("new").expect("numbered after the catalog");
        assert_eq!(item, 30);
        assert!(ask(&r, "a", Filters::default()).contains(&"new".to_owned()));
        let only_c1 = Filters { categories: vec!["c1".into()], ..Filters::default() };
        assert!(ask(&r, "b", only_c1).contains(&"new".to_owned()));
        let not_c1 = Filters { exclude_categories: vec!["c1".into()], ..Filters::default() };
        assert!(!ask(&r, "b", not_c1).contains(&"new".to_owned()));

        // Its vector points where category c1's items do.
        let index = models.ann.index();
        let vector = index.item(item).into_owned();
        let c1: Vec<u32> = (0..30).filter(|&i| models.catalog.facts.in_any(i, &[1])).collect();
        let mean = |items: &[u32]| -> f32 {
            items.iter().map(|&i| cascade_nn::matrix::dot(&vector, &index.item(i))).sum::<f32>()
                / items.len() as f32
        };
        let others: Vec<u32> = (0..30).filter(|i| !c1.contains(i)).collect();
        assert!(mean(&c1) > mean(&others), "closer to its category than to the rest");
        let similar = r.similar("new", 5).unwrap();
        assert_eq!(similar.len(), 5);
        assert!(index.search(&vector, 1)[0].0 == item, "the index has it");

        r.add_item("new", &record);
        assert_eq!(models.catalog.added.len(), 1, "a second PUT adds nothing");
        r.add_item("0", &record);
        assert_eq!(models.catalog.added.len(), 1, "nor does a built item's");
        r.hide("new").unwrap();
        assert!(!ask(&r, "a", Filters::default()).contains(&"new".to_owned()));
    }
}
