//! `cascade serve`: builds the server (`cascade_app::serving`) and answers
//! the HTTP API (`cascade-serve`) on the given address.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use cascade_app::serving::build::ranking_arch;
use cascade_app::serving::server::{ServeOptions, build_server};
use cascade_serve::access::{AccessKeys, check_bind};
use cascade_serve::http::serve;

use crate::Common;

pub fn run(common: &Common, addr: SocketAddr, options: &ServeOptions) -> Result<()> {
    let workspace = Arc::new(common.open_workspace()?);
    // Before any model is built: a refused bind or ranker should not cost a training.
    check_bind(addr, &AccessKeys::from_config(&workspace.config.serve)).map_err(|e| anyhow!(e))?;
    ranking_arch(options.ranker)?;
    let state = build_server(workspace, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr()?;
        println!("cascade serve: listening on http://{bound}");
        serve(listener, state).await.context("serving HTTP")
    })
}
