//! Ranking-model inputs from the user and item tables: every declared
//! feature becomes a field of hashed ids (`cascade_core::ids::feature_id`).
//! Categorical and id features give one id, multi-categorical ones a bag,
//! timestamps their year (e.g. a movie's release year), numbers their
//! rounded value; free text is left to text models. A missing value is an
//! empty bag, which pools to zeros. Request-context features (`[context]`)
//! come last: one id each, of the value at the example's moment.

use chrono::{DateTime, Datelike};

use cascade_core::config::{FeatureType, TableConfig};
use cascade_core::context::ContextDerivation;
use cascade_core::ids::feature_id;
use cascade_core::{Config, FeatureValue, IdIndex, Record};
use cascade_store::{EntityKind, Store, StoreError};

/// One entity's fields: a bag of ids per field.
type EntityFields = Vec<Vec<u64>>;

/// Per-user and per-item field ids, ready to concatenate per example.
#[derive(Debug, Clone)]
pub struct FieldEncoder {
    /// Field names, in the order examples carry them.
    pub field_names: Vec<String>,
    user_fields: Vec<EntityFields>,
    item_fields: Vec<EntityFields>,
    context: Vec<(String, ContextDerivation)>,
    /// How an item record the encoder was not built with is encoded.
    item_schema: TableSchema,
}

fn encode_value(name: &str, feature_type: FeatureType, value: &FeatureValue) -> Vec<u64> {
    match (feature_type, value) {
        (_, FeatureValue::Null) => Vec::new(),
        (FeatureType::MultiCategorical, FeatureValue::List(items)) => {
            items.iter().map(|item| feature_id(name, item)).collect()
        }
        (FeatureType::Timestamp, FeatureValue::Number(ms)) => {
            DateTime::from_timestamp_millis(*ms as i64)
                .map(|t| vec![feature_id(name, &t.year().to_string())])
                .unwrap_or_default()
        }
        (FeatureType::Numeric, FeatureValue::Number(n)) => {
            vec![feature_id(name, &format!("{}", n.round()))]
        }
        (_, other) => vec![feature_id(name, &other.display())],
    }
}

/// How one table's records become fields: the hashed id, then one field
/// per declared feature (free text left out).
#[derive(Debug, Clone, Default)]
struct TableSchema {
    id_field: String,
    /// (feature, the namespace its values are hashed in, its type).
    features: Vec<(String, String, FeatureType)>,
}

impl TableSchema {
    fn of(config: &Config, table: &TableConfig, id_field: &str) -> TableSchema {
        // A feature that shares ids with another is hashed in that one's
        // namespace; the id columns' namespaces are `user_id` / `item_id`.
        let namespace = |name: &str| -> String {
            match name {
                n if n == config.users.id => "user_id".to_owned(),
                n if n == config.items.id => "item_id".to_owned(),
                n => n.to_owned(),
            }
        };
        let features = table
            .features
            .iter()
            .filter(|(_, spec)| spec.feature_type != FeatureType::Text)
            .map(|(name, spec)| {
                (name.clone(), namespace(spec.id_namespace(name)), spec.feature_type)
            })
            .collect();
        TableSchema { id_field: id_field.to_owned(), features }
    }

    fn names(&self) -> Vec<String> {
        let mut names = vec![self.id_field.clone()];
        names.extend(self.features.iter().map(|(name, _, _)| name.clone()));
        names
    }

    fn fields(&self, id: &str, record: &Record) -> EntityFields {
        let mut fields = vec![vec![feature_id(&self.id_field, id)]];
        for (name, namespace, feature_type) in &self.features {
            let value = record.get(name).unwrap_or(&FeatureValue::Null);
            fields.push(encode_value(namespace, *feature_type, value));
        }
        fields
    }

    fn encode_all(
        &self,
        store: &Store,
        kind: EntityKind,
        index: &IdIndex,
    ) -> Result<Vec<EntityFields>, StoreError> {
        let mut rows = Vec::with_capacity(index.len());
        for id in index.ids() {
            rows.push(self.fields(id, &store.get(kind, id)?.unwrap_or_else(Record::new)));
        }
        Ok(rows)
    }
}

