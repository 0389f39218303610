//! Clients and identities on the test environment: the admin client, clients from any
//! kubeconfig, fresh namespaces under Pod Security "restricted", and ServiceAccount token
//! kubeconfigs (TokenRequest), so tests act as the identities the product really uses.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rand::Rng;

use crate::TestEnv;

/// How long a new namespace may take to get its `default` ServiceAccount.
const SERVICE_ACCOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// A client from a kubeconfig file. Panics with the file and the cause when it can't be built.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| {
        panic!(
            "ao-kube-testenv: cannot read kubeconfig {}: {e}",
            kubeconfig.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ao-kube-testenv: kubeconfig {} is not usable: {e}",
                kubeconfig.display()
            )
        });
    Client::try_from(config).unwrap_or_else(|e| {
        panic!(
            "ao-kube-testenv: no client from kubeconfig {}: {e}",
            kubeconfig.display()
        )
    })
}

/// `<prefix>-<6 random lowercase letters or digits>`.
pub(crate) fn random_name(prefix: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    format!("{prefix}-{suffix}")
}

impl TestEnv {
    /// A client authenticated as `admin` (group `system:masters`).
    pub async fn admin(&self) -> Client {
        client_from(&self.admin_kubeconfig).await
    }

    /// A client from any kubeconfig (for example one of [`TestEnv::token_kubeconfig`]).
    pub async fn client(&self, kubeconfig: &Path) -> Client {
        client_from(kubeconfig).await
    }

    /// `kubectl --kubeconfig <kubeconfig>` (kubectl from PATH), for tests of what a user runs.
    pub fn kubectl(&self, kubeconfig: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(kubeconfig);
        cmd
    }

    /// A new namespace `<prefix>-<random6>` labelled
    /// `pod-security.kubernetes.io/enforce=restricted` (`enforce-version=latest`) and
    /// `ao-kube-testenv=true`; returns once kube-controller-manager has made its `default`
    /// ServiceAccount (pods that name none need it).
    pub async fn namespace(&self, prefix: &str) -> String {
        assert!(
            !prefix.is_empty()
                && prefix.len() <= 56
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !prefix.starts_with('-'),
            "ao-kube-testenv: namespace prefix {prefix:?} must be 1-56 lowercase letters, digits or dashes"
        );
        let client = self.admin().await;
        let name = random_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [
                        ("pod-security.kubernetes.io/enforce", "restricted"),
                        ("pod-security.kubernetes.io/enforce-version", "latest"),
                        ("ao-kube-testenv", "true"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("ao-kube-testenv: creating namespace {name} failed: {e}"));
        // Polled, not watched: on a busy API server a watch can end in 410 Gone.
        let sas = Api::<ServiceAccount>::namespaced(client, &name);
        let deadline = tokio::time::Instant::now() + SERVICE_ACCOUNT_TIMEOUT;
        loop {
            match sas.get_opt("default").await {
                Ok(Some(_)) => return name,
                Ok(None) => {}
                Err(e) => {
                    panic!("ao-kube-testenv: reading ServiceAccount {name}/default failed: {e}")
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ao-kube-testenv: namespace {name} has no `default` ServiceAccount after {:?}: \
                 is kube-controller-manager running? (see {}/kube-controller-manager.log)",
                SERVICE_ACCOUNT_TIMEOUT,
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A TokenRequest token (valid 1 h) of the existing ServiceAccount `ns/sa`, written to
    /// `path` (mode 0600) as a kubeconfig for this environment; returns `path`.
    pub async fn token_kubeconfig(&self, ns: &str, sa: &str, path: &Path) -> PathBuf {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = Api::<ServiceAccount>::namespaced(self.admin().await, ns)
            .create_token_request(sa, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("ao-kube-testenv: TokenRequest for {ns}/{sa} failed: {e}"))
            .status
            .unwrap_or_else(|| panic!("ao-kube-testenv: TokenRequest for {ns}/{sa} has no status"))
            .token;
        let ca = std::fs::read(self.pki.join("ca.crt")).unwrap_or_else(|e| {
            panic!(
                "ao-kube-testenv: cannot read {}/ca.crt: {e}",
                self.pki.display()
            )
        });
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let user = format!("{ns}-{sa}");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: ao-kube-testenv\n  cluster:\n    \
             server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  \
             user:\n    token: {token}\ncontexts:\n- name: {user}\n  context:\n    cluster: \
             ao-kube-testenv\n    user: {user}\n    namespace: {ns}\ncurrent-context: {user}\n",
            server = self.server,
        );
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())
        };
        write().unwrap_or_else(|e| {
            panic!(
                "ao-kube-testenv: cannot write kubeconfig {}: {e}",
                path.display()
            )
        });
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_names_are_dns_labels_with_the_prefix() {
        let a = super::random_name("ns");
        let b = super::random_name("ns");
        assert_ne!(a, b);
        assert_eq!(a.len(), 9);
        assert!(a.starts_with("ns-"));
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
