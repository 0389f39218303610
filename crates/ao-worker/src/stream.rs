//! Understanding Claude Code's `--output-format stream-json` output: one JSON object per line.
//!
//! The worker forwards every line verbatim (unknown types and fields included); this module
//! only extracts what the worker needs to decide the outcome and enforce the budget: the
//! session, per-message token usage, and the final `result` event.

use serde_json::{Value, json};

use crate::cost::{self, TokenUsage};

/// Turns one stdout line into the event to forward: the JSON object itself, or a
/// `{"type":"worker_log","stream":"stdout","line":…}` wrapper for anything else.
pub fn parse_line(line: &str) -> Value {
    match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"type": "worker_log", "stream": "stdout", "line": line}),
    }
}

/// What the final `result` event said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunResult {
    pub subtype: String,
    pub is_error: bool,
    pub num_turns: Option<u32>,
    pub duration_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<TokenUsage>,
    /// `modelUsage` summed over models: Claude Code's per-model totals, with their cost. The
    /// only complete account when Claude Code stops itself (its `usage` is then all zeros).
    pub model_usage: Option<(f64, TokenUsage)>,
    pub session_id: Option<String>,
    /// The agent's final answer (or error text).
    pub text: Option<String>,
    /// Names of the tools whose use was denied.
    pub permission_denials: Vec<String>,
}

/// Accumulates what the stream says about the run.
#[derive(Debug, Clone, Default)]
pub struct RunTracker {
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// Usage per assistant message id, in arrival order. Claude Code emits one `assistant`
    /// event per content block, each repeating the message's usage, so usage is keyed by id.
    messages: Vec<(String, String, TokenUsage)>,
    pub tool_uses: u32,
    pub result: Option<RunResult>,
}

impl RunTracker {
    pub fn observe(&mut self, ev: &Value) {
        match ev["type"].as_str() {
            Some("system") if ev["subtype"] == "init" => {
                self.session_id = str_of(&ev["session_id"]);
                self.model = str_of(&ev["model"]);
            }
            Some("assistant") => self.observe_assistant(&ev["message"]),
            Some("result") => self.result = Some(parse_result(ev)),
            _ => {}
        }
    }

    fn observe_assistant(&mut self, msg: &Value) {
        if let Some(blocks) = msg["content"].as_array() {
            self.tool_uses += blocks.iter().filter(|b| b["type"] == "tool_use").count() as u32;
        }
        let usage: TokenUsage = serde_json::from_value(msg["usage"].clone()).unwrap_or_default();
        let model = str_of(&msg["model"])
            .or_else(|| self.model.clone())
            .unwrap_or_default();
        let id = str_of(&msg["id"]).unwrap_or_else(|| format!("anon-{}", self.messages.len()));
        match self.messages.iter_mut().find(|(i, _, _)| *i == id) {
            Some(entry) => entry.2 = entry.2.field_max(usage),
            None => self.messages.push((id, model, usage)),
        }
    }

    /// Usage summed over the assistant messages seen so far.
    pub fn streamed_usage(&self) -> TokenUsage {
        self.messages
            .iter()
            .fold(TokenUsage::default(), |acc, (_, _, u)| acc.plus(*u))
    }

    /// Cost estimated from the streamed usage and the price table.
    pub fn estimated_cost(&self) -> f64 {
        self.messages
            .iter()
            .map(|(_, model, u)| cost::estimate(model, u))
            .sum()
    }

    /// The run's cost and tokens, from one source so that they agree: Claude Code's own
    /// account in the final `result` event (its per-model `modelUsage`, else `total_cost_usd`
    /// with a non-empty `usage`), else the per-message usage streamed so far and the cost estimated from it with
    /// the price table (a run stopped early, e.g. over budget, has no `result`).
    pub fn account(&self) -> Account {
        let reported = self.result.as_ref().and_then(|r| {
            // A cost next to all-zero usage is no account (Claude Code stopped itself).
            let plain = r.total_cost_usd.zip(r.usage);
            r.model_usage
                .or(plain.filter(|(c, u)| *c == 0.0 || *u != TokenUsage::default()))
        });
        match reported {
            Some((cost_usd, usage)) => Account {
                cost_usd,
                usage,
                source: AccountSource::Result,
            },
            None => Account {
                cost_usd: self.estimated_cost(),
                usage: self.streamed_usage(),
                source: AccountSource::Streamed,
            },
        }
    }

