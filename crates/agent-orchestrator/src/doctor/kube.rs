//! The checks of the Kubernetes runtime, made with the orchestrator's own credentials and
//! within its Role (`deploy/rbac.yaml`), which can neither read Secrets nor Namespaces:
//! - the cluster: the API server answers (`/version`);
//! - the namespace and the worker Secret (`doctor` only): a dry-run create of the Secret,
//!   which the API server answers 409 when it exists, 201 when it does not (nothing is
//!   stored) and 404 when the namespace is missing;
//! - RBAC: a SelfSubjectAccessReview per permission in
//!   [`ao_runtime_kube::rbac::REQUIRED_ACCESS`].

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::names::*;
use super::{Check, Purpose, fail, ok, warn};
use crate::config::ServeArgs;

/// How long one API call of a check may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn checks(args: &ServeArgs, purpose: Purpose) -> Vec<Check> {
    let ns = args.kube.namespace.as_str();
    let client = match ao_runtime_kube::client_from_config(&args.kube).await {
        Ok(c) => c,
        Err(e) => {
            return vec![fail(
                KUBERNETES_CLUSTER,
                format!(
                    "no Kubernetes client: {}",
                    ao_core::runtime::error_chain(&e)
                ),
                "run in the cluster, or point KUBECONFIG (or AO_KUBECONFIG) at a kubeconfig",
            )];
        }
    };
    // Any answer will do (a 404 from a server without `/version` too) but a refusal of the
    // credentials: only a server that does not answer at all is unreachable. Not a pod list: that would show in the audit
    // log as the runtime's own.
    match call(client.apiserver_version()).await {
        Err(Call::Api(code @ (401 | 403), msg)) => {
            return vec![fail(
                KUBERNETES_CLUSTER,
                format!("the Kubernetes API server refuses these credentials ({code}: {msg})"),
                "check the kubeconfig's user (token or certificate): it may be expired or for another cluster",
            )];
        }
        Ok(_) | Err(Call::Api(..)) => {}
        Err(e) => {
            return vec![fail(
                KUBERNETES_CLUSTER,
                format!("the Kubernetes API server does not answer: {e}"),
                "check the kubeconfig's server and credentials, and that the cluster is up",
            )];
        }
    }
    let mut out = vec![ok(
        KUBERNETES_CLUSTER,
        format!("the Kubernetes API server answers (namespace `{ns}`)"),
    )];
    if purpose == Purpose::Doctor {
        out.push(secret(client.clone(), ns, &args.kube.secret_name).await);
    }
    out.push(rbac(client, ns).await);
    out
}

/// The worker Secret exists (and so does its namespace), seen through a dry-run create.
async fn secret(client: kube::Client, ns: &str, name: &str) -> Check {
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let probe = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let create = format!(
        "kubectl -n {ns} create secret generic {name} --from-literal=ANTHROPIC_API_KEY=<key> \
         [--from-literal=GITHUB_TOKEN=<token>]"
    );
    match call(secrets.create(&dry, &probe)).await {
        Err(Call::Api(409, _)) => ok(
            KUBERNETES_SECRET,
            format!("the worker Secret `{name}` exists in namespace `{ns}`"),
        ),
        Ok(_) => fail(
            KUBERNETES_SECRET,
            format!(
                "the worker Secret `{name}` does not exist in namespace `{ns}`: pods fail as worker_config_error"
            ),
            create,
        ),
        Err(Call::Api(404, _)) => fail(
            KUBERNETES_SECRET,
            format!("the namespace `{ns}` does not exist"),
            format!("kubectl apply -k deploy/ (or kubectl create namespace {ns}), then {create}"),
        ),
        Err(e) => warn(
            KUBERNETES_SECRET,
            format!("cannot tell whether the worker Secret `{name}` exists: {e}"),
            "grant `create` on secrets in the worker namespace (deploy/rbac.yaml)",
        ),
    }
}

/// Every permission the runtime needs, asked of the API server.
async fn rbac(client: kube::Client, ns: &str) -> Check {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
    let mut denied = Vec::new();
    for a in ao_runtime_kube::rbac::REQUIRED_ACCESS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_owned()),
                    resource: Some(a.resource.to_owned()),
                    subresource: Some(a.subresource.to_owned()).filter(|s| !s.is_empty()),
                    verb: Some(a.verb.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = match call(reviews.create(&PostParams::default(), &review)).await {
            Ok(r) => r,
            Err(e) => {
                return warn(
                    KUBERNETES_RBAC,
                    format!(
                        "cannot ask the API server about permissions (SelfSubjectAccessReview): {e}"
                    ),
                    "check that the API server serves authorization.k8s.io/v1",
                );
            }
        };
        if !answer.status.is_some_and(|s| s.allowed) {
            let what = match a.subresource {
                "" => a.resource.to_owned(),
                sub => format!("{}/{sub}", a.resource),
            };
            denied.push(format!("{} {what}", a.verb));
        }
    }
    if denied.is_empty() {
        ok(
            KUBERNETES_RBAC,
            format!("every permission the runtime needs is granted in `{ns}`"),
        )
    } else {
        fail(
            KUBERNETES_RBAC,
            format!("not allowed in `{ns}`: {}", denied.join(", ")),
            "apply the Role and RoleBinding in deploy/rbac.yaml for the orchestrator's ServiceAccount",
        )
    }
}

/// How one API call went wrong.
#[derive(Debug)]
enum Call {
    Api(u16, String),
    Other(String),
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Api(code, msg) => write!(f, "{code}: {msg}"),
            Call::Other(msg) => f.write_str(msg),
        }
    }
}

async fn call<T>(fut: impl Future<Output = Result<T, kube::Error>>) -> Result<T, Call> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Err(_) => Err(Call::Other("no answer in time".into())),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(s))) => Err(Call::Api(s.code, s.message)),
        Ok(Err(e)) => Err(Call::Other(ao_core::runtime::error_chain(&e))),
    }
}