impl FieldEncoder {
    /// Encodes every indexed user and item once.
    pub fn new(
        store: &Store,
        config: &Config,
        users: &IdIndex,
        items: &IdIndex,
    ) -> Result<FieldEncoder, StoreError> {
        let user_schema = TableSchema::of(config, &config.users, "user_id");
        let item_schema = TableSchema::of(config, &config.items, "item_id");
        let user_fields = user_schema.encode_all(store, EntityKind::User, users)?;
        let item_fields = item_schema.encode_all(store, EntityKind::Item, items)?;
        let mut field_names = user_schema.names();
        field_names.extend(item_schema.names());
        let context: Vec<(String, ContextDerivation)> =
            config.context.iter().map(|(name, spec)| (name.clone(), spec.derive)).collect();
        field_names.extend(context.iter().map(|(name, _)| name.clone()));
        Ok(FieldEncoder { field_names, user_fields, item_fields, context, item_schema })
    }

    /// From fields encoded elsewhere (e.g. a synthetic catalog): every user
    /// row has the same number of fields, and so has every item row, whose
    /// first field is the hashed `item_id`; `field_names` ends with the
    /// context features' names.
    pub fn from_parts(
        field_names: Vec<String>,
        user_fields: Vec<EntityFields>,
        item_fields: Vec<EntityFields>,
        context: Vec<(String, ContextDerivation)>,
    ) -> FieldEncoder {
        let item_schema = TableSchema { id_field: "item_id".into(), features: Vec::new() };
        FieldEncoder { field_names, user_fields, item_fields, context, item_schema }
    }

    /// The fields of an item the encoder was not built with (e.g. one
    /// created through the API since), from its record, as its build would
    /// have encoded them. An encoder made `from_parts` knows no item
    /// features: the item's other fields are empty bags.
    pub fn item_fields_of(&self, id: &str, record: &Record) -> EntityFields {
        let mut fields = self.item_schema.fields(id, record);
        fields.resize(self.item_fields.first().map_or(fields.len(), Vec::len), Vec::new());
        fields
    }

    /// The position of the `item_id` field (the first item field).
    pub fn item_field(&self) -> usize {
        self.user_fields.first().map_or(1, Vec::len)
    }

    /// The hashed `item_id` of a dense item index: what a user's history holds,
    /// so history items share the item field's embedding rows.
    pub fn item_key(&self, item: u32) -> u64 {
        self.item_fields[item as usize][0][0]
    }

    /// Every user's fields, by dense index.
    pub fn user_fields(&self) -> &[Vec<Vec<u64>>] {
        &self.user_fields
    }

    /// Every item's fields, by dense index.
    pub fn item_fields(&self) -> &[Vec<Vec<u64>>] {
        &self.item_fields
    }

    /// The same fields without the context features, e.g. for a protocol
    /// that forbids reading the event time.
    pub fn without_context(mut self) -> FieldEncoder {
        let n_context = self.context.len();
        self.field_names.truncate(self.field_names.len() - n_context);
        self.context.clear();
        self
    }

    /// The declared context features, in field order.
    pub fn context_features(&self) -> &[(String, ContextDerivation)] {
        &self.context
    }

    /// Context fields from one value per declared feature, in
    /// `context_features` order.
    pub fn context_fields(&self, values: &[u32]) -> Vec<Vec<u64>> {
        self.context
            .iter()
            .zip(values)
            .map(|((name, _), value)| vec![feature_id(name, &value.to_string())])
            .collect()
    }

    /// The context fields of the moment `at_ms` (e.g. an event's time).
    pub fn context_at(&self, at_ms: i64) -> Vec<Vec<u64>> {
        let values: Vec<u32> =
            self.context.iter().map(|(_, derive)| derive.value_at(at_ms)).collect();
        self.context_fields(&values)
    }

    /// The fields of one (user, item) example, by dense indices, in the
    /// context given by `context_fields` or `context_at`.
    pub fn encode(&self, user: u32, item: u32, context: &[Vec<u64>]) -> Vec<Vec<u64>> {
        self.encode_fields(user, &self.item_fields[item as usize], context)
    }

