//! README's "Worker configuration" table is [`ao_core::worker::settings::SETTINGS`], verbatim,
//! so every setting the worker reads is documented with its real default. Run with
//! `UPDATE_README=1` to regenerate it.

use ao_core::worker::settings::{InKubernetes, SETTINGS};

const START: &str = "<!-- worker-settings:start -->";
const END: &str = "<!-- worker-settings:end -->";

fn table() -> String {
    let mut t = String::from(
        "| Variable | Default | Meaning | Kubernetes worker pods |\n|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "(unset)".to_owned()
        } else {
            format!("`{}`", s.default)
        };
        let kube = match s.kubernetes {
            InKubernetes::Copied => "copied from the orchestrator's environment".to_owned(),
            InKubernetes::FromSecret => {
                "`secretKeyRef` to the `--k8s-secret-name` Secret".to_owned()
            }
            InKubernetes::Flag(f) => format!("set with `{f}`"),
            InKubernetes::Image => "not passed (the image's)".to_owned(),
        };
        let secret = if s.secret { " (secret)" } else { "" };
        t.push_str(&format!(
            "| `{}`{secret} | {default} | {} | {kube} |\n",
            s.name, s.help
        ));
    }
    t
}

#[test]
fn readme_documents_every_worker_setting() {
    ao_testkit::readme::check_section(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")),
        START,
        END,
        &format!("{START}\n{}{END}", table()),
        "cargo test -p ao-worker --test readme",
    );
}
