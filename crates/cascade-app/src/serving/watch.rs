//! The checkpoint watcher of `cascade serve --models DIR`: when a training
//! job rewrites a served model's checkpoint, load the new models in the
//! background and swap them in; a failed load keeps the models serving.
//!
//! It polls manifest modification times (every 2 s) rather than using OS
//! notifications: one stat per model and poll, no platform-specific
//! dependency, and it works on network file systems where inotify does not.
//! `cascade train` writes the manifest last, and a change is acted on only
//! once the stamps have held still for one poll, so a half-written
//! checkpoint is not read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cascade_serve::http::ModelLoader;
use cascade_serve::recommender::Recommender;

use crate::serving::build::manifest_stamp;

const POLL: Duration = Duration::from_secs(2);

/// Watches the checkpoint directories `dirs` on a background thread; an
/// error if the thread cannot be started.
pub fn watch_checkpoints(
    dirs: Vec<PathBuf>,
    loader: Arc<ModelLoader>,
    recommender: Arc<Recommender>,
) -> std::io::Result<()> {
    let stamps = move || dirs.iter().map(|dir| manifest_stamp(dir)).collect::<Vec<u128>>();
    std::thread::Builder::new().name("cascade-checkpoint-watch".into()).spawn(move || {
        let mut served = stamps();
        loop {
            std::thread::sleep(POLL);
            let now = stamps();
            if now == served {
                continue;
            }
            // Let the writer finish: act once the stamps hold still.
            std::thread::sleep(POLL);
            if stamps() != now {
                continue;
            }
            served = now;
            match loader() {
                Ok(models) => {
                    eprintln!("cascade serve: new checkpoints, now serving {}", models.version);
                    recommender.swap(models);
                }
                Err(e) => eprintln!(
                    "cascade serve: reloading new checkpoints failed, old models kept: {e:#}"
                ),
            }
        }
    })?;
    Ok(())
}
