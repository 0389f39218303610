//! Worker logging: `tracing` to stderr (stdout carries the event stream), JSON when
//! `AO_LOG_FORMAT=json` (or `structured`, as the orchestrator spells it), filtered by `RUST_LOG` (default `info`). Log lines never contain the
//! prompt, tokens or environment values.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber unless one is already installed (e.g. by the CLI).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if matches!(
        std::env::var(ao_core::worker::settings::LOG_FORMAT).as_deref(),
        Ok("json" | "structured")
    ) {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
