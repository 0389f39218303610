//! A server process whose every log line is kept (JSON lines), killed with its process group
//! on drop.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Run `program args` in `cwd` with only `env`, and wait (up to `wait`) for its
    /// "listening" line (the server must log JSON: `AO_LOG_FORMAT=json`).
    pub fn start(
        program: &Path,
        args: &[&str],
        cwd: &Path,
        env: &[(String, OsString)],
        wait: Duration,
    ) -> Server {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if v["fields"]["message"] == "listening" || v["message"] == "listening" {
                        let addr = v["addr"].as_str().or(v["fields"]["addr"].as_str());
                        let _ = tx.send(addr.unwrap_or_default().to_owned());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut server = Server {
            child,
            base: String::new(),
            log,
        };
        match rx.recv_timeout(wait) {
            Ok(addr) => server.base = format!("http://{addr}"),
            Err(e) => panic!(
                "no \"listening\" line ({e}); output:\n{}",
                server.log().join("\n")
            ),
        }
        server
    }

    /// Every line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The JSON log lines at level WARN.
    pub fn warnings(&self) -> Vec<Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["level"] == "WARN")
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
