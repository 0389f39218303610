//! The OpenAPI 3.1 document, generated from the handlers' annotations and the domain types,
//! then made exact by [`document`]: what annotations cannot say (the request body's rules,
//! `prompt` xor `task`, the server's configured limits, query and header formats, the SSE
//! event shape, the worker routes' answers) is set here from the same constants the checks
//! use. `scripts/schemathesis.sh` holds the server to this document.

use ao_core::validation::{Limits, schema};
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{compat, error, health, output, tasks, worker};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agent Orchestrator API", description = "Run autonomous coding agents as ephemeral, isolated workers."),
    paths(
        tasks::create, tasks::list, tasks::get, tasks::cancel, compat::create,
        output::logs, output::events,
        worker::post_events, worker::put_result,
        health::healthz, health::readyz, health::health, health::metrics, health::openapi,
    ),
    components(schemas(
        ao_core::validation::TaskRequest, ao_core::task::Task, ao_core::task::TaskSpec,
        ao_core::task::Repository, ao_core::task::WorkerRef, ao_core::task::TaskResult,
        ao_core::task::TransitionRecord, ao_core::lifecycle::TaskStatus, ao_core::lifecycle::Reason,
        ao_core::task::TaskId, tasks::TaskView, tasks::TaskDetail, tasks::TaskPage, compat::Accepted, worker::EventBatch, worker::EventAck,
        error::ErrorBody, error::ErrorDetail, crate::readiness::ReadinessCheck,
        crate::readiness::CheckStatus,
    )),
    modifiers(&Security),
    tags((name = "tasks", description = "Submit and follow tasks"),
         (name = "worker", description = "Callbacks used by workers"),
         (name = "health", description = "Probes, metrics and this document")),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        c.add_security_scheme(
            "worker_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The media type `/metrics` answers with (OpenMetrics text, as prometheus-client encodes it).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The document this server publishes, with its configured `limits`.
pub fn document(limits: &Limits) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let schemas = &mut doc["components"]["schemas"];
    schemas["TaskRequest"] = schema::task_request(limits);
    schemas["Repository"] = schema::repository();
    schemas["ServerSentEvent"] = sse_event();
    list_params(op(&mut doc, "/api/v1/tasks", "get"));
    idempotency_key(op(&mut doc, "/api/v1/tasks", "post"));
    // The original service's submit route (when served) takes the same header.
    if doc["paths"]["/api/tasks"]["post"].is_object() {
        idempotency_key(op(&mut doc, "/api/tasks", "post"));
    }
    events(op(&mut doc, "/api/v1/tasks/{id}/events", "get"));
    for path in ["/api/v1/tasks/{id}/events", "/api/v1/tasks/{id}/logs"] {
        op(&mut doc, path, "get")["responses"]["422"] = error_response("Invalid query parameter");
    }
    worker_route(op(&mut doc, "/api/v1/tasks/{id}/worker/events", "post"));
    worker_route(op(&mut doc, "/api/v1/tasks/{id}/worker/result", "put"));
    let metrics = &mut op(&mut doc, "/metrics", "get")["responses"]["200"];
    metrics["description"] = json!("Metrics in the OpenMetrics text format");
    metrics["content"] = json!({"application/openmetrics-text": {"schema": {"type": "string"}}});
    let this = &mut op(&mut doc, "/openapi.json", "get")["responses"]["200"];
    this["content"] = json!({"application/json": {"schema": {"type": "object"}}});
    doc
}

fn op<'a>(doc: &'a mut Value, path: &str, method: &str) -> &'a mut Value {
    let op = &mut doc["paths"][path][method];
    assert!(op.is_object(), "the document has no {method} {path}");
    op
}

fn param<'a>(op: &'a mut Value, name: &str) -> &'a mut Value {
    let params = op["parameters"].as_array_mut().expect("parameters");
    params
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

