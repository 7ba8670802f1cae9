//! The models Cascade trains and the protocols it evaluates them under, by
//! the names users type. A model's name is also its checkpoint directory
//! (`<models>/<name>/`) and its `[training.<name>]` table, so this list is
//! the one place a new model is named.

use std::fmt;
use std::str::FromStr;

use cascade_models::ranking::CtrArch;

/// Every model, as `cascade train`, `eval`, `serve --ranker` and the
/// benchmarks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelName {
    Pop,
    Itemknn,
    Ease,
    BprMf,
    Neumf,
    TwoTower,
    Sasrec,
    BiasCtr,
    Lr,
    Fm,
    WideDeep,
    Deepfm,
    Dcnv2,
    Din,
    Dien,
}

impl ModelName {
    /// Every model, in the order help texts list them.
    pub const ALL: [ModelName; 15] = [
        ModelName::Pop,
        ModelName::Itemknn,
        ModelName::Ease,
        ModelName::BprMf,
        ModelName::Neumf,
        ModelName::TwoTower,
        ModelName::Sasrec,
        ModelName::BiasCtr,
        ModelName::Lr,
        ModelName::Fm,
        ModelName::WideDeep,
        ModelName::Deepfm,
        ModelName::Dcnv2,
        ModelName::Din,
        ModelName::Dien,
    ];

    /// The name users type, checkpoints are stored under and
    /// `[training.<name>]` configures.
    pub fn name(self) -> &'static str {
        match self {
            ModelName::Pop => "pop",
            ModelName::Itemknn => "itemknn",
            ModelName::Ease => "ease",
            ModelName::BprMf => "bpr-mf",
            ModelName::Neumf => "neumf",
            ModelName::TwoTower => "two-tower",
            ModelName::Sasrec => "sasrec",
            ModelName::BiasCtr => "bias-ctr",
            ModelName::Lr => "lr",
            ModelName::Fm => "fm",
            ModelName::WideDeep => "wide-deep",
            ModelName::Deepfm => "deepfm",
            ModelName::Dcnv2 => "dcnv2",
            ModelName::Din => "din",
            ModelName::Dien => "dien",
        }
    }

    /// One line for help texts: what the model is and the protocol it fits.
    pub fn about(self) -> &'static str {
        match self {
            ModelName::Pop => "Most popular items by train count (loo-full)",
            ModelName::Itemknn => "Item-item cosine neighbours (loo-full)",
            ModelName::Ease => "EASE closed-form linear model, λ tuned on validation (loo-full)",
            ModelName::BprMf => {
                "BPR matrix factorisation on sparse embedding tables, early-stopped on validation (loo-full)"
            }
            ModelName::Neumf => {
                "NeuMF: GMF and an MLP over user and item embeddings, early-stopped on validation (loo-full)"
            }
            ModelName::TwoTower => {
                "Two-tower: user features + recent items vs item features, in-batch softmax with logQ correction (loo-full)"
            }
            ModelName::Sasrec => {
                "SASRec: causal self-attention over the user's sequence, early-stopped on validation (loo-full)"
            }
            ModelName::BiasCtr => "Smoothed user and item positive rates (ctr)",
            ModelName::Lr => "Logistic regression on every user and item feature (ctr)",
            ModelName::Fm => {
                "Factorization machine over every user and item feature, on sparse tables (ctr)"
            }
            ModelName::WideDeep => {
                "Wide & Deep: first-order weights plus an MLP over field embeddings (ctr)"
            }
            ModelName::Deepfm => "DeepFM: FM plus an MLP over the same field embeddings (ctr)",
            ModelName::Dcnv2 => "DCNv2: full-rank cross layers, then an MLP (ctr)",
            ModelName::Din => {
                "DIN: attention over the user's last items, keyed by the target item (ctr)"
            }
            ModelName::Dien => {
                "DIEN: GRU interest extractor with auxiliary loss, AUGRU evolution (ctr)"
            }
        }
    }

    /// The ranking architecture this model is, if it is one.
    pub fn ctr_arch(self) -> Option<CtrArch> {
        Some(match self {
            ModelName::Lr => CtrArch::Lr,
            ModelName::Fm => CtrArch::Fm,
            ModelName::WideDeep => CtrArch::WideDeep,
            ModelName::Deepfm => CtrArch::DeepFm,
            ModelName::Dcnv2 => CtrArch::DcnV2,
            ModelName::Din => CtrArch::Din,
            ModelName::Dien => CtrArch::Dien,
            _ => return None,
        })
    }

    /// Whether the model is evaluated under `protocol`.
    pub fn applies_to(self, protocol: Protocol) -> bool {
        let arch = self.ctr_arch();
        let click_model = arch.is_some() || self == ModelName::BiasCtr;
        match protocol {
            Protocol::LooFull => !click_model,
            Protocol::Ctr => click_model,
            // DIN and DIEN read a history the click log does not have.
            Protocol::Ipinyou => arch.is_some_and(|a| !matches!(a, CtrArch::Din | CtrArch::Dien)),
        }
    }

    /// The models that apply to `protocol`, comma-separated, for errors.
    pub fn names_for(protocol: Protocol) -> String {
        let names: Vec<&str> =
            ModelName::ALL.iter().filter(|m| m.applies_to(protocol)).map(|m| m.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelName {
    type Err = String;

    fn from_str(name: &str) -> Result<ModelName, String> {
        ModelName::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ModelName::ALL.iter().map(|m| m.name()).collect();
            format!("no model named `{name}`; models: {}", names.join(", "))
        })
    }
}

/// The evaluation protocols of PROTOCOLS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    LooFull,
    Ctr,
    Ipinyou,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::LooFull, Protocol::Ctr, Protocol::Ipinyou];

    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::LooFull => "loo-full",
            Protocol::Ctr => "ctr",
            Protocol::Ipinyou => "ipinyou",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Protocol::LooFull => "ML100K-LOO-FULL: leave-one-out, full ranking over all items",
            Protocol::Ctr => {
                "ML100K-CTR: per-user 80/10/10 in time, label = rating >= 4; AUC, LogLoss, GAUC"
            }
            Protocol::Ipinyou => {
                "IPINYOU-SAMPLE: the iPinYou click log sample; AUC with a 95% bootstrap interval, LogLoss"
            }
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(name: &str) -> Result<Protocol, String> {
        Protocol::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
            format!("no protocol named `{name}`; protocols: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_each_model_fits_a_protocol() {
        for model in ModelName::ALL {
            assert_eq!(model.name().parse::<ModelName>(), Ok(model));
            assert!(Protocol::ALL.iter().any(|p| model.applies_to(*p)), "{model}");
        }
        for protocol in Protocol::ALL {
            assert_eq!(protocol.name().parse::<Protocol>(), Ok(protocol));
        }
        let unknown = "deep-fm".parse::<ModelName>().unwrap_err();
        assert!(unknown.contains("`deep-fm`") && unknown.contains("deepfm"), "{unknown}");
        assert_eq!(ModelName::names_for(Protocol::Ipinyou), "lr, fm, wide-deep, deepfm, dcnv2");
    }
}
