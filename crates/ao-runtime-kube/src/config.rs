//! Settings of the Kubernetes runtime: the command-line/env flags the binary flattens into
//! `agent-orchestrator serve` ([`KubeArgs`]), the plain settings the runtime uses
//! ([`KubeConfig`]), and how the API client is found ([`client_from_config`]).

use std::time::Duration;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::info;

use crate::error::{KubeError, RetryPolicy};

/// Kubernetes runtime flags, for `agent-orchestrator serve --runtime kubernetes`.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Namespace the worker pods (and their per-task token secrets) live in.
    #[arg(
        long = "k8s-namespace",
        env = "AO_K8S_NAMESPACE",
        default_value = "agents"
    )]
    pub namespace: String,
    /// Worker image; its command is `agent-orchestrator worker` (see --k8s-worker-command).
    #[arg(
        long = "worker-image",
        env = "AO_WORKER_IMAGE",
        default_value = "ghcr.io/agent-orchestrator/worker:latest"
    )]
    pub worker_image: String,
    /// imagePullPolicy of worker pods: Always, IfNotPresent or Never.
    #[arg(long = "worker-image-pull-policy", env = "AO_WORKER_IMAGE_PULL_POLICY", default_value = "IfNotPresent",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,
    /// The worker container's command, space-separated.
    #[arg(
        id = "k8s_worker_command",
        long = "k8s-worker-command",
        env = "AO_K8S_WORKER_COMMAND",
        default_value = "agent-orchestrator worker"
    )]
    pub worker_command: String,
    /// Service account the worker pods run as (its token is not mounted).
    #[arg(
        long = "k8s-service-account",
        env = "AO_K8S_SERVICE_ACCOUNT",
        default_value = "claude-worker"
    )]
    pub service_account: String,
    /// Secret holding ANTHROPIC_API_KEY (required) and GITHUB_TOKEN (optional) for workers.
    #[arg(
        long = "k8s-secret-name",
        env = "AO_K8S_SECRET_NAME",
        default_value = "claude-worker-secrets"
    )]
    pub secret_name: String,
    /// ANTHROPIC_BASE_URL given to workers (a proxy or gateway); unset means the default API.
    #[arg(
        long = "worker-anthropic-base-url",
        env = "AO_WORKER_ANTHROPIC_BASE_URL"
    )]
    pub anthropic_base_url: Option<String>,
    /// CPU request of a worker pod.
    #[arg(
        long = "k8s-cpu-request",
        env = "AO_K8S_CPU_REQUEST",
        default_value = "500m"
    )]
    pub cpu_request: String,
    /// CPU limit of a worker pod.
    #[arg(long = "k8s-cpu-limit", env = "AO_K8S_CPU_LIMIT", default_value = "2")]
    pub cpu_limit: String,
    /// Memory request of a worker pod.
    #[arg(
        long = "k8s-memory-request",
        env = "AO_K8S_MEMORY_REQUEST",
        default_value = "1Gi"
    )]
    pub memory_request: String,
    /// Memory limit of a worker pod (exceeding it ends the task as `oom_killed`).
    #[arg(
        long = "k8s-memory-limit",
        env = "AO_K8S_MEMORY_LIMIT",
        default_value = "4Gi"
    )]
    pub memory_limit: String,
    /// Ephemeral-storage request of a worker pod (workspace, home and /tmp are emptyDirs).
    #[arg(
        long = "k8s-ephemeral-storage-request",
        env = "AO_K8S_EPHEMERAL_STORAGE_REQUEST",
        default_value = "2Gi"
    )]
    pub ephemeral_storage_request: String,
    /// Ephemeral-storage limit of a worker pod.
    #[arg(
        long = "k8s-ephemeral-storage-limit",
        env = "AO_K8S_EPHEMERAL_STORAGE_LIMIT",
        default_value = "10Gi"
    )]
    pub ephemeral_storage_limit: String,
    /// UID (and GID, fsGroup) the worker runs as; must not be 0.
    #[arg(long = "k8s-run-as-user", env = "AO_K8S_RUN_AS_USER", default_value_t = 10001,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub run_as_user: i64,
    /// Seconds a finished worker pod is kept (for `kubectl logs`) before it is deleted.
    /// Defaults to --worker-retention; when given, it overrides it for pods.
    #[arg(long = "k8s-pod-ttl-seconds", env = "AO_K8S_POD_TTL_SECONDS")]
    pub pod_ttl_seconds: Option<u64>,
    /// Seconds a pod may fail to pull its image before the task fails as `image_pull_failed`.
    #[arg(
        long = "k8s-image-pull-timeout-seconds",
        env = "AO_K8S_IMAGE_PULL_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub image_pull_timeout_seconds: u64,
    /// Seconds a pod may stay unschedulable before the task fails as `unschedulable`.
    #[arg(
        long = "k8s-unschedulable-timeout-seconds",
        env = "AO_K8S_UNSCHEDULABLE_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub unschedulable_timeout_seconds: u64,
    /// Seconds a pod's container configuration may fail to build (`CreateContainerConfigError`,
    /// e.g. the --k8s-secret-name Secret is missing) before the task fails as
    /// `worker_config_error`. The kubelet retries meanwhile, so a Secret created within this
    /// time still lets the pod start.
    #[arg(
        long = "k8s-config-error-timeout-seconds",
        env = "AO_K8S_CONFIG_ERROR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub config_error_timeout_seconds: u64,
    /// A base64-encoded kubeconfig, used when not in a cluster and no kubeconfig file exists.
    #[arg(
        long = "kubeconfig-base64",
        env = "AO_KUBECONFIG",
        hide_env_values = true
    )]
    pub kubeconfig_base64: Option<String>,
}