fn list_params(op: &mut Value) {
    let label = &mut param(op, "label")["schema"];
    label["items"] = json!({"type": "string", "pattern": "="});
    label["maxItems"] = json!(crate::tasks::MAX_LABEL_FILTERS);
    // `limit` is read as a machine word; anything above 200 means 200.
    param(op, "limit")["schema"] = json!({"type": "integer", "minimum": 1, "maximum": u64::MAX});
    // A cursor is the position the previous page ended at.
    param(op, "cursor")["schema"] = json!({"type": "string", "pattern": "^[+-]?[0-9]{1,18}$"});
}

fn idempotency_key(op: &mut Value) {
    // Printable ASCII (tabs inside allowed), 1-255 characters; HTTP trims the ends.
    param(op, "Idempotency-Key")["schema"] = json!({
        "type": "string",
        "pattern": "^[!-~](?:[\\t -~]{0,253}[!-~])?$",
    });
}

fn events(op: &mut Value) {
    // Anything that is not a sequence number is ignored.
    param(op, "Last-Event-ID")["schema"] = json!({"type": "string"});
    op["responses"]["200"]["content"] = json!({
        "text/event-stream": {"schema": {"$ref": "#/components/schemas/ServerSentEvent"}}
    });
}

/// One event of the `/events` stream, as an SSE client sees it.
fn sse_event() -> Value {
    json!({
        "type": "object",
        "description": "One Server-Sent Event. Agent events carry their sequence number as `id` \
            and their `type` as `event`, with the event's JSON as `data`. The last event is \
            `end`, whose data is `{\"status\", \"reason\"}` of the finished task; `error` \
            (data `{\"message\"}`) reports a failure to read the store.",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "retry": {"type": "integer"},
        },
    })
}

/// The worker routes check the task's token before anything else: every failure of it is the
/// same 401, whatever the id; only then is the body read and checked.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

fn worker_route(op: &mut Value) {
    let err = error_response;
    let r = op["responses"].as_object_mut().expect("responses");
    r.remove("404");
    r.insert("400".into(), err("Malformed JSON"));
    r.insert(
        "401".into(),
        err("Missing or wrong worker token, or an unknown or malformed task id (checked before the body is read)"),
    );
    r.insert("409".into(), err("The task has already finished"));
    r.insert("413".into(), err("Body too large"));
    r.insert("415".into(), err("Not JSON"));
    r.insert("422".into(), err("Invalid field"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_carries_the_servers_rules_and_limits() {
        let limits = Limits {
            max_timeout_seconds: 120,
            ..Limits::default()
        };
        let doc = document(&limits);
        let req = &doc["components"]["schemas"]["TaskRequest"];
        assert_eq!(req["oneOf"].as_array().unwrap().len(), 2);
        let with_prompt = &req["oneOf"][0]["properties"];
        assert_eq!(with_prompt["timeout_seconds"]["maximum"], 120);
        assert_eq!(with_prompt["max_turns"]["minimum"], 1);
        let list = &doc["paths"]["/api/v1/tasks"]["get"];
        let label = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "label")
            .unwrap();
        assert_eq!(label["schema"]["items"]["pattern"], "=");
        let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        let documented = metrics.as_object().unwrap().keys().next().unwrap();
        assert!(METRICS_CONTENT_TYPE.starts_with(documented.as_str()));
        for p in ["/api/v1/tasks/{id}/events", "/api/v1/tasks/{id}/logs"] {
            for q in doc["paths"][p]["get"]["parameters"].as_array().unwrap() {
                if q["name"] != "id" {
                    assert_ne!(q["in"], "path", "{p}: {q}");
                }
            }
        }
        let worker = &doc["paths"]["/api/v1/tasks/{id}/worker/events"]["post"]["responses"];
        for code in ["200", "400", "401", "409", "413", "415", "422"] {
            assert!(worker[code].is_object(), "{code}");
        }
        assert!(worker["404"].is_null());
    }
}
