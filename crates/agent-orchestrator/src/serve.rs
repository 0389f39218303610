//! `agent-orchestrator serve`: builds the store, the runtime, the scheduler and the HTTP
//! application from the configuration, and runs them until SIGTERM/SIGINT.
//!
//! On shutdown the HTTP server drains, the scheduler stops, and running workers are left
//! alone: the next start adopts them. If the server or the scheduler dies on its own, the
//! process says which and exits non-zero.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ao_api::{ApiTokens, AppState};
use ao_core::clock::SystemClock;
use ao_core::lease::{Elector, ElectorConfig};
use ao_core::metrics::TaskMetrics;
use ao_core::runtime::Runtime;
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::validation::Limits;
use ao_runtime_local::{DEFAULT_PASS_ENV, LocalConfig, LocalRuntime};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info};

use crate::config::{RuntimeKind, ServeArgs};

/// Entry point of the subcommand.
pub async fn main(args: ServeArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %format!("{e:#}"), "agent-orchestrator failed");
            eprintln!("agent-orchestrator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let tokens = load_tokens(&args)?;
    check_exposure(args.listen, &tokens)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested");
        signal.cancel();
    });
    let running = start(args, tokens, listener, shutdown).await?;
    running.await.context("server task panicked")?
}

/// Build everything and spawn it. The returned handle resolves when the server has stopped.
pub async fn start(
    args: ServeArgs,
    tokens: ApiTokens,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    args.check_runtime_flags()?;
    let addr = listener.local_addr()?;
    let opened = crate::store::open(&args).await?;
    let store = opened.tasks.clone();
    let mut registry = Registry::default();
    let metrics = TaskMetrics::register(&mut registry);
    let http_metrics = ao_api::telemetry::HttpMetrics::register(&mut registry);
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let worker_retention = args.worker_retention();
    let runtime: Arc<dyn Runtime> = match args.runtime {
        RuntimeKind::Local => Arc::new(LocalRuntime::new(
            local_config(&args)?,
            store.clone(),
            events_tx,
        )?),
        RuntimeKind::Kubernetes => {
            let client = ao_runtime_kube::client_from_config(&args.kube)
                .await
                .context("configuring the Kubernetes client")?;
            let cfg = args.kube.clone().into_config();
            Arc::new(ao_runtime_kube::KubeRuntime::new(
                client,
                cfg,
                store.clone(),
                events_tx,
            ))
        }
    };
    runtime
        .start()
        .await
        .with_context(|| format!("starting the {} runtime", runtime.name()))?;
    let callback = args
        .callback_url
        .clone()
        .unwrap_or_else(|| callback_url(addr));
    let readiness = Arc::new(crate::doctor::ServeReadiness::new(
        crate::doctor::builtin_agent(&args),
        crate::doctor::Env::from_process(),
    ));
    let sched_cfg = SchedulerConfig {
        max_concurrency: args.max_concurrency as usize,
        launch_concurrency: args.launch_concurrency as usize,
        launch_deadline: Duration::from_secs(args.launch_deadline),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        stop_grace: Duration::from_secs(args.stop_grace),
        worker_retention,
        require_result: args.require_result(),
        callback_url: Some(callback.clone()),
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::new(
        store.clone(),
        runtime.clone(),
        events_rx,
        sched_cfg,
        metrics.clone(),
    );
    let elector = opened.leases.map(|leases| {
        if args.runtime == RuntimeKind::Local {
            tracing::warn!("local workers on PostgreSQL: run one replica only; a local worker belongs to the replica that started it and no other can adopt it");
        }
        let ttl = Duration::from_secs(args.leader_lease_seconds);
        let cfg = ElectorConfig::with_ttl(replica_id(), ttl);
        info!(replica = %cfg.holder, lease_seconds = args.leader_lease_seconds, "replicas share the database: this one runs the scheduler while it holds the lease");
        Elector::new(leases, cfg, Arc::new(SystemClock))
    });
    if let Some(e) = &elector {
        scheduler = scheduler.with_leadership(e.subscribe());
    }
    let state = AppState {
        store,
        runtime,
        scheduler: scheduler.handle(),
        metrics,
        http_metrics,
        registry: Arc::new(registry),
        limits: Limits {
            default_timeout_seconds: args.default_timeout,
            max_timeout_seconds: args.max_timeout,
            ..Limits::default()
        },
        max_queued: args.max_queued as usize,
        tokens,
        body_limit: args.max_body_bytes,
        readiness: readiness.clone(),
    };
    let app = ao_api::router(state);
    info!(addr = %addr, runtime = ?args.runtime, max_concurrency = args.max_concurrency, "listening");
    let sched_stop = shutdown.clone();
    // The lease is given up only once the scheduler has stopped, so the next leader never
    // overlaps this one's shutdown grace.
    let elector_stop = CancellationToken::new();
    let elector = elector.map(|e| tokio::spawn(e.run(elector_stop.clone().cancelled_owned())));
    let sched = tokio::spawn(async move {
        scheduler.run(sched_stop.cancelled_owned()).await;
        elector_stop.cancel();
        if let Some(e) = elector {
            let _ = e.await;
        }
    });
    let http_stop = shutdown.clone();
    let http_limits = crate::http_server::HttpLimits::from(&args.http);
    let server = tokio::spawn(crate::http_server::serve(
        listener,
        app,
        http_limits,
        http_stop.cancelled_owned(),
    ));
    // The machine checks run beside the server (some ask other services), and log one
    // warning per problem.
    tokio::spawn(
        crate::doctor::startup(args.clone(), callback, readiness)
            .instrument(tracing::info_span!("startup_checks")),
    );
    Ok(tokio::spawn(wait_for_tasks(server, sched, shutdown)))
}

/// Wait for both long-lived tasks; if one ends before shutdown was asked for, say which.
async fn wait_for_tasks(
    mut server: JoinHandle<std::io::Result<()>>,
    mut sched: JoinHandle<()>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::select! {
        r = &mut server => {
            let early = !shutdown.is_cancelled();
            shutdown.cancel();
            let _ = sched.await;
            match r {
                Ok(Ok(())) if !early => Ok(()),
                Ok(Ok(())) => bail!("the HTTP server stopped unexpectedly"),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server panicked"),
            }
        }
        r = &mut sched => {
            let early = !shutdown.is_cancelled();
            shutdown.cancel();
            let _ = server.await;
            match r {
                Ok(()) if !early => Ok(()),
                Ok(()) => bail!("the scheduler stopped unexpectedly"),
                Err(e) => Err(e).context("the scheduler panicked"),
            }
        }
    }
}

/// This process's id among replicas: the host name (the pod's, on Kubernetes), the pid and a
/// random suffix, so a restarted process is a new holder.
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "replica".into());
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &suffix[suffix.len() - 8..]
    )
}

