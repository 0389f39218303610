//! One pod's containers before and while they run: [`prepare`] turns the pod spec into
//! process specs (image → PATH, env, identity, volumes) or the waiting states that say why it
//! cannot yet (`ErrImagePull`, `CreateContainerConfigError`, ...); [`supervise`] waits for a
//! started process while sampling its memory and carrying out kill requests.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::process::{self, Running, Spec};
use crate::status::CState;
use crate::{Shared, envs, memory, security, volumes};

/// How the pod task asks a container to stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kill {
    /// SIGTERM to the group, SIGKILL after the grace period.
    Term(Duration),
    /// SIGKILL now.
    Now,
}

/// How a container's process ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    pub code: i32,
    /// Killed by the node for using more than its memory limit.
    pub oom: bool,
    pub finished: Timestamp,
}

/// The containers of a pod that cannot start yet, one state per container.
pub(crate) type NotYet = Vec<CState>;

/// Process specs for every container of `pod`, or why not yet. `attempt` counts earlier
/// failed tries (a missing image is `ErrImagePull` first, then `ImagePullBackOff`).
pub(crate) async fn prepare(
    shared: &Shared,
    pod: &Pod,
    volumes_dir: &Path,
    attempt: u32,
) -> Result<Vec<Spec>, NotYet> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let creating = || CState::waiting("ContainerCreating", "");
    if pod
        .spec
        .as_ref()
        .is_some_and(|s| s.init_containers.as_ref().is_some_and(|i| !i.is_empty()))
    {
        let unsupported = "initContainers are not supported by ao-kube-node";
        return Err(vec![
            CState::waiting(
                "CreateContainerConfigError",
                unsupported
            );
            containers.len()
        ]);
    }
    let all = |s: CState| vec![s; containers.len()];
    // The kubelet pulls the image first, then builds the container's config.
    let mut images = Vec::new();
    let mut pulled = true;
    let pull_states: Vec<CState> = containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            match shared.images.get(&image) {
                Some(dir) => {
                    images.push(dir.clone());
                    creating()
                }
                None => {
                    pulled = false;
                    pull_failure(&image, attempt)
                }
            }
        })
        .collect();
    if !pulled {
        return Err(pull_states);
    }
    let sources = envs::fetch(&shared.client, pod)
        .await
        .map_err(|e| all(CState::waiting("CreateContainerConfigError", e.to_string())))?;
    let mut configs = Vec::new();
    let mut failed = false;
    let config_states: Vec<CState> = containers
        .iter()
        .map(|c| match config(pod, c, &sources) {
            Ok(cfg) => {
                configs.push(cfg);
                creating()
            }
            Err(message) => {
                failed = true;
                CState::waiting("CreateContainerConfigError", message)
            }
        })
        .collect();
    if failed {
        return Err(config_states);
    }
    let owner = configs
        .first()
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    let vols = volumes::prepare(&shared.client, pod, volumes_dir, &owner)
        .await
        .map_err(|m| all(CState::waiting("ContainerCreating", m)))?;
    let mut specs = Vec::new();
    for ((c, (env, identity)), dir) in containers.iter().zip(configs).zip(images) {
        let mounts = volumes::mounts(c, &vols)
            .map_err(|m| all(CState::waiting("CreateContainerConfigError", m)))?;
        specs.push(spec(pod, c, &dir, env, identity, mounts));
    }
    Ok(specs)
}

fn pull_failure(image: &str, attempt: u32) -> CState {
    if attempt == 0 {
        let message = format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
        );
        CState::waiting("ErrImagePull", message)
    } else {
        CState::waiting(
            "ImagePullBackOff",
            format!("Back-off pulling image \"{image}\""),
        )
    }
}

fn config(
    pod: &Pod,
    c: &Container,
    sources: &envs::Sources,
) -> Result<(Vec<(String, String)>, security::Identity), String> {
    Ok((envs::resolve(pod, c, sources)?, security::identity(pod, c)?))
}

