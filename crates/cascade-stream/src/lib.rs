//! The stream processor: real-time features from the event log.
//!
//! It tails the log from a checkpointed offset (`processor`) and maintains
//! (`features`), in the default feature store (`in_process`): each user's last N interactions, item impression and
//! interaction counters over sliding windows of event time (`window`) with
//! Bayesian-smoothed click-through rates, user–category affinities with a
//! half-life, and trending items. It joins interactions to the impressions
//! that caused them (`join`), producing labelled samples for online
//! learning, written exactly once to a JSON-lines log (`samples`). `live` runs it
//! on a thread beside the server.
//!
//! For scale-out, `bus_worker` is the same idea on Redis: workers in a
//! consumer group read the event stream and keep a shared online store.
#![warn(missing_docs)]

mod bus_worker;
mod features;
mod in_process;
mod join;
mod live;
mod processor;
mod samples;
mod window;

pub use bus_worker::{BusWorker, WorkerStats};
pub use features::{FeatureState, StreamSettings, WindowStats};
pub use in_process::{InProcessFeatures, REMEMBERED_UPDATE_IDS};
pub use join::{ImpressionJoin, LabelledSample};
pub use live::{LivePace, LiveStream};
pub use processor::{EventSource, Step, StreamError, StreamProcessor, write_checkpoint};
pub use samples::{SampleLog, read_samples};
pub use window::{Tally, WindowedTally};
