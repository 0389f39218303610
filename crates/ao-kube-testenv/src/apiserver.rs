//! Extra kube-apiservers on the environment's etcd, with flags of a test's choosing (for
//! example `--watch-cache=false`, so that a watch from an old resourceVersion reaches etcd and
//! gets 410 Gone after a compaction). Each is started once per name by the script.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::TestEnv;
use crate::start::{by_hand, run_script};

/// An extra API server this process has asked for: (flags, url, admin kubeconfig).
type Started = (Vec<String>, String, PathBuf);

/// The extra API servers this process has asked for, by name.
static STARTED: Mutex<BTreeMap<String, Started>> = Mutex::new(BTreeMap::new());

impl TestEnv {
    /// A second kube-apiserver named `name` on this environment's etcd, with the usual flags
    /// followed by `flags` (which win). Started once per name (later calls, and other
    /// processes, get the running one); returns `(server url, admin kubeconfig path)`.
    /// Its log and audit log are `<dir>/apiservers/<name>/apiserver.log` and `audit.log` (not
    /// in [`TestEnv::audit`]). Blocking. Panics when it does not start, or when this process
    /// asks for one name with different flags (the script refuses that across processes).
    pub fn extra_apiserver(&self, name: &str, flags: &[&str]) -> (String, PathBuf) {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((had, url, kubeconfig)) = started.get(name) {
            assert_eq!(
                had, &flags,
                "ao-kube-testenv: extra API server {name:?} was already started with other flags"
            );
            return (url.clone(), kubeconfig.clone());
        }
        let mut args = vec!["apiserver", name];
        args.extend(flags.iter().map(String::as_str));
        let out = run_script(&args).unwrap_or_else(|report| {
            panic!(
                "ao-kube-testenv: extra API server {name:?} did not start.\n{report}\nRun `{}` by hand to see why.",
                by_hand(&args.join(" "))
            )
        });
        let line = out.lines().last().unwrap_or_default();
        let (url, kubeconfig) = line.split_once(' ').unwrap_or_else(|| {
            panic!("ao-kube-testenv: `apiserver {name}` printed {out:?}, not \"URL KUBECONFIG\"")
        });
        let result = (url.to_string(), PathBuf::from(kubeconfig));
        started.insert(
            name.to_string(),
            (flags, result.0.clone(), result.1.clone()),
        );
        result
    }
}
