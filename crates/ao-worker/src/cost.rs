//! Cost estimation from token usage, so the worker can enforce `max_budget_usd` while the run
//! is still going (Claude Code's own `total_cost_usd` only arrives with the final result).
//!
//! Prices in US dollars per million tokens (Anthropic list prices):
//!
//! | family                                   | input | output | cache write | cache read |
//! |------------------------------------------|-------|--------|-------------|------------|
//! | Opus 4.5 and later (`claude-opus-4-5`+)  | 5     | 25     | 6.25        | 0.50       |
//! | Opus 4.0/4.1, Claude 3 Opus              | 15    | 75     | 18.75       | 1.50       |
//! | Sonnet (all)                             | 3     | 15     | 3.75        | 0.30       |
//! | Haiku 4.5 and later                      | 1     | 5      | 1.25        | 0.10       |
//! | Claude 3.5 Haiku                         | 0.80  | 4      | 1.00        | 0.08       |
//! | Claude 3 Haiku                           | 0.25  | 1.25   | 0.30        | 0.03       |
//! | unknown model                            | Sonnet prices                            |
//!
//! Cache writes are priced at the 5-minute rate (1.25 × input).

use serde::Deserialize;

/// Per-million-token prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

const fn p(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Prices {
    Prices {
        input,
        output,
        cache_write,
        cache_read,
    }
}

pub const OPUS: Prices = p(5.0, 25.0, 6.25, 0.50);
pub const OPUS_LEGACY: Prices = p(15.0, 75.0, 18.75, 1.50);
pub const SONNET: Prices = p(3.0, 15.0, 3.75, 0.30);
pub const HAIKU: Prices = p(1.0, 5.0, 1.25, 0.10);
pub const HAIKU_3_5: Prices = p(0.80, 4.0, 1.0, 0.08);
pub const HAIKU_3: Prices = p(0.25, 1.25, 0.30, 0.03);

/// Token usage as Anthropic reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    /// All prompt-side tokens: plain input plus cache writes plus cache reads.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    /// Field-wise maximum (usage of one message only grows while it streams).
    pub fn field_max(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.max(o.input_tokens),
            output_tokens: self.output_tokens.max(o.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .max(o.cache_creation_input_tokens),
            cache_read_input_tokens: self.cache_read_input_tokens.max(o.cache_read_input_tokens),
        }
    }

    pub fn plus(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens + o.input_tokens,
            output_tokens: self.output_tokens + o.output_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens
                + o.cache_creation_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens + o.cache_read_input_tokens,
        }
    }
}

/// Prices for a model id such as `claude-sonnet-4-5-20250929` or `claude-opus-4-8[1m]`.
pub fn prices_for(model: &str) -> Prices {
    let m = model.to_ascii_lowercase();
    if m.contains("opus") {
        if m.contains("3-opus") || m.contains("opus-3") {
            return OPUS_LEGACY;
        }
        return match version_after(&m, "opus-") {
            Some((4, minor)) if minor < 5 => OPUS_LEGACY,
            Some((major, _)) if major < 4 => OPUS_LEGACY,
            _ => OPUS,
        };
    }
    if m.contains("haiku") {
        if m.contains("3-5-haiku") {
            return HAIKU_3_5;
        }
        if m.contains("3-haiku") {
            return HAIKU_3;
        }
        return HAIKU;
    }
    SONNET
}

/// `(major, minor)` from `<family>-<major>[-<minor>][-<date>]`; minor 0 when absent.
fn version_after(model: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = &model[model.find(prefix)? + prefix.len()..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .filter(|s| !s.is_empty() && s.len() <= 2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some((major, minor))
}

/// Estimated cost in dollars of `usage` on `model`.
pub fn estimate(model: &str, usage: &TokenUsage) -> f64 {
    let p = prices_for(model);
    let per = |tokens: u64, price: f64| tokens as f64 * price / 1_000_000.0;
    per(usage.input_tokens, p.input)
        + per(usage.output_tokens, p.output)
        + per(usage.cache_creation_input_tokens, p.cache_write)
        + per(usage.cache_read_input_tokens, p.cache_read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(prices_for("claude-opus-4-8[1m]"), OPUS);
        assert_eq!(prices_for("claude-opus-4-5-20251101"), OPUS);
        assert_eq!(prices_for("claude-opus-4-1-20250805"), OPUS_LEGACY);
        assert_eq!(prices_for("claude-opus-4-20250514"), OPUS_LEGACY);
        assert_eq!(prices_for("claude-3-opus-20240229"), OPUS_LEGACY);
        assert_eq!(prices_for("claude-sonnet-4-5"), SONNET);
        assert_eq!(prices_for("claude-haiku-4-5-20251001"), HAIKU);
        assert_eq!(prices_for("claude-3-5-haiku-20241022"), HAIKU_3_5);
        assert_eq!(prices_for("claude-3-haiku-20240307"), HAIKU_3);
        assert_eq!(prices_for("some-new-model"), SONNET);
        assert_eq!(prices_for(""), SONNET);
    }

    #[test]
    fn estimate_matches_claude_code_for_opus() {
        // Claude Code 2.1.190 reported total_cost_usd 0.01875 for this usage on claude-opus-4-8.
        let u = TokenUsage {
            input_tokens: 3000,
            output_tokens: 150,
            ..Default::default()
        };
        assert!((estimate("claude-opus-4-8", &u) - 0.01875).abs() < 1e-9);
    }

    #[test]
    fn cache_tokens_are_priced() {
        let u = TokenUsage {
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
            ..Default::default()
        };
        assert!((estimate("claude-sonnet-4", &u) - (3.75 + 0.30)).abs() < 1e-9);
        assert_eq!(u.total_input(), 2_000_000);
    }
}