/// Resource requests and limits of a worker pod, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
    pub ephemeral_storage_request: String,
    pub ephemeral_storage_limit: String,
}

/// What the runtime needs to know, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    pub namespace: String,
    pub image: String,
    pub image_pull_policy: String,
    pub command: Vec<String>,
    pub service_account: String,
    pub secret_name: String,
    pub anthropic_base_url: Option<String>,
    /// Plain worker settings (`AO_ALLOWED_TOOLS`, `AO_PERMISSION_MODE`, …) set in every worker
    /// pod: those of [`ao_core::worker::settings::SETTINGS`] in the orchestrator's environment.
    pub worker_settings: Vec<(String, String)>,
    pub resources: Resources,
    pub run_as_user: i64,
    pub image_pull_limit: Duration,
    pub unschedulable_limit: Duration,
    /// How long a `CreateContainerConfigError` may last before the task fails.
    pub config_error_limit: Duration,
    /// Retries of creates and deletes on 429/5xx/transport errors.
    pub retry: RetryPolicy,
    /// How long `adopt` waits for the pod cache to fill before asking the API directly.
    pub cache_ready_timeout: Duration,
    /// How long a finished pod's log may take to drain before the exit is reported anyway.
    pub log_drain_timeout: Duration,
    /// At most this many log lines per `append_logs` call.
    pub log_batch_lines: usize,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: "agents".into(),
            image: "ghcr.io/agent-orchestrator/agent-orchestrator:latest".into(),
            image_pull_policy: "IfNotPresent".into(),
            command: vec!["agent-orchestrator".into(), "worker".into()],
            service_account: "claude-worker".into(),
            secret_name: "claude-worker-secrets".into(),
            anthropic_base_url: None,
            worker_settings: Vec::new(),
            resources: Resources {
                cpu_request: "500m".into(),
                cpu_limit: "2".into(),
                memory_request: "1Gi".into(),
                memory_limit: "4Gi".into(),
                ephemeral_storage_request: "2Gi".into(),
                ephemeral_storage_limit: "10Gi".into(),
            },
            run_as_user: 10001,
            image_pull_limit: Duration::from_secs(300),
            unschedulable_limit: Duration::from_secs(600),
            config_error_limit: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            cache_ready_timeout: Duration::from_secs(30),
            log_drain_timeout: Duration::from_secs(30),
            log_batch_lines: 256,
        }
    }
}

impl KubeArgs {
    pub fn into_config(self) -> KubeConfig {
        KubeConfig {
            namespace: self.namespace,
            image: self.worker_image,
            image_pull_policy: self.image_pull_policy,
            command: self
                .worker_command
                .split_whitespace()
                .map(String::from)
                .collect(),
            service_account: self.service_account,
            secret_name: self.secret_name,
            anthropic_base_url: self.anthropic_base_url.filter(|u| !u.is_empty()),
            worker_settings: ao_core::worker::settings::copied_to_pods(|k| std::env::var(k).ok()),
            resources: Resources {
                cpu_request: self.cpu_request,
                cpu_limit: self.cpu_limit,
                memory_request: self.memory_request,
                memory_limit: self.memory_limit,
                ephemeral_storage_request: self.ephemeral_storage_request,
                ephemeral_storage_limit: self.ephemeral_storage_limit,
            },
            run_as_user: self.run_as_user,
            image_pull_limit: Duration::from_secs(self.image_pull_timeout_seconds),
            unschedulable_limit: Duration::from_secs(self.unschedulable_timeout_seconds),
            config_error_limit: Duration::from_secs(self.config_error_timeout_seconds),
            ..KubeConfig::default()
        }
    }
}

/// Where an API client configuration may come from, besides `AO_KUBECONFIG`. Read from the
/// process environment by [`ClientSources::from_env`]; tests pass their own so that the
/// machine's files (`~/.kube/config`) never change what they check.
#[derive(Debug, Clone, Default)]
pub struct ClientSources {
    /// Running in a cluster (`KUBERNETES_SERVICE_HOST` is set): use the service account.
    pub in_cluster: bool,
    /// Kubeconfig files that exist: those of `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig_files: Vec<std::path::PathBuf>,
}

