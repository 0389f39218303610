//! 6c. API Priority and Fairness squeezes the orchestrator's flow: a FlowSchema puts its
//! ServiceAccount (and a neighbour's) into a PriorityLevelConfiguration with
//! `nominalConcurrencyShares: 1` and `limitResponse: Reject` (a few seats). The neighbour holds
//! every seat with requests whose bodies it does not send yet, so the orchestrator's requests
//! get real 429s with `Retry-After`. The audit log proves the 429s, and that each retry waited
//! at least the Retry-After; once the neighbour lets go, every task still ends right.

use std::time::Instant;

use crate::audit::Ev;
use crate::flow::{Neighbour, Squeezed, seats};
use crate::world::kubectl;

const TASKS: usize = 4;
/// The orchestrator's 429s to see before the neighbour lets go.
const SQUEEZED: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squeezed_priority_level_gives_429s_that_are_retried_and_every_task_ends_right() {
    let t0 = Instant::now();
    let squeezed = Squeezed::new("ao-watch-apf").await;
    let (w, pl) = (&squeezed.w, &squeezed.pl);
    let (orch, log) = squeezed.start(TASKS, &[], None).await;
    let user = w.sa_user();

    let seats = seats(w, pl).await;
    let mut neighbour = Neighbour::new(w).await;
    neighbour.hold_all(w, pl, seats).await;
    let probe = neighbour.wait_for_status(429).await;
    let retry_after = probe.headers().get("retry-after").cloned();
    assert!(
        retry_after.is_some(),
        "a 429 without Retry-After: {probe:?}"
    );

    let after = log.mark();
    let squeezed_at = Instant::now();
    // One task first: its throttled requests are the only ones, so each next request of
    // the same verb and resource is its retry. The others launch beside it later.
    let mut ids = vec![orch.submit("squeezed task 0").await];
    after
        .wait_for("the orchestrator's 429s", 60, |evs| {
            let n = evs
                .iter()
                .filter(|e| e.user == user && e.code == 429)
                .count();
            (n >= SQUEEZED).then_some(())
        })
        .await;
    let alone_until = chrono::Utc::now().timestamp_micros();
    for i in 1..TASKS {
        ids.push(orch.submit(&format!("squeezed task {i}")).await);
    }
    neighbour.let_go();
    neighbour.wait_for_status(200).await;
    let squeeze = squeezed_at.elapsed();
    orch.assert_all_answered(&ids, 240).await;

    let evs: Vec<Ev> = after
        .events()
        .into_iter()
        .filter(|e| e.user == user)
        .collect();
    let throttled: Vec<&Ev> = evs
        .iter()
        .filter(|e| e.code == 429 && e.received_us < alone_until)
        .collect();
    // Each retry of a throttled request waited at least the Retry-After (1 s, or more when
    // the server raises it): the next request of the same verb and resource came later.
    let mut gaps = Vec::new();
    for t in &throttled {
        let next = evs.iter().find(|e| {
            e.received_us > t.received_us
                && e.received_us < alone_until
                && e.verb == t.verb
                && e.resource == t.resource
        });
        if let Some(n) = next {
            gaps.push(n.received_us - t.received_us);
        }
    }
    let min_gap = gaps.iter().copied().min().unwrap_or(0);
    assert!(
        !gaps.is_empty(),
        "no throttled request was retried: {throttled:#?}"
    );
    assert!(
        min_gap >= 900_000,
        "a throttled request was retried {min_gap} µs later, before its Retry-After"
    );
    let created = |r: &str| {
        evs.iter()
            .filter(|e| e.verb == "create" && e.resource.as_deref() == Some(r) && e.code == 201)
            .count()
    };
    assert_eq!(created("pods"), TASKS, "one pod per task, no duplicate");
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for t in &throttled {
        *by_kind
            .entry(format!(
                "{} {}",
                t.verb,
                t.resource.as_deref().unwrap_or("-")
            ))
            .or_default() += 1;
    }
    eprintln!(
        "figures(apf): {seats} seats held by the neighbour for {:.1} s; the orchestrator got {} \
         429s ({by_kind:?}), Retry-After {:?}, shortest wait before a retry {:.2} s, {} retried; \
         pods created {} / secrets created {}; {TASKS} tasks answered; test time {:.1} s",
        squeeze.as_secs_f64(),
        throttled.len(),
        retry_after,
        min_gap as f64 / 1e6,
        gaps.len(),
        created("pods"),
        created("secrets"),
        t0.elapsed().as_secs_f64()
    );
    let kc = w.env.admin_kubeconfig.clone();
    kubectl(
        w.env,
        &kc,
        &["delete", "flowschema,prioritylevelconfiguration", pl],
        None,
    )
    .await;
}
