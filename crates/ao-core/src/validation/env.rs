//! Which names a task's `env` may set. A task's variables are stored with the task, shown by
//! the API and written into the worker's process environment or pod spec in plain text, and
//! the worker runs an agent with the Anthropic API key and a GitHub token. So a task may not
//! set the worker's own variables, nor pass secrets this way, nor change how the worker's
//! programs load code, trust certificates or route traffic (a proxy plus a CA of the task's
//! choosing would let it read the agent's API traffic).
//!
//! [`RULES`] is the one table: validation and the OpenAPI description both read it.

use std::collections::BTreeMap;

use super::{ValidationError, invalid};

/// Most variables one task may set.
pub const MAX_ENV: usize = 64;
/// Longest variable name, in characters.
pub const MAX_ENV_NAME: usize = 128;
/// Longest variable value, in characters.
pub const MAX_ENV_VALUE: usize = 8 * 1024;
/// What a name must look like (a JSON Schema / ECMA regex, kept equal to [`valid_name`]).
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// How a rule matches an upper-cased variable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The whole name.
    Exact(&'static str),
    /// The name starts with this.
    Prefix(&'static str),
    /// The name ends with this.
    Suffix(&'static str),
    /// The name contains this anywhere.
    Contains(&'static str),
}

impl Match {
    fn matches(self, upper: &str) -> bool {
        match self {
            Match::Exact(s) => upper == s,
            Match::Prefix(s) => upper.starts_with(s),
            Match::Suffix(s) => upper.ends_with(s),
            Match::Contains(s) => upper.contains(s),
        }
    }

    /// The same test as a case-insensitive regex fragment (letters as `[Aa]`).
    fn regex(self) -> String {
        let lit: String = match self {
            Match::Exact(s) | Match::Prefix(s) | Match::Suffix(s) | Match::Contains(s) => s
                .chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c, c.to_ascii_lowercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        };
        match self {
            Match::Exact(_) => format!("^{lit}$"),
            Match::Prefix(_) => format!("^{lit}"),
            Match::Suffix(_) => format!("{lit}$"),
            Match::Contains(_) => lit,
        }
    }
}

/// A family of refused names, with the reason a client is told.
#[derive(Debug)]
pub struct EnvRule {
    /// Stable name of the rule, quoted in the error message.
    pub rule: &'static str,
    /// Why such names are refused, and what to do instead.
    pub message: &'static str,
    /// Names the rule refuses, compared case-insensitively.
    pub names: &'static [Match],
}

use Match::{Contains, Exact, Prefix, Suffix};

/// Every refused name, first matching rule wins.
pub const RULES: &[EnvRule] = &[
    EnvRule {
        rule: "reserved",
        message: "is set by the orchestrator or the worker itself",
        names: &[
            Exact("PATH"),
            Exact("HOME"),
            Exact("TMPDIR"),
            Exact("SHELL"),
            Exact("USER"),
            Exact("LOGNAME"),
            Exact("PWD"),
            Exact("IS_SANDBOX"),
            Prefix("AO_"),
            Prefix("ANTHROPIC_"),
            Prefix("CLAUDE_"),
        ],
    },
    EnvRule {
        rule: "secret",
        message: "looks like a secret; task env is stored and shown in plain text, so secrets are \
                  refused here. Give secrets to workers from the orchestrator's own environment \
                  (`--worker-pass-env NAME`, local runtime) or from the Kubernetes Secret the \
                  pods reference (`--k8s-secret-name`)",
        names: &[
            Suffix("TOKEN"),
            Contains("TOKEN_"),
            Contains("SECRET"),
            Contains("PASSWORD"),
            Contains("PASSWD"),
            Contains("PASSPHRASE"),
            Contains("API_KEY"),
            Contains("APIKEY"),
            Contains("PRIVATE_KEY"),
            Contains("ACCESS_KEY"),
            Contains("CREDENTIAL"),
            Suffix("_PWD"),
            Suffix("_AUTH"),
        ],
    },
    EnvRule {
        rule: "code_loading",
        message: "changes how programs load code or start up, which a task may not control",
        names: &[
            Exact("BASH_ENV"),
            Exact("ENV"),
            Prefix("BASH_FUNC_"),
            Exact("SHELLOPTS"),
            Exact("BASHOPTS"),
            Exact("PROMPT_COMMAND"),
            Exact("PS4"),
            Exact("IFS"),
            Prefix("LD_"),
            Prefix("DYLD_"),
            Exact("GCONV_PATH"),
            Exact("NODE_OPTIONS"),
            Exact("NODE_PATH"),
            Exact("NODE_REPL_EXTERNAL_MODULE"),
            Prefix("NPM_CONFIG_"),
            Exact("PYTHONPATH"),
            Exact("PYTHONSTARTUP"),
            Exact("PYTHONHOME"),
            Exact("PYTHONUSERBASE"),
            Exact("PYTHONINSPECT"),
            Exact("PYTHONBREAKPOINT"),
            Exact("PYTHONWARNINGS"),
            Exact("PYTHONEXECUTABLE"),
            Exact("PYTHONPLATLIBDIR"),
            Exact("PERL5OPT"),
            Exact("PERL5LIB"),
            Exact("PERL5DB"),
            Exact("PERLLIB"),
            Exact("RUBYOPT"),
            Exact("RUBYLIB"),
            Exact("GEM_PATH"),
            Exact("GEM_HOME"),
            Exact("JAVA_TOOL_OPTIONS"),
            Exact("_JAVA_OPTIONS"),
            Exact("JDK_JAVA_OPTIONS"),
            Exact("CLASSPATH"),
            Prefix("LUA_"),
            Exact("OPENSSL_CONF"),
            Exact("OPENSSL_ENGINES"),
            Prefix("GIT_"),
        ],
    },
    EnvRule {
        rule: "certificate_trust",
        message: "changes which certificates programs trust, which a task may not control",
        names: &[
            Prefix("SSL_CERT"),
            Exact("SSLKEYLOGFILE"),
            Exact("REQUESTS_CA_BUNDLE"),
            Exact("CURL_CA_BUNDLE"),
            Exact("AWS_CA_BUNDLE"),
            Exact("PIP_CERT"),
            Exact("CARGO_HTTP_CAINFO"),
            Suffix("_CA_CERTS"),
            Suffix("_CA_BUNDLE"),
            Suffix("_CAINFO"),
            Contains("TLS_REJECT_UNAUTHORIZED"),
        ],
    },
    EnvRule {
        rule: "traffic_routing",
        message: "changes where programs send network traffic, which a task may not control",
        names: &[
            Suffix("_PROXY"),
            Exact("PROXY"),
            Exact("HOSTALIASES"),
            Exact("LOCALDOMAIN"),
            Exact("RES_OPTIONS"),
            Exact("GH_HOST"),
            Exact("PIP_INDEX_URL"),
            Exact("PIP_EXTRA_INDEX_URL"),
        ],
    },
];

/// The rule a name breaks, if any.
pub fn refused_by(name: &str) -> Option<&'static EnvRule> {
    let upper = name.to_ascii_uppercase();
    RULES
        .iter()
        .find(|r| r.names.iter().any(|m| m.matches(&upper)))
}

/// One regex matching every refused name (for the OpenAPI description's `propertyNames`).
pub fn refused_pattern() -> String {
    RULES
        .iter()
        .flat_map(|r| r.names.iter().map(|m| m.regex()))
        .collect::<Vec<_>>()
        .join("|")
}

fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_ENV_NAME
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if env.len() > MAX_ENV {
        return Err(invalid("env", format!("at most {MAX_ENV} variables")));
    }
    for (k, v) in env {
        if !valid_name(k) {
            return Err(invalid(
                format!("env.{k}"),
                format!(
                    "names must match [A-Za-z_][A-Za-z0-9_]* (at most {MAX_ENV_NAME} characters)"
                ),
            ));
        }
        if let Some(rule) = refused_by(k) {
            return Err(invalid(
                format!("env.{k}"),
                format!("{} (rule `{}`)", rule.message, rule.rule),
            ));
        }
        if v.chars().count() > MAX_ENV_VALUE || v.contains('\0') {
            return Err(invalid(
                format!("env.{k}"),
                format!("values are at most {MAX_ENV_VALUE} characters, without NUL"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(name: &str) -> Option<&'static str> {
        refused_by(name).map(|r| r.rule)
    }

    #[test]
    fn secret_looking_names_are_refused() {
        for n in [
            "NPM_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "X_API_KEY",
            "DB_PASSWORD",
            "MYSQL_PASSWD",
            "STRIPE_APIKEY",
            "SSH_PRIVATE_KEY",
            "AWS_ACCESS_KEY_ID",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "DOCKER_CREDENTIAL",
            "GITLAB_TOKEN_FILE",
            "gh_token",
            "db_pwd",
            "NPM_AUTH",
            "GPG_PASSPHRASE",
        ] {
            assert_eq!(rule_of(n), Some("secret"), "{n}");
        }
    }

    #[test]
    fn names_that_change_code_loading_trust_or_routing_are_refused() {
        let code = [
            "BASH_ENV",
            "ENV",
            "env",
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "RUBYOPT",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "ld_preload",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "BASH_FUNC_ls%%",
            "JAVA_TOOL_OPTIONS",
        ];
        for n in code {
            assert_eq!(rule_of(n), Some("code_loading"), "{n}");
        }
        for n in [
            "NODE_EXTRA_CA_CERTS",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "ssl_cert_file",
            "NODE_TLS_REJECT_UNAUTHORIZED",
        ] {
            assert_eq!(rule_of(n), Some("certificate_trust"), "{n}");
        }
        for n in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "NO_PROXY",
            "no_proxy",
            "FTP_PROXY",
        ] {
            assert_eq!(rule_of(n), Some("traffic_routing"), "{n}");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for n in [
            "RUST_LOG",
            "DEBUG",
            "TOKENIZERS_PARALLELISM",
            "MAX_TOKENS",
            "CI",
            "LANG",
            "TZ",
            "FEATURE_FLAG",
            "NODE_ENV",
            "PYTHONUNBUFFERED",
        ] {
            assert_eq!(rule_of(n), None, "{n}");
        }
    }

    #[test]
    fn the_error_names_the_rule_and_how_to_pass_secrets() {
        let e = validate_env(&BTreeMap::from([("NPM_TOKEN".into(), "x".into())])).unwrap_err();
        assert_eq!(e.field, "env.NPM_TOKEN");
        assert!(e.message.contains("rule `secret`"), "{}", e.message);
        assert!(e.message.contains("--worker-pass-env"), "{}", e.message);
        let e = validate_env(&BTreeMap::from([("NODE_OPTIONS".into(), "x".into())])).unwrap_err();
        assert!(
            e.message.contains("changes how programs load code"),
            "{}",
            e.message
        );
        let e = validate_env(&BTreeMap::from([("https_proxy".into(), "x".into())])).unwrap_err();
        assert!(
            e.message.contains("rule `traffic_routing`"),
            "{}",
            e.message
        );
    }
}
