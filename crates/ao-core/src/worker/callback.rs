//! The callback routes a worker calls on the orchestrator, and their bodies: batches of agent
//! events, and the final [`crate::task::TaskResult`]. Both carry the per-task bearer token
//! ([`super::env::names::CALLBACK_TOKEN`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::TaskId;

/// Route of [`EventBatch`] posts (axum path syntax).
pub const EVENTS_ROUTE: &str = "/api/v1/tasks/{id}/worker/events";
/// Route of the result `PUT`.
pub const RESULT_ROUTE: &str = "/api/v1/tasks/{id}/worker/result";

/// `{base}/api/v1/tasks/{id}/worker/events`.
pub fn events_url(base: &str, id: TaskId) -> String {
    format!(
        "{}{}",
        base.trim_end_matches('/'),
        EVENTS_ROUTE.replace("{id}", &id.to_string())
    )
}

/// `{base}/api/v1/tasks/{id}/worker/result`.
pub fn result_url(base: &str, id: TaskId) -> String {
    format!(
        "{}{}",
        base.trim_end_matches('/'),
        RESULT_ROUTE.replace("{id}", &id.to_string())
    )
}

/// A batch of agent events, numbered from `first_seq` (1-based, contiguous across batches).
/// Events the server already has are ignored, so a worker can resend a batch safely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub first_seq: i64,
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

impl EventBatch {
    /// Most events one batch may carry.
    pub const MAX_EVENTS: usize = 1000;
}

/// The answer to an [`EventBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventAck {
    /// The last sequence number the server holds.
    pub last_seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_fill_the_routes() {
        let id = TaskId::new();
        assert_eq!(
            events_url("http://h:1/", id),
            format!("http://h:1/api/v1/tasks/{id}/worker/events")
        );
        assert_eq!(
            result_url("http://h:1", id),
            format!("http://h:1/api/v1/tasks/{id}/worker/result")
        );
    }

    #[test]
    fn batch_wire_shape() {
        let b = EventBatch {
            first_seq: 3,
            events: vec![serde_json::json!({"type": "x"})],
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"first_seq": 3, "events": [{"type": "x"}]})
        );
        assert!(
            serde_json::from_str::<EventBatch>(r#"{"first_seq":1,"events":[],"x":1}"#).is_err()
        );
    }
}