    /// The fields of one example of a user by dense index and an item by
    /// its own fields (e.g. `item_fields_of`'s).
    pub fn encode_fields(
        &self,
        user: u32,
        item: &[Vec<u64>],
        context: &[Vec<u64>],
    ) -> Vec<Vec<u64>> {
        let user = &self.user_fields[user as usize];
        let mut fields = Vec::with_capacity(user.len() + item.len() + context.len());
        fields.extend(user.iter().cloned());
        fields.extend(item.iter().cloned());
        fields.extend(context.iter().cloned());
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_ids_by_type() {
        assert_eq!(
            encode_value(
                "genres",
                FeatureType::MultiCategorical,
                &FeatureValue::List(vec!["A".into(), "B".into()])
            )
            .len(),
            2
        );
        let year = encode_value(
            "release",
            FeatureType::Timestamp,
            &FeatureValue::Number(788_918_400_000.0),
        );
        assert_eq!(year, vec![feature_id("release", "1995")]);
        assert!(encode_value("age", FeatureType::Categorical, &FeatureValue::Null).is_empty());
        assert_eq!(
            encode_value("age", FeatureType::Categorical, &FeatureValue::Text("24".into())),
            vec![feature_id("age", "24")]
        );
    }

    /// A user feature that shares ids with `item_id` (their favourite movie)
    /// hashes to the same id as that movie's item_id field, so both read one
    /// embedding row.
    #[test]
    fn shared_ids_hash_in_the_other_features_namespace() {
        let text = cascade_core::Config::default_toml().replacen(
            "zip_code = { type = \"categorical\" }",
            "zip_code = { type = \"categorical\", share_ids_with = \"item_id\" }",
            1,
        );
        let config = Config::from_toml_str(&text, "shared.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let record: Record = [("zip_code".to_owned(), FeatureValue::Text("50".into()))].into();
        store.upsert(EntityKind::User, &[("1".into(), record)]).unwrap();
        let encoder =
            FieldEncoder::new(&store, &config, &IdIndex::new(["1"]), &IdIndex::new(["50"]))
                .unwrap();
        let zip = encoder.field_names.iter().position(|f| f == "zip_code").unwrap();
        let fields = encoder.encode(0, 0, &encoder.context_at(0));
        assert_eq!(fields[zip], vec![encoder.item_key(0)]);
        assert_eq!(fields.len(), encoder.field_names.len());
        assert_eq!(encoder.item_key(0), feature_id("item_id", "50"));
    }

    /// Context fields follow the moment: two times an hour apart differ in
    /// hour only, and the ids are those of the values.
    #[test]
    fn context_fields_are_the_values_at_the_moment() {
        let context = vec![
            ("day_of_week".to_owned(), ContextDerivation::DayOfWeek),
            ("hour_of_day".to_owned(), ContextDerivation::HourOfDay),
        ];
        let encoder = FieldEncoder::from_parts(
            vec!["user_id".into(), "item_id".into(), "day_of_week".into(), "hour_of_day".into()],
            vec![vec![vec![1]]],
            vec![vec![vec![2]]],
            context,
        );
        // 1998-03-04 05:06:07 UTC, a Wednesday.
        let at_ms = 888_987_967_000;
        let wednesday_5am = encoder.context_at(at_ms);
        assert_eq!(
            wednesday_5am,
            vec![vec![feature_id("day_of_week", "2")], vec![feature_id("hour_of_day", "5")]]
        );
        let an_hour_later = encoder.context_at(at_ms + 3_600_000);
        assert_eq!(an_hour_later[0], wednesday_5am[0]);
        assert_ne!(an_hour_later[1], wednesday_5am[1]);
        assert_eq!(encoder.encode(0, 0, &wednesday_5am).len(), 4);
    }

    /// An item the encoder was not built with encodes from its record
    /// exactly as the build encodes a stored one.
    #[test]
    fn a_new_items_record_encodes_as_the_build_would() {
        let config = Config::from_toml_str(Config::default_toml(), "cascade.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let record: Record = [
            ("genres".to_owned(), FeatureValue::List(vec!["Drama".into(), "War".into()])),
            ("release_date".to_owned(), FeatureValue::Number(788_918_400_000.0)),
            ("title".to_owned(), FeatureValue::Text("free text is not a field".into())),
        ]
        .into();
        store.upsert(EntityKind::Item, &[("7".into(), record.clone())]).unwrap();
        let built =
            FieldEncoder::new(&store, &config, &IdIndex::new(["1"]), &IdIndex::new(["7"])).unwrap();
        let without =
            FieldEncoder::new(&store, &config, &IdIndex::new(["1"]), &IdIndex::new(["8"])).unwrap();
        assert_eq!(without.item_fields_of("7", &record), built.item_fields()[0]);
        assert_eq!(built.item_fields()[0][1].len(), 2, "both genres");
    }
}