impl ClientSources {
    pub fn from_env() -> Self {
        let kubeconfig_files = match std::env::var_os("KUBECONFIG") {
            Some(paths) => std::env::split_paths(&paths).collect(),
            None => std::env::var_os("HOME")
                .map(|h| vec![std::path::Path::new(&h).join(".kube/config")])
                .unwrap_or_default(),
        };
        ClientSources {
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
            kubeconfig_files: kubeconfig_files
                .into_iter()
                .filter(|p| p.is_file())
                .collect(),
        }
    }
}

/// Build the API client: 1. the in-cluster service account, 2. `KUBECONFIG` or
/// `~/.kube/config`, 3. `AO_KUBECONFIG` (a base64-encoded kubeconfig).
pub async fn client_from_config(args: &KubeArgs) -> Result<kube::Client, KubeError> {
    client_from_sources(args, &ClientSources::from_env()).await
}

/// [`client_from_config`] with the sources given.
pub async fn client_from_sources(
    args: &KubeArgs,
    sources: &ClientSources,
) -> Result<kube::Client, KubeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions::default();
    let config = if sources.in_cluster {
        info!("using the in-cluster Kubernetes service account");
        kube::Config::incluster().map_err(|e| KubeError::Config(e.into()))?
    } else if let Some((first, rest)) = sources.kubeconfig_files.split_first() {
        info!("using the kubeconfig file (KUBECONFIG or ~/.kube/config)");
        let mut kc = Kubeconfig::read_from(first).map_err(|e| KubeError::Config(e.into()))?;
        for path in rest {
            let next = Kubeconfig::read_from(path).map_err(|e| KubeError::Config(e.into()))?;
            kc = kc.merge(next).map_err(|e| KubeError::Config(e.into()))?;
        }
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| KubeError::Config(e.into()))?
    } else if let Some(b64) = args
        .kubeconfig_base64
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        info!("using the kubeconfig from AO_KUBECONFIG");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| KubeError::BadKubeconfig(e.into()))?;
        let text = String::from_utf8(raw).map_err(|e| KubeError::BadKubeconfig(e.into()))?;
        let kc = Kubeconfig::from_yaml(&text).map_err(|e| KubeError::BadKubeconfig(e.into()))?;
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| KubeError::Config(e.into()))?
    } else {
        return Err(KubeError::NoConfig);
    };
    build_client(config)
}

/// The client for `config`, with kube's default retry replaced by the bounded
/// [`crate::client_retry`] (see there why).
fn build_client(mut config: kube::Config) -> Result<kube::Client, KubeError> {
    config.default_retry = false;
    let policy = crate::client_retry::ClientRetry::default();
    let builder = kube::client::ClientBuilder::try_from(config).map_err(KubeError::Api)?;
    // The retry layer clones the service per request: the boxed stack goes behind a buffer.
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(policy))
        .build())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ao_kube_sim::{Sim, SimConfig};
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::client_retry::CLIENT_RETRIES;

    /// A throttled request is retried by the client [`CLIENT_RETRIES`] times, each after the
    /// server's `Retry-After` (the simulator sends 1 s), then fails with the 429: kube's
    /// default (15 retries) would hold it for minutes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_throttled_request_is_retried_after_retry_after_a_bounded_number_of_times() {
        let sim = Sim::new(SimConfig::default());
        sim.faults().fail_randomly(1.0, 429, 7);
        let addr = sim.serve_tcp().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        ao_kube_sim::write_kubeconfig(&kubeconfig, addr, "agents").unwrap();
        let args = <crate::KubeArgs as clap::FromArgMatches>::from_arg_matches(
            &<crate::KubeArgs as clap::Args>::augment_args(clap::Command::new("t"))
                .get_matches_from(["t"]),
        )
        .unwrap();
        let sources = ClientSources {
            in_cluster: false,
            kubeconfig_files: vec![kubeconfig],
        };
        let client = client_from_sources(&args, &sources).await.unwrap();
        let before = sim.requests().len();
        let start = Instant::now();
        let pods: kube::Api<Pod> = kube::Api::namespaced(client, "agents");
        let r = tokio::time::timeout(Duration::from_secs(8), pods.get_opt("p")).await;
        let took = start.elapsed();
        let r = r.expect("a throttled request must give up within 8 s");
        assert!(
            matches!(r, Err(kube::Error::Api(ref s)) if s.code == 429),
            "{r:?}"
        );
        assert_eq!(
            sim.requests().len() - before,
            1 + CLIENT_RETRIES as usize,
            "the first try and the client's retries"
        );
        assert!(
            took >= Duration::from_secs(u64::from(CLIENT_RETRIES)),
            "each retry waits for Retry-After (1 s): {took:?}"
        );
    }
}