    /// True once the stream said anything about usage or cost.
    pub fn saw_usage(&self) -> bool {
        self.result.is_some() || !self.messages.is_empty()
    }
}

/// Where an [`Account`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSource {
    /// The final `result` event.
    Result,
    /// The assistant messages streamed before the run ended.
    Streamed,
}

/// What a run cost, and the tokens that cost is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Account {
    pub cost_usd: f64,
    pub usage: TokenUsage,
    pub source: AccountSource,
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `{"<model>": {"inputTokens", "outputTokens", "cacheReadInputTokens",
/// "cacheCreationInputTokens", "costUSD"}, …}` summed; `None` when absent or empty.
fn model_usage(v: &Value) -> Option<(f64, TokenUsage)> {
    let models = v.as_object().filter(|m| !m.is_empty())?;
    let n = |m: &Value, k: &str| m[k].as_u64().unwrap_or(0);
    let mut total = (0.0, TokenUsage::default());
    for m in models.values() {
        total.0 += m["costUSD"].as_f64()?;
        total.1 = total.1.plus(TokenUsage {
            input_tokens: n(m, "inputTokens"),
            output_tokens: n(m, "outputTokens"),
            cache_creation_input_tokens: n(m, "cacheCreationInputTokens"),
            cache_read_input_tokens: n(m, "cacheReadInputTokens"),
        });
    }
    Some(total)
}

