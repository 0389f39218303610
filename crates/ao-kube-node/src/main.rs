//! `ao-kube-node`: runs one process node from flags, for manual use and benchmarks, until
//! SIGINT or SIGTERM (then it kills its processes and deletes its Node).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use ao_kube_node::{Mode, NodeConfig};
use clap::Parser;

/// A kubelet stand-in for tests: binds the pods of its namespaces and runs them locally.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Kubeconfig of the identity the node uses.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long, default_value = "ao-kube-node")]
    name: String,
    /// A namespace whose pods this node binds and runs (repeatable).
    #[arg(long = "namespace", required = true)]
    namespaces: Vec<String>,
    /// An image: `REF=DIR` (repeatable). PATH starts with DIR/bin.
    #[arg(long = "image", value_parser = parse_image)]
    images: Vec<(String, PathBuf)>,
    /// Where pod volumes and container logs are kept.
    #[arg(long, default_value = "/tmp/ao-kube-node")]
    work_dir: PathBuf,
    /// PEM serving certificate of the log endpoint (for 127.0.0.1).
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key of the log endpoint.
    #[arg(long)]
    tls_key: PathBuf,
    /// Run pods without processes (Running until deleted), for scale.
    #[arg(long)]
    noop: bool,
    /// Advertise the log port but do not listen on it.
    #[arg(long)]
    no_serve_logs: bool,
}

fn parse_image(s: &str) -> Result<(String, PathBuf), String> {
    let (image, dir) = s.split_once('=').ok_or("expected REF=DIR")?;
    Ok((image.to_owned(), PathBuf::from(dir)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let Args {
        kubeconfig,
        name,
        namespaces,
        images,
        work_dir,
        tls_cert,
        tls_key,
        noop,
        no_serve_logs,
    } = Args::parse();
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the client")?;
    let cfg = NodeConfig {
        name,
        client,
        namespaces,
        mode: if noop { Mode::Noop } else { Mode::Process },
        images: images.into_iter().collect::<BTreeMap<_, _>>(),
        work_dir,
        tls_cert,
        tls_key,
        serve_logs: !no_serve_logs,
    };
    let node = ao_kube_node::start(cfg)
        .await
        .context("starting the node")?;
    eprintln!("node {} up, log port {}", node.name(), node.log_port());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    node.shutdown().await;
    Ok(())
}