fn spec(
    pod: &Pod,
    c: &Container,
    image: &Path,
    env: Vec<(String, String)>,
    identity: security::Identity,
    mounts: Vec<volumes::Mount>,
) -> Spec {
    let home = nix::unistd::User::from_uid(identity.uid.into())
        .ok()
        .flatten()
        .map_or_else(|| "/".to_owned(), |u| u.dir.display().to_string());
    let mut full = vec![
        ("PATH".to_owned(), process::image_path(image)),
        (
            "HOSTNAME".to_owned(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    if !env.iter().any(|(k, _)| k == "HOME") {
        full.push(("HOME".to_owned(), home));
    }
    full.retain(|(k, _)| !env.iter().any(|(n, _)| n == k));
    full.extend(env);
    let command = match c.command.as_deref() {
        Some(cmd) if !cmd.is_empty() => cmd.to_vec(),
        _ => entrypoint(image),
    };
    let argv = command
        .iter()
        .chain(c.args.iter().flatten())
        .map(|a| envs::expand(a, &full))
        .collect();
    let cwd = c
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    // An image under a mount path (an emptyDir at /tmp, the image in /tmp/...) stays visible.
    let keep_visible = mounts
        .iter()
        .any(|m| image.starts_with(&m.target))
        .then(|| image.to_path_buf());
    Spec {
        argv,
        env: full,
        cwd,
        identity,
        mounts,
        keep_visible,
    }
}

/// An image's ENTRYPOINT, for containers without `command`: `<dir>/entrypoint`, one argument
/// per line (none: the container fails to start, "no command specified").
fn entrypoint(image: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(image.join("entrypoint")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The processes seen in a container so far: signals reach them even when they left its
/// process group (a tool that daemonises), as a container runtime's cgroup would.
#[derive(Default)]
struct Seen(HashSet<memory::Proc>);

impl Seen {
    fn signal(&self, pgid: i32, signal: Signal) {
        process::signal_group(pgid, signal);
        for p in self.0.iter().filter(|p| memory::alive(**p)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), signal);
        }
    }

    /// Samples the container's processes; returns their resident memory.
    async fn sample(&mut self, pgid: i32) -> u64 {
        let mut seen = std::mem::take(&mut self.0);
        let (seen, rss) = tokio::task::spawn_blocking(move || {
            let snap = memory::snapshot(pgid);
            seen.retain(|p| memory::alive(*p));
            seen.extend(snap.procs);
            (seen, snap.rss)
        })
        .await
        .unwrap_or_default();
        self.0 = seen;
        rss
    }
}

/// Waits for the process, killing it over `limit` bytes or when asked.
pub(crate) async fn supervise(
    mut run: Running,
    limit: Option<u64>,
    mut kill: watch::Receiver<Option<Kill>>,
) -> Exit {
    let mut oom = false;
    let mut hard_kill_at: Option<tokio::time::Instant> = None;
    let mut sample = tokio::time::interval(memory::SAMPLE_EVERY);
    let mut seen = Seen::default();
    let pgid = run.pgid;
    let status = loop {
        tokio::select! {
            status = run.child.wait() => break status,
            _ = sample.tick() => {
                let rss = seen.sample(pgid).await;
                if limit.is_some_and(|l| rss > l) {
                    tracing::info!(rss, limit, "memory over the limit: killing the container");
                    oom = true;
                    seen.signal(pgid, Signal::SIGKILL);
                }
            }
            Ok(()) = kill.changed() => match *kill.borrow_and_update() {
                Some(Kill::Term(grace)) => {
                    seen.signal(pgid, Signal::SIGTERM);
                    hard_kill_at.get_or_insert(tokio::time::Instant::now() + grace);
                }
                Some(Kill::Now) => seen.signal(pgid, Signal::SIGKILL),
                None => {}
            },
            () = sleep_until(hard_kill_at), if hard_kill_at.is_some() => {
                seen.signal(pgid, Signal::SIGKILL);
                hard_kill_at = None;
            }
        }
    };
    // What the main process left behind goes with it, as with a container's cgroup.
    seen.signal(pgid, Signal::SIGKILL);
    for pump in run.pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
    }
    let code = match status {
        Ok(s) => process::exit_code(s),
        Err(error) => {
            tracing::warn!(error = %error, "waiting for the container process");
            128
        }
    };
    Exit {
        code: if oom { 137 } else { code },
        oom,
        finished: Timestamp::now(),
    }
}

/// Sleeps until `at`, forever when there is none.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The memory limit of a container, in bytes.
pub(crate) fn memory_limit(c: &Container) -> Option<u64> {
    let limits = c.resources.as_ref()?.limits.as_ref()?;
    memory::parse_quantity(&limits.get("memory")?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_without_command_runs_the_images_entrypoint() {
        let img = tempfile::tempdir().unwrap();
        std::fs::write(img.path().join("entrypoint"), "worker\n--json\n").unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "args": ["run"]}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let s = spec(&pod, c, img.path(), vec![], Default::default(), vec![]);
        assert_eq!(s.argv, ["worker", "--json", "run"]);
    }

    #[test]
    fn image_pull_failure_then_back_off() {
        let CState::Waiting { reason, message } = pull_failure("x:1", 0) else {
            panic!()
        };
        assert_eq!(reason, "ErrImagePull");
        assert!(
            message.starts_with("failed to pull and unpack image \"x:1\"")
                && message.ends_with("not found")
        );
        let CState::Waiting { reason, .. } = pull_failure("x:1", 1) else {
            panic!()
        };
        assert_eq!(reason, "ImagePullBackOff");
    }

    #[test]
    fn spec_puts_the_image_first_on_path_and_expands_args() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "command": ["sh", "-c"], "args": ["echo $(A)"], "workingDir": "/tmp"}]}})).unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let s = spec(
            &pod,
            c,
            Path::new("/img"),
            vec![("A".into(), "1".into())],
            Default::default(),
            vec![],
        );
        assert_eq!(s.argv, ["sh", "-c", "echo 1"]);
        assert_eq!(
            s.env[0],
            (
                "PATH".to_owned(),
                "/img/bin:/usr/local/bin:/usr/bin:/bin".to_owned()
            )
        );
        assert!(s.env.contains(&("HOSTNAME".to_owned(), "p".to_owned())));
        assert_eq!(s.cwd, PathBuf::from("/tmp"));
    }
}
