//! The OpenAPI 3 document, generated from the handlers' annotations and the domain types.

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
        error::ErrorBody, error::ErrorDetail,
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
