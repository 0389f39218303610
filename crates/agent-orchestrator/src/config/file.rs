//! The TOML config file of `serve` (`--config` / `AO_CONFIG`), merged into the parser rather
//! than into argv: the file's values replace the built-in defaults of `serve`'s arguments and
//! clap parses the command line once more, with the same value parsers. Precedence stays
//! flag > environment > file > default, and no other subcommand is affected.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config file {path}: unknown key `{key}` (keys are the long option names of `serve`)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("config file {path}: key `{key}` has an unsupported or invalid value")]
    BadValue {
        path: PathBuf,
        key: String,
        #[source]
        source: Option<clap::Error>,
    },
}

/// Why the command line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Usage errors, `--help` and `--version`: clap prints and exits.
    #[error(transparent)]
    Usage(#[from] clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parse `argv`. For `serve`, the TOML file named by `--config` / `AO_CONFIG` supplies the
/// defaults of the options given neither on the command line nor in the environment.
pub fn parse_cli<I, T>(argv: I) -> Result<Cli, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&argv)?;
    // `doctor` takes `serve`'s options, so it reads the same file.
    let (name, config) = match matches.subcommand() {
        Some((name @ ("serve" | "doctor"), serve)) => {
            (name, serve.get_one::<PathBuf>("config").cloned())
        }
        _ => ("", None),
    };
    let Some(path) = config else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let defaults = file_defaults(&path)?;
    let cmd = Cli::command().mut_subcommand(name, |mut serve| {
        for (id, values) in defaults {
            serve = serve.mut_arg(id, |a| a.default_values(values));
        }
        serve
    });
    let matches = cmd.try_get_matches_from(&argv)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// The file's settings as (argument id, values), each value checked by the argument's own
/// parser so that a bad one is reported against the file.
fn file_defaults(path: &std::path::Path) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let cmd = Cli::command();
    let serve = cmd
        .find_subcommand("serve")
        .expect("the serve subcommand exists");
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: key.clone(),
            })?;
        let bad = |source: Option<clap::Error>| ConfigError::BadValue {
            path: path.to_path_buf(),
            key: key.clone(),
            source,
        };
        let values = match value {
            toml::Value::Array(items) => items.into_iter().map(scalar).collect::<Option<Vec<_>>>(),
            v => scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| bad(None))?;
        // The argument alone, parsing each value as it would on the command line.
        let probe = clap::Command::new("serve")
            .no_binary_name(true)
            .arg(arg.clone().env(None::<&str>));
        for v in &values {
            probe
                .clone()
                .try_get_matches_from([format!("--{long}={v}")])
                .map_err(|e| bad(Some(e)))?;
        }
        out.push((arg.get_id().to_string(), values));
    }
    Ok(out)
}

fn scalar(v: toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::config::ServeArgs;

    fn serve(argv: &[&str]) -> ServeArgs {
        match parse_cli(argv).unwrap().command {
            Command::Serve(s) => *s,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn file_fills_what_flags_do_not_give() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "max-concurrency = 7\nmax_queued = 9\nworker-arg = [\"a\", \"b\"]\nrequire-result = true\n",
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let s = serve(&["ao", "serve", "--config", path, "--max-queued", "3"]);
        assert_eq!((s.max_concurrency, s.max_queued), (7, 3));
        assert_eq!(s.worker_args, vec!["a", "b"]);
        assert_eq!(s.require_result, Some(true));
        // A global flag before the subcommand does not hide it.
        let s = serve(&["ao", "--log-format", "json", "serve", "--config", path]);
        assert_eq!((s.max_concurrency, s.max_queued), (7, 9));
        // A repeated flag on the command line replaces the file's list.
        let s = serve(&["ao", "serve", "--config", path, "--worker-arg", "c"]);
        assert_eq!(s.worker_args, vec!["c"]);
    }

    #[test]
    fn other_subcommands_are_never_touched_by_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "max-concurrency = 7\n").unwrap();
        let cli = parse_cli(["ao", "tasks", "submit", "serve"]).unwrap();
        let Command::Tasks(t) = cli.command else {
            panic!("not parsed as tasks")
        };
        assert!(format!("{t:?}").contains("\"serve\""), "{t:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_naming_the_file_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "max-concurency = 7\n").unwrap();
        let path = f.to_str().unwrap();
        let err = parse_cli(["ao", "serve", "--config", path]).unwrap_err();
        assert!(err.to_string().contains("max-concurency"), "{err}");
        std::fs::write(&f, "max-concurrency = \"many\"\n").unwrap();
        let err = parse_cli(["ao", "serve", "--config", path]).unwrap_err();
        assert!(
            matches!(&err, CliError::Config(ConfigError::BadValue { key, .. }) if key == "max-concurrency"),
            "{err}"
        );
    }
}
