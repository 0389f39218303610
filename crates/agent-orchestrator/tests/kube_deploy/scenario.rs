//! One RBAC scenario in its own pair of namespaces: the objects of `deploy/` the orchestrator
//! needs (its ServiceAccount, the worker ServiceAccount, the Role of `deploy/rbac.yaml`, maybe
//! minus one verb, and its RoleBinding, namespaces replaced), a process node, and the real
//! orchestrator binary with a TokenRequest kubeconfig of its ServiceAccount. It runs `doctor`
//! with the same options and credentials, then serve: a task to
//! success (and reads its log), starts a long one, restarts the orchestrator (kill -9), cancels
//! the adopted task and waits for the pods and token Secrets to be collected; then it reads
//! what the ServiceAccount asked for, and what was refused, from the audit log.

use std::collections::BTreeSet;
use std::time::Duration;

use ao_kube_testenv::NodeOptions;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::orchestrator::{Orchestrator, Setup, TERMINAL, free_port, worker_script};
use super::*;

/// A (resource, verb) grant, `resource` as RBAC writes it (`pods/log`).
pub type Grant = (String, String);

/// How long one step of the scenario may take with the whole Role (generous: a shared,
/// loaded API server may deliver watch events late), and with a verb missing (the steps after
/// the refusal are expected to go wrong; the 403 is the evidence).
pub const STEP: Duration = Duration::from_secs(90);
pub const STEP_WITHOUT_A_VERB: Duration = Duration::from_secs(30);

/// Every (resource, verb) the Role of `deploy/rbac.yaml` grants, in order.
pub fn role_grants() -> Vec<Grant> {
    let role = manifest("rbac.yaml", "Role", None);
    let mut out = Vec::new();
    for rule in role["rules"].as_array().expect("the Role has rules") {
        for r in rule["resources"].as_array().unwrap() {
            for v in rule["verbs"].as_array().unwrap() {
                out.push((r.as_str().unwrap().into(), v.as_str().unwrap().into()));
            }
        }
    }
    out
}

/// The Role of `deploy/rbac.yaml` in `ns`, without `removed` (one rule per resource).
fn role(ns: &str, removed: Option<&Grant>) -> Role {
    let mut role = manifest("rbac.yaml", "Role", None);
    let mut rules = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for r in rule["resources"].as_array().unwrap() {
            let verbs: Vec<&Value> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| removed.is_none_or(|(rr, rv)| !(r == rr.as_str() && *v == rv.as_str())))
                .collect();
            if !verbs.is_empty() {
                let mut one = rule.clone();
                one["resources"] = json!([r]);
                one["verbs"] = json!(verbs);
                rules.push(one);
            }
        }
    }
    role["rules"] = json!(rules);
    role["metadata"]["namespace"] = json!(ns);
    typed(role)
}

/// A task's status and reason, or what happened instead.
fn brief(t: Option<Value>) -> String {
    match t {
        Some(t) => format!("{} ({})", t["status"], t["reason"]),
        None => "not there in time".into(),
    }
}

fn typed<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a typed object")
}

/// What one scenario observed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The failures seen (empty: every step ended right).
    pub failures: Vec<String>,
    /// (resource, verb) the orchestrator's ServiceAccount asked for, and those refused (403).
    pub used: BTreeSet<Grant>,
    pub forbidden: BTreeSet<Grant>,
    /// `doctor`'s exit code and checklist, run as the ServiceAccount before the orchestrator.
    pub doctor: (Option<i32>, String),
    pub secs: f64,
}

async fn create<T>(client: &Client, ns: &str, obj: T)
where
    T: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    T::DynamicType: Default,
{
    Api::<T>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating {obj:?} in {ns}: {e}"));
}

