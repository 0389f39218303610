//! Running a pod's container as a local process, so an end-to-end test can go through
//! "Kubernetes" with the real worker binary: the program is mapped from the image (or the
//! command's first word), env is resolved like the kubelet does (plain values and
//! `secretKeyRef` from simulated Secrets), each emptyDir mount becomes a temporary directory
//! (env values naming a mount path are rewritten to it), and stdout/stderr become the log.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use crate::Sim;
use crate::kubelet::{End as ContainerEnd, wait_killed};
use crate::logs::LogBuf;
use crate::objects::secret_value;

fn resolve_env(
    sim: &Sim,
    ns: &str,
    pod: &Pod,
    mounts: &[(String, PathBuf)],
) -> Result<Vec<(String, String)>, String> {
    let c = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .ok_or("no container")?;
    let mut out = Vec::new();
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(v.clone())
        } else if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        {
            match secret_value(sim, ns, &r.name, &r.key) {
                Some(v) => Some(v),
                None if r.optional == Some(true) => None,
                None => return Err(format!("secret \"{}\" key \"{}\" not found", r.name, r.key)),
            }
        } else {
            None
        };
        if let Some(mut v) = value {
            if let Some((_, local)) = mounts.iter().find(|(m, _)| *m == v) {
                v = local.display().to_string();
            }
            out.push((e.name.clone(), v));
        }
    }
    Ok(out)
}

pub(crate) async fn run(
    sim: &Sim,
    pod: &Pod,
    logs: &LogBuf,
    mut killed: watch::Receiver<Option<i64>>,
) -> ContainerEnd {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(c) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
        return ContainerEnd::exited(128);
    };
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    let image = c.image.clone().unwrap_or_default();
    let programs = &sim.inner.cfg.programs;
    let program = programs
        .get(&image)
        .or_else(|| argv.first().and_then(|a| programs.get(a)))
        .cloned();
    // The mapped program replaces the command's first word; the rest are its arguments.
    let program = program.or_else(|| argv.first().map(PathBuf::from));
    let Some(program) = program else {
        logs.line(&format!("no program mapped for image {image}"));
        return ContainerEnd::exited(127);
    };
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    let root = std::env::temp_dir().join(format!("ao-kube-sim-{}-{name}", std::process::id()));
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let local = root.join(m.mount_path.trim_start_matches('/').replace('/', "_"));
        let _ = std::fs::create_dir_all(&local);
        mounts.push((m.mount_path.clone(), local));
    }
    let env = match resolve_env(sim, &ns, pod, &mounts) {
        Ok(env) => env,
        Err(e) => {
            logs.line(&format!("CreateContainerConfigError: {e}"));
            return ContainerEnd::exited(128);
        }
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((_, ws)) = mounts
        .iter()
        .find(|(m, _)| c.working_dir.as_deref() == Some(m.as_str()))
    {
        cmd.current_dir(ws);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            logs.line(&format!("failed to start {}: {e}", program.display()));
            return ContainerEnd::exited(128);
        }
    };
    let out = child.stdout.take().map(|s| BufReader::new(s).lines());
    let err = child.stderr.take().map(|s| BufReader::new(s).lines());
    let pump = async {
        let (mut out, mut err) = (out, err);
        loop {
            tokio::select! {
                l = async { match out.as_mut() { Some(o) => o.next_line().await, None => std::future::pending().await } } => match l {
                    Ok(Some(l)) => logs.line(&l),
                    _ => out = None,
                },
                l = async { match err.as_mut() { Some(e) => e.next_line().await, None => std::future::pending().await } } => match l {
                    Ok(Some(l)) => logs.line(&l),
                    _ => err = None,
                },
            }
            if out.is_none() && err.is_none() {
                break;
            }
        }
    };
    let pid = child.id();
    let status = tokio::select! {
        (s, ()) = async { tokio::join!(child.wait(), pump) } => s.ok(),
        grace = wait_killed(&mut killed) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    None
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(&root);
    use std::os::unix::process::ExitStatusExt;
    let code = match status {
        Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
        None => 137,
    };
    ContainerEnd::exited(code)
}
