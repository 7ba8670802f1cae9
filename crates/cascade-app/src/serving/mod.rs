//! Serving assembled from a workspace: the models, the server's state and
//! the background work around it.

pub mod build;
pub mod redis;
pub mod server;
pub mod store_histories;
pub mod watch;