fn local_config(args: &ServeArgs) -> anyhow::Result<LocalConfig> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let worker_command = match &args.worker_command {
        // A relative path would be looked up from each task's workspace; anchor it here.
        Some(cmd) if cmd.components().count() > 1 && cmd.is_relative() => {
            let cmd = std::fs::canonicalize(cmd)
                .with_context(|| format!("worker command {}", cmd.display()))?;
            std::iter::once(cmd.to_string_lossy().into_owned())
                .chain(args.worker_args.iter().cloned())
                .collect()
        }
        Some(cmd) => std::iter::once(cmd.to_string_lossy().into_owned())
            .chain(args.worker_args.iter().cloned())
            .collect(),
        None => vec![exe.to_string_lossy().into_owned(), "worker".into()],
    };
    let mut pass_env: Vec<String> = DEFAULT_PASS_ENV.iter().map(|s| s.to_string()).collect();
    pass_env.extend(args.worker_pass_env.iter().cloned());
    let data_dir = absolute(&args.data_dir)?;
    let supervisor = args.supervisor_bin.clone().unwrap_or(exe);
    let run_as = worker_user(args, &data_dir, &supervisor, &worker_command)?;
    if run_as.is_none() && nix::unistd::geteuid().is_root() {
        tracing::warn!(
            "local workers run as root; set --worker-user to run them as an unprivileged user"
        );
    }
    Ok(LocalConfig {
        root: data_dir.join("workers"),
        worker_command,
        supervisor,
        pass_env,
        extra_env: Vec::new(),
        run_as,
    })
}

/// `--worker-user` as ids, once checked that the user can reach its task folders and run the
/// supervisor, the worker and (for the built-in worker, when `AO_CLAUDE_BIN` names it) Claude
/// Code. Shared with `doctor` through [`ao_runtime_local::check_worker_user`].
fn worker_user(
    args: &ServeArgs,
    data_dir: &Path,
    supervisor: &Path,
    worker_command: &[String],
) -> anyhow::Result<Option<(u32, u32)>> {
    let Some(spec) = args.worker_user.as_deref() else {
        return Ok(None);
    };
    // A bare command name is found on the worker's PATH, which is not checked here.
    let worker = Path::new(&worker_command[0]);
    // The Claude Code the built-in worker would run (AO_CLAUDE_BIN, PATH, the pinned
    // install), so that one the worker user can't reach is refused here, not by every task.
    let claude = args.worker_command.is_none().then(|| {
        let configured = std::env::var_os(ao_core::worker::settings::CLAUDE_BIN)
            .map_or_else(|| PathBuf::from("claude"), PathBuf::from);
        ao_worker::claude::first_candidate(&configured, std::env::var_os("PATH").as_deref())
    });
    let claude = claude.flatten();
    let programs: Vec<&Path> = std::iter::once(supervisor)
        .chain(worker.is_absolute().then_some(worker))
        .chain(claude.as_deref())
        .collect();
    let user = ao_runtime_local::check_worker_user(spec, data_dir, &programs).map_err(|e| {
        let fix = e.fix();
        // `{:#}` keeps the cause (a failed lookup, an unreadable folder).
        anyhow::anyhow!("--worker-user: {:#}; {fix}", anyhow::Error::new(e))
    })?;
    info!(user = %user.describe(), "local workers run as the worker user");
    Ok(Some(user.ids()))
}

fn absolute(p: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

fn callback_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// API tokens from the flag/variable and the file, together.
pub fn load_tokens(args: &ServeArgs) -> anyhow::Result<ApiTokens> {
    let mut tokens: Vec<String> = args.api_tokens.clone();
    if let Some(path) = &args.api_tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API tokens from {}", path.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        if tokens.is_empty() {
            bail!("the API tokens file {} holds no token", path.display());
        }
    }
    if let Some(short) = tokens.iter().find(|t| t.trim().len() < 16) {
        let _ = short;
        bail!("API tokens must be at least 16 characters long");
    }
    Ok(ApiTokens::new(tokens))
}

/// Without tokens, the API may only be reachable from this machine.
pub fn check_exposure(listen: SocketAddr, tokens: &ApiTokens) -> anyhow::Result<()> {
    if !tokens.is_enabled() && !listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {listen} without API tokens: set AO_API_TOKENS or \
             AO_API_TOKENS_FILE, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
