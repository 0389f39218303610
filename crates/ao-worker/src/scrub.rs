//! Defence in depth against leaking credentials: every string the worker forwards or reports
//! that did not originate in the worker (claude's output and stderr, git's stderr, HTTP error
//! bodies) passes through a [`Scrubber`] that replaces known secret values.

use secrecy::{ExposeSecret, SecretString};

/// Replaces occurrences of known secret values with `[REDACTED]`.
#[derive(Clone, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

/// Secrets shorter than this are not scrubbed (they would mangle ordinary text).
const MIN_LEN: usize = 6;

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = Option<&'a SecretString>>) -> Self {
        let mut s = Scrubber::default();
        for secret in secrets.into_iter().flatten() {
            s.add(secret.expose_secret());
        }
        s
    }

    /// Adds a secret value (and its base64 form as used in HTTP basic auth headers).
    pub fn add(&mut self, value: &str) {
        use base64::Engine;
        if value.len() < MIN_LEN {
            return;
        }
        self.secrets.push(value.to_owned());
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{value}"));
        self.secrets.push(basic);
        // Longest first, so an overlapping shorter secret cannot leave part of a longer one.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[REDACTED]");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_values_and_basic_auth_form() {
        let a = SecretString::from("ghp_abcdef123456");
        let s = Scrubber::new([Some(&a), None]);
        assert_eq!(s.scrub("token=ghp_abcdef123456!"), "token=[REDACTED]!");
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_abcdef123456");
        assert_eq!(s.scrub(&format!("Basic {b}")), "Basic [REDACTED]");
        assert!(!format!("{s:?}").contains("ghp_"));
    }

    #[test]
    fn ignores_tiny_secrets() {
        let a = SecretString::from("ab");
        assert_eq!(Scrubber::new([Some(&a)]).scrub("abc"), "abc");
    }
}
