//! Reads kube-apiserver's audit log, the ground truth of who asked the API server what: tests
//! use it to prove identities (RBAC), refusals (Pod Security) and to count requests (benches).

use std::io::{BufRead, Read, Seek};
use std::path::Path;

use serde::Deserialize;

use crate::TestEnv;

/// One audit event at stage `ResponseComplete` (one per finished request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The request's audit ID: the events of one request at several stages share it.
    pub audit_id: String,
    pub verb: String,
    /// The authenticated user name, e.g. `admin`, `ao-kube-node`,
    /// `system:serviceaccount:<ns>:<name>`.
    pub user: String,
    /// The HTTP status of the response.
    pub code: u16,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub uri: String,
    pub stage: String,
    pub user_agent: Option<String>,
    /// When the API server received the request (RFC 3339, microseconds).
    pub time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default, rename = "auditID")]
    audit_id: String,
    stage: String,
    verb: String,
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    user: RawUser,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    object_ref: Option<RawObjectRef>,
    #[serde(default)]
    response_status: Option<RawStatus>,
    #[serde(default)]
    request_received_timestamp: String,
}

#[derive(Deserialize)]
struct RawUser {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct RawObjectRef {
    namespace: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    #[serde(default)]
    code: u16,
}

/// Parses the complete lines of an audit log (a line still being written is left out): its
/// `ResponseComplete` events only, or with `all_stages` also `ResponseStarted` (a watch is
/// logged when it starts) and `Panic` events.
fn parse_stages(text: &[u8], all_stages: bool) -> Result<Vec<AuditEvent>, String> {
    let complete = match text.iter().rposition(|b| *b == b'\n') {
        Some(end) => &text[..=end],
        None => return Ok(Vec::new()),
    };
    let mut events = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawEvent =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}: {line}", i + 1))?;
        if !all_stages && raw.stage != "ResponseComplete" {
            continue;
        }
        let obj = raw.object_ref;
        events.push(AuditEvent {
            audit_id: raw.audit_id,
            verb: raw.verb,
            user: raw.user.username,
            code: raw.response_status.map_or(0, |s| s.code),
            namespace: obj.as_ref().and_then(|o| o.namespace.clone()),
            resource: obj.as_ref().and_then(|o| o.resource.clone()),
            subresource: obj.as_ref().and_then(|o| o.subresource.clone()),
            name: obj.as_ref().and_then(|o| o.name.clone()),
            uri: raw.request_uri,
            stage: raw.stage,
            user_agent: raw.user_agent,
            time: raw.request_received_timestamp,
        });
    }
    Ok(events)
}

impl TestEnv {
    /// Every `ResponseComplete` event of the audit log so far. A request's event is written
    /// before its response ends (`--audit-log-mode=blocking`), so a test may look for the
    /// requests it has made. Panics when the log can't be read. The log holds every test's
    /// requests (hundreds of MB after a scale test): prefer a window, [`TestEnv::audit_since`]
    /// a mark taken with [`TestEnv::audit_offset`] when the test begins.
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.audit_since(0)
    }

    /// The audit log's length now: a mark for [`TestEnv::audit_since`].
    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(&self.audit_log)
            .unwrap_or_else(|e| {
                panic!(
                    "ao-kube-testenv: cannot stat the audit log {}: {e}",
                    self.audit_log.display()
                )
            })
            .len()
    }

    /// The `ResponseComplete` events written after `offset` (from [`TestEnv::audit_offset`]):
    /// the requests of one window, without reading the whole log.
    pub fn audit_since(&self, offset: u64) -> Vec<AuditEvent> {
        read_log(&self.audit_log, offset, false).unwrap_or_else(|e| panic!("ao-kube-testenv: {e}"))
    }
}

/// The events of the audit log at `path` written after byte `offset` (0: all of it); any API
/// server's log, such as an extra one's (`run/apiservers/<name>/audit.log`). `all_stages` as
/// in [`parse_stages`]. A mark that is not at a line's start cannot yield half an event.
pub fn read_log(path: &Path, offset: u64, all_stages: bool) -> Result<Vec<AuditEvent>, String> {
    // From the byte before `offset`, then past the first newline.
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        file.seek(std::io::SeekFrom::Start(offset.saturating_sub(1)))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        if offset > 0 {
            let first_line = text
                .iter()
                .position(|b| *b == b'\n')
                .map_or(text.len(), |i| i + 1);
            text.drain(..first_line);
        }
        Ok(text)
    };
    let text = read().map_err(|e| format!("cannot read the audit log {}: {e}", path.display()))?;
    parse_stages(&text, all_stages).map_err(|e| {
        format!(
            "the audit log {} does not parse after byte {offset}: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_response_complete_events_and_leaves_out_a_partial_last_line() {
        let log = concat!(
            r#"{"stage":"ResponseStarted","verb":"watch","requestURI":"/api/v1/pods?watch=1","user":{"username":"admin"}}"#,
            "\n",
            r#"{"stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/namespaces/a/pods","user":{"username":"system:serviceaccount:a:b"},"userAgent":"ua","objectRef":{"resource":"pods","namespace":"a","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2026-12-03T10:00:00.000001Z"}"#,
            "\n",
            r#"{"stage":"ResponseComplete","verb":"get""#
        );
        let events = parse_stages(log.as_bytes(), false).unwrap();
        assert_eq!(
            events,
            vec![AuditEvent {
                audit_id: String::new(),
                verb: "list".into(),
                user: "system:serviceaccount:a:b".into(),
                code: 403,
                namespace: Some("a".into()),
                resource: Some("pods".into()),
                subresource: None,
                name: None,
                uri: "/api/v1/namespaces/a/pods".into(),
                stage: "ResponseComplete".into(),
                user_agent: Some("ua".into()),
                time: "2026-12-03T10:00:00.000001Z".into(),
            }]
        );
    }

    #[test]
    fn audit_since_reads_from_a_mark_and_never_half_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let line = |verb: &str| {
            format!(r#"{{"stage":"ResponseComplete","verb":"{verb}","user":{{"username":"u"}}}}"#)
                + "\n"
        };
        let (first, second) = (line("get"), line("list"));
        let log = dir.path().join("audit.log");
        std::fs::write(&log, format!("{first}{second}")).unwrap();
        let env = TestEnv {
            dir: dir.path().into(),
            server: String::new(),
            admin_kubeconfig: dir.path().join("k"),
            audit_log: log,
            etcd: String::new(),
            pki: dir.path().into(),
        };
        let verbs = |offset: u64| -> Vec<String> {
            env.audit_since(offset)
                .into_iter()
                .map(|e| e.verb)
                .collect()
        };
        assert_eq!(verbs(0), ["get", "list"]);
        assert_eq!(env.audit().len(), 2);
        assert_eq!(verbs(first.len() as u64), ["list"]);
        assert_eq!(verbs(first.len() as u64 + 3), Vec::<String>::new());
        assert_eq!(verbs(env.audit_offset()), Vec::<String>::new());
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error() {
        assert!(
            parse_stages(b"not json\n", false)
                .unwrap_err()
                .contains("line 1")
        );
    }
}
