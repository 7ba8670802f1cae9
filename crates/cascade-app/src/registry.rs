//! The evaluation protocols of PROTOCOLS.md by the names users type, and
//! which models each evaluates. The models themselves are registered in
//! `cascade_models::registry`.

use std::fmt;
use std::str::FromStr;

pub use cascade_models::registry::{ModelKind, ModelTask};

/// The evaluation protocols of PROTOCOLS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    LooFull,
    Ctr,
    Ipinyou,
}

impl Protocol {
    /// Whether `model` is evaluated under this protocol.
    pub fn fits(self, model: ModelKind) -> bool {
        match self {
            Protocol::LooFull => model.task() == ModelTask::ItemRanking,
            Protocol::Ctr => model.task() == ModelTask::ClickPrediction,
            // The click log has no histories, and the smoothed rates have
            // no features to read.
            Protocol::Ipinyou => model.ctr_arch().is_some() && !model.reads_history(),
        }
    }

    /// The models this protocol evaluates, comma-separated, for errors.
    pub fn model_names(self) -> String {
        let names: Vec<&str> =
            ModelKind::ALL.iter().filter(|m| self.fits(**m)).map(|m| m.name()).collect();
        names.join(", ")
    }

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
        for model in ModelKind::ALL {
            assert_eq!(model.name().parse::<ModelKind>(), Ok(model));
            assert!(Protocol::ALL.iter().any(|p| p.fits(model)), "{model}");
        }
        for protocol in Protocol::ALL {
            assert_eq!(protocol.name().parse::<Protocol>(), Ok(protocol));
        }
        let unknown = "deep-fm".parse::<ModelKind>().unwrap_err();
        assert!(unknown.contains("`deep-fm`") && unknown.contains("deepfm"), "{unknown}");
        assert_eq!(Protocol::Ipinyou.model_names(), "lr, fm, wide-deep, deepfm, dcnv2");
        assert_eq!(
            Protocol::Ctr.model_names(),
            "bias-ctr, lr, fm, wide-deep, deepfm, dcnv2, din, dien"
        );
        assert_eq!(
            Protocol::LooFull.model_names(),
            "pop, itemknn, ease, bpr-mf, neumf, two-tower, sasrec"
        );
    }
}
