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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme.find(START).expect("start marker");
    let end = readme.find(END).expect("end marker") + END.len();
    let block = format!("{START}\n{}{END}", table());
    let updated = format!("{}{}{}", &readme[..start], block, &readme[end..]);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(path, &updated).unwrap();
        return;
    }
    assert!(
        updated == readme,
        "README.md worker settings table is stale; run UPDATE_README=1 cargo test -p ao-worker --test readme"
    );
}