fn parse_result(ev: &Value) -> RunResult {
    let denials = ev["permission_denials"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["tool_name"].as_str().unwrap_or("unknown").to_owned())
                .collect()
        })
        .unwrap_or_default();
    RunResult {
        subtype: ev["subtype"].as_str().unwrap_or("").to_owned(),
        is_error: ev["is_error"].as_bool().unwrap_or(false),
        num_turns: ev["num_turns"].as_u64().and_then(|n| u32::try_from(n).ok()),
        duration_ms: ev["duration_ms"].as_u64(),
        total_cost_usd: ev["total_cost_usd"].as_f64(),
        usage: serde_json::from_value(ev["usage"].clone()).ok(),
        model_usage: model_usage(&ev["modelUsage"]),
        session_id: str_of(&ev["session_id"]),
        text: ev["result"].as_str().map(str::to_owned),
        permission_denials: denials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t: &mut RunTracker, line: &str) {
        t.observe(&parse_line(line));
    }

    #[test]
    fn non_json_lines_become_worker_logs() {
        assert_eq!(parse_line("hello")["type"], "worker_log");
        assert_eq!(parse_line("hello")["line"], "hello");
        assert_eq!(parse_line("[1,2]")["type"], "worker_log");
        assert_eq!(parse_line(r#"{"type":"mystery","x":1}"#)["x"], 1);
    }

    #[test]
    fn tracks_init_usage_dedup_and_result() {
        let mut t = RunTracker::default();
        obs(
            &mut t,
            r#"{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5","tools":["Bash"]}"#,
        );
        // Two events for the same message (one per content block) must be counted once.
        let a = r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":1000,"output_tokens":1}}}"#;
        let b = r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t","name":"Bash","input":{}}],"usage":{"input_tokens":1000,"output_tokens":1,"cache_read_input_tokens":500}}}"#;
        obs(&mut t, a);
        obs(&mut t, b);
        obs(
            &mut t,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}}"#,
        );
        obs(
            &mut t,
            r#"{"type":"assistant","message":{"id":"m2","content":[],"usage":{"input_tokens":2000,"output_tokens":10}}}"#,
        );
        assert_eq!(t.session_id.as_deref(), Some("s1"));
        assert_eq!(t.tool_uses, 1);
        let u = t.streamed_usage();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (3000, 11, 500)
        );
        assert!(t.result.is_none());
        obs(
            &mut t,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"duration_ms":5,"total_cost_usd":0.5,"usage":{"input_tokens":3000,"output_tokens":60},"session_id":"s1","result":"Done","permission_denials":[{"tool_name":"Bash","tool_use_id":"t","tool_input":{}}],"extra":true}"#,
        );
        let r = t.result.clone().unwrap();
        assert_eq!(r.subtype, "success");
        assert_eq!(r.num_turns, Some(2));
        assert_eq!(r.text.as_deref(), Some("Done"));
        assert_eq!(r.permission_denials, vec!["Bash".to_owned()]);
        let a = t.account();
        assert_eq!(a.source, AccountSource::Result);
        let u = a.usage;
        assert_eq!((u.input_tokens, u.output_tokens), (3000, 60));
        assert_eq!(
            u.cache_read_input_tokens, 0,
            "tokens are the result's, not a mix"
        );
        assert!((a.cost_usd - 0.5).abs() < 1e-9);
    }

    #[test]
    fn tolerates_missing_fields() {
        let mut t = RunTracker::default();
        obs(&mut t, r#"{"type":"assistant"}"#);
        obs(&mut t, r#"{"type":"result"}"#);
        assert_eq!(t.result.as_ref().unwrap().subtype, "");
        assert_eq!(t.account().cost_usd, 0.0);
    }

    #[test]
    fn a_self_stopped_run_is_accounted_from_model_usage() {
        // Claude Code 2.1 on --max-budget-usd: `usage` all zeros, totals in `modelUsage`.
        let mut t = RunTracker::default();
        obs(
            &mut t,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-8","content":[],"usage":{"input_tokens":2000000,"output_tokens":1}}}"#,
        );
        obs(
            &mut t,
            r#"{"type":"result","subtype":"error_max_budget_usd","is_error":true,"total_cost_usd":10.0025,"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0,"cache_creation_input_tokens":0},"modelUsage":{"claude-opus-4-8[1m]":{"inputTokens":2000000,"outputTokens":100,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":10.0025}}}"#,
        );
        let a = t.account();
        assert_eq!(a.source, AccountSource::Result);
        assert_eq!(
            (a.usage.input_tokens, a.usage.output_tokens),
            (2_000_000, 100)
        );
        assert!((a.cost_usd - 10.0025).abs() < 1e-9);
        // Without modelUsage, a cost next to zero usage is no account: the streamed one is.
        let mut r = t.result.clone().unwrap();
        r.model_usage = None;
        t.result = Some(r);
        let a = t.account();
        assert_eq!(a.source, AccountSource::Streamed);
        assert_eq!(a.usage.output_tokens, 1);
    }

    #[test]
    fn cost_and_tokens_come_from_one_account() {
        // The streamed usage of a message is a snapshot from its start (output_tokens 1); the
        // result has the totals. Mixing the two gave a big cost next to 1 output token.
        let mut t = RunTracker::default();
        obs(
            &mut t,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-1","content":[],"usage":{"input_tokens":190000,"output_tokens":1}}}"#,
        );
        let streamed = t.account();
        assert_eq!(streamed.source, AccountSource::Streamed);
        assert_eq!(streamed.usage.output_tokens, 1);
        let expected = cost::estimate("claude-opus-4-1", &streamed.usage);
        assert!((streamed.cost_usd - expected).abs() < 1e-9);
        obs(
            &mut t,
            r#"{"type":"result","subtype":"success","total_cost_usd":2.5,"usage":{"input_tokens":20000,"output_tokens":900}}"#,
        );
        let a = t.account();
        assert_eq!(a.source, AccountSource::Result);
        assert_eq!(a.cost_usd, 2.5);
        let u = a.usage;
        assert_eq!((u.input_tokens, u.output_tokens), (20000, 900));
    }
}
