//! 6b. After an etcd compaction, with the watch cache off (an extra kube-apiserver with
//! `--watch-cache=false`, so a watch reaches etcd), a resume from an old resourceVersion gets
//! 410 Gone and the runtime relists; no task is lost or stuck. The compaction goes through
//! etcd's v3 JSON gateway; the proxy's cut forces the resume.

use std::time::Instant;

use serde_json::{Value, json};

use crate::audit::{Ev, Log};
use crate::proxy::CutProxy;
use crate::resume::watch_start;
use crate::world::{World, kubectl};

const TASKS: usize = 3;

/// etcd's current revision, then a physical compaction up to it (v3 JSON gateway: int64
/// fields are strings).
async fn compact(etcd: &str) -> u64 {
    let http = reqwest::Client::new();
    let range: Value = http
        .post(format!("{etcd}/v3/kv/range"))
        .json(&json!({"key": "AA=="}))
        .send()
        .await
        .expect("etcd range")
        .json()
        .await
        .expect("etcd range JSON");
    let rev = range["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no header.revision in {range}"));
    let r = http
        .post(format!("{etcd}/v3/kv/compaction"))
        .json(&json!({"revision": rev.to_string(), "physical": true}))
        .send()
        .await
        .expect("etcd compaction");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "compaction to {rev}: {status} {body}");
    rev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_etcd_compaction_a_resume_gets_410_gone_and_the_runtime_relists() {
    let t0 = Instant::now();
    let w = World::new("ao-watch-compact", TASKS).await;
    let (api, admin) = w
        .env
        .extra_apiserver("ao-watch-nocache", &["--watch-cache=false"]);
    let audit_path = admin
        .parent()
        .expect("the extra server's folder")
        .join("audit.log");
    let log = Log::from_now(&audit_path);
    let proxy = CutProxy::start(&api).await;
    let orch = w.orchestrator(&proxy.url(), TASKS).await;
    let user = w.sa_user();
    let (_, first_rv) = log
        .wait_for(
            "the orchestrator's first pod watch (extra server)",
            60,
            |evs| watch_start(evs, &user, &w.ns, &[]),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(orch.submit(&format!("watch compaction task {i}")).await);
    }
    w.wait_for_agents(TASKS).await;

    // Marked before the compaction: the runtime meets the 410 either on the resume the cut
    // forces, or already on its live watch (etcd cancels a watcher that has fallen behind the
    // compacted revision, which happens on a loaded machine); both must end in a relist.
    let before: Vec<String> = log.events().iter().map(|e| e.audit_id.clone()).collect();
    let after = log.mark();
    // Two writes after the pods' last change, so that the compaction passes the version the
    // orchestrator's watch last saw by more than one: resuming from it is impossible.
    for name in ["after-pods-1", "after-pods-2"] {
        let kc = w.env.admin_kubeconfig.clone();
        kubectl(
            w.env,
            &kc,
            &["-n", &w.ns, "create", "configmap", name],
            None,
        )
        .await;
    }
    let compacted_at = chrono::Utc::now().timestamp_micros();
    let compacted = compact(&w.env.etcd).await;
    // The server itself now refuses that history: a watch from the first list's version.
    let uri = format!(
        "/api/v1/namespaces/{}/pods?watch=1&resourceVersion={first_rv}&timeoutSeconds=5",
        w.ns
    );
    let out = kubectl(
        w.env,
        &admin,
        &["get", "--raw", &uri, "--request-timeout=20s"],
        None,
    )
    .await;
    let first_event: Value = serde_json::from_str(out.lines().next().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("not a watch event ({e}): {out}"));
    assert_eq!(
        (
            first_event["type"].as_str(),
            first_event["object"]["code"].as_u64()
        ),
        (Some("ERROR"), Some(410)),
        "a watch from {first_rv} after compacting to {compacted}: {out}"
    );

    let cut = proxy.cut();
    assert!(
        cut >= 1,
        "no connection to cut: the orchestrator does not use the proxy"
    );
    // After the compaction: the relist, then a watch from the list's version (at or past the
    // compacted revision). A watch from an old version before the relist is the resume that got
    // the 410 (absent when the live watch got it).
    let ours = |evs: &[Ev]| -> Vec<String> {
        evs.iter()
            .filter(|e| e.user == user)
            .map(Ev::short)
            .collect()
    };
    let context = || {
        format!(
            "the orchestrator's requests since the mark:\n{}\norchestrator log:\n{}",
            ours(&after.events()).join("\n"),
            orch.tail(60)
        )
    };
    let (relist, rewatch) = after
        .wait_or(
            "the relist after the compaction and the new watch from its version",
            90,
            |evs| {
                let relist = evs.iter().find(|e| {
                    e.on_pods_by(&user, &w.ns)
                        && e.verb == "list"
                        && e.code == 200
                        && e.received_us >= compacted_at
                })?;
                let later: Vec<Ev> = evs
                    .iter()
                    .filter(|e| e.received_us >= relist.received_us)
                    .cloned()
                    .collect();
                let (rewatch, rv) = watch_start(&later, &user, &w.ns, &before)?;
                (rv >= compacted).then(|| (relist.clone(), rewatch))
            },
            context,
        )
        .await;
    let resume = after
        .events()
        .into_iter()
        .filter(|e| {
            e.on_pods_by(&user, &w.ns)
                && e.verb == "watch"
                && !before.contains(&e.audit_id)
                && e.received_us >= compacted_at
                && e.received_us <= relist.received_us
        })
        .find(|e| {
            e.param("resourceVersion")
                .and_then(|rv| rv.parse::<u64>().ok())
                .is_some_and(|rv| rv < compacted)
        });
    assert!(
        rewatch.received_us >= relist.received_us,
        "out of order: {}\n{}",
        relist.short(),
        rewatch.short()
    );
    let gone = orch.logged("pod watch resourceVersion expired (410 Gone); relisting");
    assert!(
        !gone.is_empty(),
        "the runtime did not see the 410:\n{}",
        orch.tail(60)
    );
    let relisting = orch.logged("pod watch relisting");
    assert!(
        !relisting.is_empty(),
        "the runtime did not relist:\n{}",
        orch.tail(60)
    );

    w.open_gate();
    orch.assert_all_answered(&ids, 120).await;
    let lists = after
        .events()
        .iter()
        .filter(|e| e.on_pods_by(&user, &w.ns) && e.verb == "list")
        .map(Ev::short)
        .count();
    eprintln!(
        "figures(compaction): compacted to revision {compacted}; resume from {} got 410; relists \
         seen by the runtime {}, lists in the audit log since the mark {lists}; {TASKS} tasks \
         answered; test time {:.1} s",
        resume
            .as_ref()
            .and_then(|r| r.param("resourceVersion"))
            .unwrap_or("(none: the live watch got it)"),
        relisting.len(),
        t0.elapsed().as_secs_f64()
    );
}
