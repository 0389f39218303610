//! Routes that stay open without a token: liveness, readiness, the compatibility `/health`,
//! Prometheus metrics and the OpenAPI document; plus the JSON 404/405 fallbacks.

use ao_core::lease::Leadership;
use ao_core::scheduler::SetAside;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::readiness::{CheckStatus, ReadinessCheck};

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers. The body is `ready` as text when nothing needs a look;
/// otherwise JSON naming what does: the start-up checks when one of them is not `ok` (Claude
/// Code, the API key, git, GitHub, the data dir, the cluster; never a secret's value), and the
/// tasks recovery set aside after a restart (it could not settle them yet and retries them).
/// `status` is `degraded` when a check fails or tasks are set aside, `ready` when there are
/// only warnings. With replicas on one database the body is always JSON and says under
/// `scheduler` whether this replica leads (gauge `ao_scheduler_leader` says the same).
///
/// That stays 200: this instance still serves every read, and accepts and runs every task it
/// can (while the built-in agent can't run, submissions themselves answer 503
/// `agent_unavailable` with the fix); taking it out of service would only hide the problem
/// from the people who must look at it. The gauge `ao_recovery_set_aside` and the warnings
/// logged at start-up are the signals to alert on. 503 means the store does not answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ready` as text, or the details as JSON",
            content((String = "text/plain"), (Degraded = "application/json"))),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store unreachable: {e}")))?;
    Ok(readiness(
        state.scheduler.set_aside(),
        state.readiness.checks().await,
        SchedulerRole::of(state.scheduler.leadership()),
    ))
}

/// Which replica runs the scheduler, on `/readyz` when replicas share the database. Every
/// replica serves the whole API, so a follower is as ready as the leader.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerRole {
    /// Whether this replica runs the scheduler now.
    leads: bool,
    /// The lease generation it leads under.
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<i64>,
    /// The replica that leads, when this one follows and knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
}

impl SchedulerRole {
    /// `None` for the only process on its store (nothing to say).
    fn of(l: Leadership) -> Option<Self> {
        match l {
            Leadership::Sole => None,
            Leadership::Leader(f) => Some(SchedulerRole {
                leads: true,
                generation: Some(f.0),
                leader: None,
            }),
            Leadership::Follower { leader } => Some(SchedulerRole {
                leads: false,
                generation: None,
                leader,
            }),
        }
    }
}

/// The readiness body when something needs a look.
#[derive(Debug, Serialize, ToSchema)]
pub struct Degraded {
    /// `degraded` when a check fails or tasks are set aside; `ready` with warnings only.
    #[schema(example = "degraded")]
    status: &'static str,
    /// Present when recovery set tasks aside.
    #[serde(skip_serializing_if = "Option::is_none")]
    set_aside: Option<SetAsideDetail>,
    /// Every check, present when one of them is not `ok`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<ReadinessCheck>,
    /// With replicas on one database: whether this one runs the scheduler (always present
    /// then, so the body is JSON even when all is well).
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler: Option<SchedulerRole>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetAsideDetail {
    count: usize,
    /// Oldest first.
    tasks: Vec<SetAside>,
}

fn readiness(
    tasks: Vec<SetAside>,
    mut checks: Vec<ReadinessCheck>,
    scheduler: Option<SchedulerRole>,
) -> Response {
    if checks.iter().all(|c| c.status == CheckStatus::Ok) {
        checks.clear();
    }
    if tasks.is_empty() && checks.is_empty() && scheduler.is_none() {
        return "ready".into_response();
    }
    let failing = checks.iter().any(|c| c.status == CheckStatus::Fail);
    let set_aside = if tasks.is_empty() {
        None
    } else {
        Some(SetAsideDetail {
            count: tasks.len(),
            tasks,
        })
    };
    let status = if failing || set_aside.is_some() {
        "degraded"
    } else {
        "ready"
    };
    Json(Degraded {
        status,
        set_aside,
        checks,
        scheduler,
    })
    .into_response()
}

/// Compatibility with the original service: answers `OK`.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = String)))]
pub async fn health() -> &'static str {
    "OK"
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Ok(counts) = state.store.count_by_status().await {
        state.metrics.set_counts(&counts);
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &state.registry)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(crate::openapi::document(&state.limits))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> Response {
    let body = crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: "method_not_allowed",
            message: "method not allowed on this route".into(),
            field: None,
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn with_replicas_readiness_says_whether_this_one_leads() {
        use ao_core::lease::{Fence, Leadership};
        let leader = SchedulerRole::of(Leadership::Leader(Fence(4)));
        let (code, text) = body(readiness(Vec::new(), Vec::new(), leader)).await;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            v,
            serde_json::json!({"status": "ready", "scheduler": {"leads": true, "generation": 4}})
        );
        let follower = SchedulerRole::of(Leadership::Follower {
            leader: Some("r2".into()),
        });
        let (code, text) = body(readiness(Vec::new(), Vec::new(), follower)).await;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(code, StatusCode::OK, "a follower is as ready as the leader");
        assert_eq!(
            v["scheduler"],
            serde_json::json!({"leads": false, "leader": "r2"})
        );
        assert!(
            SchedulerRole::of(Leadership::Sole).is_none(),
            "one process: nothing to say"
        );
    }

    #[tokio::test]
    async fn readiness_names_the_set_aside_tasks() {
        assert_eq!(
            body(readiness(Vec::new(), Vec::new(), None)).await,
            (StatusCode::OK, "ready".into())
        );
        let id = ao_core::TaskId::new();
        let aside = SetAside {
            task_id: id,
            reason: "runtime error: api down".into(),
            attempts: 2,
            since: chrono::Utc::now(),
        };
        let (status, text) = body(readiness(vec![aside], vec![check(CheckStatus::Ok)], None)).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["set_aside"]["count"], 1);
        let t = &v["set_aside"]["tasks"][0];
        assert_eq!(t["task_id"], id.to_string());
        assert_eq!(
            (t["attempts"].as_u64(), t["reason"].as_str()),
            (Some(2), Some("runtime error: api down"))
        );
        assert!(v.get("checks").is_none(), "all checks ok: {v}");
    }

    fn check(status: CheckStatus) -> ReadinessCheck {
        ReadinessCheck {
            name: "claude_code".into(),
            status,
            message: "Claude Code not found".into(),
            fix: Some("run scripts/install-claude.sh".into()),
        }
    }

    #[tokio::test]
    async fn readiness_carries_the_checks_when_one_is_not_ok() {
        let ok = || check(CheckStatus::Ok);
        assert_eq!(
            body(readiness(Vec::new(), vec![ok(), ok()], None)).await.1,
            "ready"
        );
        for (worst, status) in [
            (CheckStatus::Warn, "ready"),
            (CheckStatus::Fail, "degraded"),
        ] {
            let (code, text) = body(readiness(Vec::new(), vec![ok(), check(worst)], None)).await;
            assert_eq!(code, StatusCode::OK);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["status"], status, "{v}");
            assert!(v.get("set_aside").is_none(), "{v}");
            assert_eq!(v["checks"].as_array().unwrap().len(), 2, "{v}");
            assert_eq!(v["checks"][1]["fix"], "run scripts/install-claude.sh");
        }
    }
}
