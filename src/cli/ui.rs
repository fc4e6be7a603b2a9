//! `zkherd ui`: serve the dashboard for a running cluster until Ctrl-C (`up --ui` serves the
//! same page from the supervisor).

use anyhow::Result;
use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Port on 127.0.0.1 (0 picks a free one). The dashboard never binds another address.
    #[arg(long, default_value_t = crate::ui::DEFAULT_PORT, value_name = "PORT")]
    port: u16,
}

pub async fn run(g: &Global, a: UiArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    if !crate::render::is_zkherd_dir(&spec.dir) {
        anyhow::bail!(
            "{} is not a cluster directory yet; start the cluster with `zkherd up -d` (or \
             `zkherd up --ui` to have the supervisor serve the dashboard)",
            spec.dir.display()
        );
    }
    let listener = crate::ui::bind(a.port)?;
    let url = crate::ui::url(listener.local_addr()?);
    println!(
        "dashboard for cluster {} on {url} (Ctrl-C to stop)",
        spec.name
    );
    let dir = spec.dir.clone();
    tokio::select! {
        _ = crate::ui::serve(listener, spec) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = std::fs::remove_file(dir.join(crate::ui::URL_FILE));
    Ok(0)
}
