//! Issue 17 on the real API server: a busy neighbour keeps the orchestrator's priority level
//! (a few seats, `Reject`) taken for 60 s while tasks wait. The orchestrator's launches are
//! throttled but never stand still: judged from the audit log, its create attempts are never
//! more than 5 s apart while tasks wait, the neighbour gets most of the 429s, and every task
//! succeeds within 60 s of the squeeze's end with one pod each.

use std::time::{Duration, Instant, SystemTime};

use crate::audit::Ev;
use crate::flow::{Neighbour, Squeezed, seats};

/// Tasks submitted at the start of the squeeze (`AO_SQUEEZE_TASKS` for a bigger run).
const TASKS: usize = 20;
const SQUEEZE: Duration = Duration::from_secs(60);
/// The longest the orchestrator may go without a create attempt while tasks wait.
const MAX_GAP_US: i64 = 5_000_000;

fn tasks() -> usize {
    std::env::var("AO_SQUEEZE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TASKS)
}

fn micros(t: SystemTime) -> i64 {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    i64::try_from(d.as_micros()).unwrap()
}

/// The orchestrator's create attempts (secrets and pods of its namespace), oldest first.
fn creates<'a>(evs: &'a [Ev], user: &str, ns: &str) -> Vec<&'a Ev> {
    let mut v: Vec<&Ev> = evs
        .iter()
        .filter(|e| e.user == user && e.verb == "create" && e.namespace.as_deref() == Some(ns))
        .filter(|e| matches!(e.resource.as_deref(), Some("pods" | "secrets")))
        .filter(|e| e.subresource.is_none())
        .collect();
    v.sort_by_key(|e| e.received_us);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_s_squeeze_slows_launches_but_never_stops_them() {
    let n = tasks();
    let squeezed = Squeezed::new("ao-squeeze").await;
    let (w, pl) = (&squeezed.w, &squeezed.pl);
    let (orch, log) = squeezed.start(n, &[], None).await;
    let user = w.sa_user();

    let seats = seats(w, pl).await;
    let neighbour = Neighbour::new(w).await;
    let loops = std::env::var("AO_SQUEEZE_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 * seats);
    let busy = neighbour.keep_busy(loops, Duration::from_millis(200));
    neighbour.wait_for_status(429).await;

    let after = log.mark();
    let start = SystemTime::now();
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(orch.submit(&format!("squeezed task {i}")).await);
    }
    tokio::time::sleep(SQUEEZE.saturating_sub(t0.elapsed())).await;
    busy.stop();
    let end = SystemTime::now();
    orch.assert_all_answered(&ids, 60 + crate::world::AGENT_SECS)
        .await;
    let finished = end.elapsed().unwrap_or_default();

    let evs = after.events();
    let (from, to) = (micros(start), micros(end));
    let during: Vec<&Ev> = evs
        .iter()
        .filter(|e| (from..to).contains(&e.received_us))
        .collect();
    let all_creates = creates(&evs, &user, &w.ns);
    let pods_created: Vec<&&Ev> = all_creates
        .iter()
        .filter(|e| e.resource.as_deref() == Some("pods") && e.code == 201)
        .collect();
    // Tasks wait until the last pod is created, or the squeeze ends.
    let waiting_until = pods_created
        .iter()
        .map(|e| e.received_us)
        .max()
        .unwrap_or(to)
        .min(to);
    let mut at: Vec<i64> = vec![from];
    at.extend(
        all_creates
            .iter()
            .map(|e| e.received_us)
            .filter(|t| (from..waiting_until).contains(t)),
    );
    at.push(waiting_until);
    let longest = at.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
    let launched_during = pods_created.iter().filter(|e| e.received_us < to).count();
    let refused = |who: &str| {
        during
            .iter()
            .filter(|e| e.user == who && e.code == 429)
            .count()
    };
    let neighbour_user = format!("system:serviceaccount:{}:neighbour", w.ctl);
    let (ours, theirs) = (refused(&user), refused(&neighbour_user));
    let attempts = all_creates
        .iter()
        .filter(|e| (from..to).contains(&e.received_us))
        .count();
    eprintln!(
        "figures(squeeze): {seats} seats, {loops} neighbour loops, {n} tasks, squeeze {:.0} s: longest gap between the \
         orchestrator's create attempts while tasks waited {:.2} s; {launched_during} of {n} \
         pods created during the squeeze; {attempts} create attempts; 429s: orchestrator {ours}, \
         neighbour {theirs} (neighbour admitted {} requests); every task answered {:.1} s after \
         the squeeze ended",
        SQUEEZE.as_secs_f64(),
        longest as f64 / 1e6,
        busy.admitted.load(std::sync::atomic::Ordering::SeqCst),
        finished.as_secs_f64()
    );
    assert!(ours > 0, "the squeeze never throttled the orchestrator");
    assert!(
        longest <= MAX_GAP_US,
        "the orchestrator went {:.2} s without a create attempt while tasks waited",
        longest as f64 / 1e6
    );
    assert!(
        theirs > ours,
        "the neighbour got {theirs} 429s and the orchestrator {ours}: it should get most"
    );
    let mut names: Vec<&str> = pods_created
        .iter()
        .filter_map(|e| e.name.as_deref())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(pods_created.len(), n, "one pod created per task");
    assert_eq!(names.len(), n, "a pod was created twice: {names:?}");
    assert!(
        finished <= Duration::from_secs(60),
        "the last task succeeded {finished:?} after the squeeze ended"
    );
}
