//! Label and field selectors, as the API server parses them from a list or watch query.
//! Equality-based only (`a=b`, `a==b`, `a!=b`, `a`, `!a`), comma-separated: what clients of
//! this simulator send.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// One parsed selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

/// A label selector plus the `metadata.name` / `metadata.namespace` field selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<Req>,
    fields: Vec<Req>,
}

fn parse(s: &str) -> Vec<Req> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some(k) = p.strip_prefix('!') {
                Req::Absent(k.trim().into())
            } else {
                Req::Exists(p.into())
            }
        })
        .collect()
}

fn matches(reqs: &[Req], get: impl Fn(&str) -> Option<String>) -> bool {
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
        Req::Ne(k, v) => get(k).as_deref() != Some(v.as_str()),
        Req::Exists(k) => get(k).is_some(),
        Req::Absent(k) => get(k).is_none(),
    })
}

impl Selector {
    pub fn new(label_selector: Option<&str>, field_selector: Option<&str>) -> Self {
        Selector {
            labels: label_selector.map(parse).unwrap_or_default(),
            fields: field_selector.map(parse).unwrap_or_default(),
        }
    }

    pub fn matches_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        matches(&self.labels, |k| labels.and_then(|l| l.get(k).cloned()))
    }

    pub fn matches(&self, pod: &Pod) -> bool {
        self.matches_labels(pod.metadata.labels.as_ref())
            && matches(&self.fields, |k| match k {
                "metadata.name" => pod.metadata.name.clone(),
                "metadata.namespace" => pod.metadata.namespace.clone(),
                "status.phase" => pod.status.as_ref().and_then(|s| s.phase.clone()),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_selectors() {
        let mut l = BTreeMap::new();
        l.insert("app".to_string(), "claude-worker".to_string());
        l.insert("tier".to_string(), "x".to_string());
        assert!(Selector::new(Some("app=claude-worker"), None).matches_labels(Some(&l)));
        assert!(Selector::new(Some("app==claude-worker,tier"), None).matches_labels(Some(&l)));
        assert!(!Selector::new(Some("app=claude-worker,tier!=x"), None).matches_labels(Some(&l)));
        assert!(!Selector::new(Some("missing"), None).matches_labels(Some(&l)));
        assert!(Selector::new(Some("!missing"), None).matches_labels(Some(&l)));
        assert!(Selector::new(None, None).matches_labels(None));
    }
}
