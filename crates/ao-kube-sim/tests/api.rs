//! The simulator's wire format, checked with a real kube client: status codes and `Status`
//! bodies, label selectors, the status subresource, follow logs, `410 Gone` on watch resume,
//! and secrets being write-only.

use std::time::Duration;

use ao_kube_sim::{Behaviour, Sim, SimConfig, Step};
use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Secret};
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::ObjectMeta;

fn pod(name: &str, app: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn api_code(r: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str]) {
    for _ in 0..200 {
        let p = pods.get(name).await.unwrap();
        if phases.contains(&p.status.and_then(|s| s.phase).unwrap_or_default().as_str()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never reached {phases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_speak_the_kubernetes_api() {
    let steps = vec![
        Step::Log("a".into()),
        Step::Log("b".into()),
        Step::Sleep(Duration::from_millis(100)),
        Step::Exit(0),
    ];
    let sim = Sim::new(SimConfig {
        default_behaviour: Behaviour::Script(steps),
        ..SimConfig::default()
    });
    let pods: Api<Pod> = Api::namespaced(sim.client("agents"), "agents");
    let pp = PostParams::default();
    let created = pods.create(&pp, &pod("p1", "x")).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(
        api_code(pods.create(&pp, &pod("p1", "x")).await),
        (409, "AlreadyExists".into())
    );
    assert_eq!(api_code(pods.get("nope").await), (404, "NotFound".into()));
    let list = pods
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    assert!(
        pods.list(&ListParams::default().labels("app=y"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    wait_phase(&pods, "p1", &["Running", "Succeeded"]).await;
    let mut log = String::new();
    let lp = LogParams {
        follow: true,
        ..Default::default()
    };
    pods.log_stream("p1", &lp)
        .await
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert_eq!(log, "a\nb\n", "the follow stream ends with the container");
    wait_phase(&pods, "p1", &["Succeeded"]).await;

    let patch = Patch::Merge(serde_json::json!({"status": {"message": "injected"}}));
    let p = pods
        .patch_status("p1", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().message.as_deref(), Some("injected"));

    let rv = created.metadata.resource_version.unwrap();
    sim.compact();
    let mut w = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match w.next().await {
        Some(Ok(WatchEvent::Error(s))) => assert_eq!(s.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }

    let dp = DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    pods.delete("p1", &dp).await.unwrap();
    for _ in 0..100 {
        if sim.pod("agents", "p1").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sim.pod("agents", "p1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_create_and_delete_only_and_faults_apply() {
    let sim = Sim::new(SimConfig::default());
    let secrets: Api<Secret> = Api::namespaced(sim.client("agents"), "agents");
    let s = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        },
        string_data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(
        sim.secret("agents", "s").unwrap().data.unwrap()["k"].0,
        b"v"
    );
    assert_eq!(api_code(secrets.get("s").await).0, 403);
    assert_eq!(api_code(secrets.list(&ListParams::default()).await).0, 403);
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    assert!(sim.secret("agents", "s").is_none());

    sim.faults().fail_next.extend([429, 503]);
    assert_eq!(
        api_code(secrets.create(&PostParams::default(), &s).await).0,
        429
    );
    assert_eq!(
        api_code(secrets.create(&PostParams::default(), &s).await).0,
        503
    );
    secrets.create(&PostParams::default(), &s).await.unwrap();
    sim.faults().unreachable = true;
    assert!(matches!(
        secrets.delete("s", &DeleteParams::default()).await,
        Err(kube::Error::Service(_))
    ));
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/api/v1/namespaces/agents/secrets")
    );
}
