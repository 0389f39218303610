use super::*;
use serde_json::json;

fn pod(env: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"}},
        "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [{"name": "c", "env": env}]},
    }))
    .unwrap()
}

fn sources(secret: Option<(&str, &str)>) -> Sources {
    let mut s = Sources::default();
    s.secrets.insert(
        "s".into(),
        secret.map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())])),
    );
    s
}

fn run(p: &Pod, src: &Sources) -> Result<Vec<(String, String)>, String> {
    resolve(p, &p.spec.as_ref().unwrap().containers[0], src)
}

#[test]
fn values_fields_and_secret_keys_resolve_in_order() {
    let p = pod(json!([
        {"name": "A", "value": "x"},
        {"name": "B", "value": "$(A)-$$-$(NOPE)"},
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "U", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
    ]));
    let env = run(&p, &sources(Some(("k", "secret-value")))).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("B"), Some("x-$-$(NOPE)"));
    assert_eq!(get("K"), Some("secret-value"));
    assert_eq!(get("N"), Some("p"));
    assert_eq!(get("NS"), Some("ns"));
    assert_eq!(get("U"), Some("u-1"));
    assert_eq!(get("IP"), Some("127.0.0.1"));
    assert_eq!(get("NODE"), Some("n1"));
    assert_eq!(get("SA"), Some("sa"));
    assert_eq!(get("L"), Some("a"));
}

#[test]
fn missing_secret_or_key_gives_kubelets_message_unless_optional() {
    let required =
        pod(json!([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]));
    assert_eq!(
        run(&required, &sources(None)),
        Err("secret \"s\" not found".into())
    );
    assert_eq!(
        run(&required, &sources(Some(("other", "v")))),
        Err("couldn't find key k in Secret ns/s".into())
    );
    let optional = pod(
        json!([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}]),
    );
    assert_eq!(run(&optional, &sources(None)), Ok(vec![]));
    assert_eq!(run(&optional, &sources(Some(("other", "v")))), Ok(vec![]));
}

#[test]
fn config_map_refs_and_env_from() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}],
            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {"name": "W", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "a"}}}]}]},
    }))
    .unwrap();
    let mut src = Sources::default();
    src.config_maps.insert(
        "cm".into(),
        Some(BTreeMap::from([("a".to_owned(), "1".to_owned())])),
    );
    src.config_maps.insert("gone".into(), None);
    assert_eq!(run(&p, &src), Err("configmap \"gone\" not found".into()));
    src.config_maps.insert(
        "gone".into(),
        Some(BTreeMap::from([("a".to_owned(), "2".to_owned())])),
    );
    let env = run(&p, &src).unwrap();
    assert_eq!(
        env,
        vec![
            ("P_a".into(), "1".into()),
            ("V".into(), "1".into()),
            ("W".into(), "2".into())
        ]
    );
}

#[test]
fn expansion_handles_edges() {
    let env = vec![("A".to_owned(), "1".to_owned())];
    assert_eq!(expand("$(A)$(A)", &env), "11");
    assert_eq!(expand("$", &env), "$");
    assert_eq!(expand("a$(A", &env), "a$(A");
    assert_eq!(expand("$$(A)", &env), "$(A)");
}
