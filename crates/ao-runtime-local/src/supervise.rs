//! The supervisor that sits between the orchestrator and a local worker.
//!
//! It runs the worker with its output going to `output.log`, waits for it, and records the
//! exit status in `exit.json` (written atomically). It ignores SIGTERM/SIGINT itself (the
//! orchestrator signals the whole process group, so the worker gets them) and stays to record
//! how the worker ended. It holds no pipe to the orchestrator, so it outlives an orchestrator
//! crash and the next orchestrator can still learn the exit status.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitCode, Stdio};

use ao_core::runtime::ExitInfo;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};

/// What `exit.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl From<ExitRecord> for ExitInfo {
    fn from(r: ExitRecord) -> Self {
        ExitInfo {
            code: r.code,
            signal: r.signal,
            ..Default::default()
        }
    }
}

/// Run `command` for the task folder `dir`; returns the worker's exit code.
pub async fn supervise(dir: &Path, command: &[String]) -> std::io::Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no worker command given"))?;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("output.log"))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn();
    let status = match &mut child {
        Ok(c) => loop {
            tokio::select! {
                s = c.wait() => break s?,
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        },
        Err(e) => {
            // Say why in the task's own output, then record a failure.
            let msg = format!("agent-orchestrator: cannot start worker `{program}`: {e}\n");
            let mut log = OpenOptions::new()
                .append(true)
                .open(dir.join("output.log"))?;
            std::io::Write::write_all(&mut log, msg.as_bytes())?;
            let rec = ExitRecord {
                code: Some(127),
                signal: None,
            };
            write_record(dir, &rec)?;
            return Ok(ExitCode::from(127));
        }
    };
    let rec = ExitRecord {
        code: status.code(),
        signal: status.signal(),
    };
    write_record(dir, &rec)?;
    let code = rec.code.unwrap_or(128 + rec.signal.unwrap_or(0));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn write_record(dir: &Path, rec: &ExitRecord) -> std::io::Result<()> {
    let tmp = dir.join("exit.json.tmp");
    crate::process::write_private(&tmp, &serde_json::to_vec(rec)?)?;
    std::fs::rename(tmp, dir.join("exit.json"))
}