/// Runs the scenario with the Role minus `removed` (none: the Role as it is), each step
/// bounded by `step`.
pub async fn run(removed: Option<Grant>, step: Duration) -> Outcome {
    let started = std::time::Instant::now();
    let e = env();
    let audit_from = e.audit_offset();
    let admin = e.admin().await;
    let wns = e.namespace("aod-rbac").await;
    let cns = e.namespace("aod-rbac-cp").await;
    let sa_user = format!("system:serviceaccount:{cns}:agent-orchestrator");

    // deploy/'s objects, namespaces replaced.
    let mut orch_sa = manifest(
        "serviceaccounts.yaml",
        "ServiceAccount",
        Some("agent-orchestrator"),
    );
    orch_sa["metadata"]["namespace"] = json!(cns);
    create::<ServiceAccount>(&admin, &cns, typed(orch_sa)).await;
    let mut worker_sa = manifest(
        "serviceaccounts.yaml",
        "ServiceAccount",
        Some("claude-worker"),
    );
    worker_sa["metadata"]["namespace"] = json!(wns);
    create::<ServiceAccount>(&admin, &wns, typed(worker_sa)).await;
    create(&admin, &wns, role(&wns, removed.as_ref())).await;
    let mut binding = manifest("rbac.yaml", "RoleBinding", None);
    binding["metadata"]["namespace"] = json!(wns);
    binding["subjects"][0]["namespace"] = json!(cns);
    create::<RoleBinding>(&admin, &wns, typed(binding)).await;
    let secret = json!({"metadata": {"name": "claude-worker-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-ant-deploy-test"}});
    create::<Secret>(&admin, &wns, typed(secret)).await;

    let dir = tempfile::tempdir().unwrap();
    let (image, _) = e.image("aod-worker", &[("worker", &worker_script(dir.path()))]);
    let node = e.start_node(NodeOptions::new([wns.clone()])).await;
    let kubeconfig = e
        .token_kubeconfig(&cns, "agent-orchestrator", &dir.path().join("kubeconfig"))
        .await;
    let setup = Setup {
        kubeconfig,
        namespace: wns.clone(),
        image,
        data: dir.path().join("data"),
        port: free_port(),
    };

    let doctor = setup.doctor();
    let mut failures = Vec::new();
    let mut o = Orchestrator::start(&setup);
    let ok = o.submit(json!({})).await;
    match o.wait_status(&ok, TERMINAL, step).await {
        Some(t) if t["status"] == "succeeded" => {
            let logs = o.logs(&ok).await;
            if !logs.contains(&format!("pod task {ok}")) {
                failures.push(format!("the task's log lacks the pod's output: {logs:?}"));
            }
        }
        t => failures.push(format!("the short task did not succeed: {}", brief(t))),
    }
    let slow = o.submit(json!({"SLEEP": "300"})).await;
    if o.wait_status(&slow, &["running"], step).await.is_none() {
        failures.push(format!(
            "the long task is not running: {}",
            brief(Some(o.task(&slow).await))
        ));
    }
    o.kill();
    let first_log = o.log_text();
    o = Orchestrator::start(&setup);
    if o.task(&slow).await["status"] != "running" {
        failures.push(format!(
            "not adopted after the restart: {}",
            brief(Some(o.task(&slow).await))
        ));
    }
    let code = o.cancel(&slow).await;
    match o.wait_status(&slow, TERMINAL, step).await {
        Some(t) if t["status"] == "cancelled" && code == 202 => {}
        t => failures.push(format!(
            "the long task was not cancelled ({code}): {}",
            brief(t)
        )),
    }
    // Finished pods and token Secrets are collected (--k8s-pod-ttl-seconds 0).
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=agent-orchestrator");
    let (pods, secrets) = (
        Api::<Pod>::namespaced(admin.clone(), &wns),
        Api::<Secret>::namespaced(admin.clone(), &wns),
    );
    let deadline = std::time::Instant::now() + step;
    loop {
        let left = pods.list(&lp).await.unwrap().items.len()
            + secrets.list(&lp).await.unwrap().items.len();
        if left == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            failures.push(format!("{left} pods and token Secrets were not collected"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // With the whole Role nothing may go wrong: show what happened (a missing verb is expected
    // to break things, and the report says how).
    if !failures.is_empty() && removed.is_none() {
        for p in pods.list(&ListParams::default()).await.unwrap().items {
            eprintln!(
                "[{removed:?}] pod {:?}: {}",
                p.metadata.name,
                serde_json::to_string(&p.status).unwrap()
            );
        }
        eprintln!(
            "[{removed:?}] orchestrator log, before the restart:\n{first_log}\nafter:\n{}",
            o.log_text()
        );
    }
    drop(o);
    node.shutdown().await;

    // A marker request: once the audit log has it, it has everything the scenario caused.
    let marker = format!("aod-marker-{wns}");
    let _ = Api::<ConfigMap>::namespaced(admin.clone(), &wns)
        .get_opt(&marker)
        .await;
    let events = wait_for(
        "the marker request in the audit log",
        Duration::from_secs(30),
        || {
            let events = e.audit_since(audit_from);
            let seen = events
                .iter()
                .any(|a| a.name.as_deref() == Some(marker.as_str()));
            async move { seen.then_some(events) }
        },
    )
    .await;
    let mut outcome = Outcome {
        failures,
        doctor,
        secs: started.elapsed().as_secs_f64(),
        ..Outcome::default()
    };
    for a in events.iter().filter(|a| a.user == sa_user) {
        let Some(resource) = &a.resource else {
            continue;
        };
        let resource = match &a.subresource {
            Some(s) => format!("{resource}/{s}"),
            None => resource.clone(),
        };
        let grant = (resource, a.verb.clone());
        if a.code == 403 {
            outcome.forbidden.insert(grant.clone());
        }
        outcome.used.insert(grant);
    }
    for ns in [&wns, &cns] {
        let _ = Api::<Namespace>::all(admin.clone())
            .delete(ns, &Default::default())
            .await;
    }
    outcome
}
