//! The script a [`super::FakeAnthropic`] plays: what each agent turn answers.

use std::collections::VecDeque;

use serde_json::{Value, json};

/// Token usage reported for one reply (Anthropic's `usage` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Plain input/output usage, no cache tokens.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }

    /// Adds cache write/read token counts.
    pub fn with_cache(mut self, creation: u64, read: u64) -> Self {
        self.cache_creation_input_tokens = creation;
        self.cache_read_input_tokens = read;
        self
    }
}

impl Default for Usage {
    fn default() -> Self {
        Usage::new(1_000, 50)
    }
}

/// One content block of an assistant reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// A tool call; `input` is the tool's JSON input.
    ToolUse {
        name: String,
        input: Value,
    },
}

/// One successful assistant reply. `stop_reason` is `tool_use` if any block is a tool call,
/// else `end_turn`.
///
/// Strings may contain `{name}` placeholders, filled in when the reply is sent: `{cwd}` is the
/// agent's working directory as Claude Code states it in its system prompt, and any variable
/// set with [`super::FakeAnthropic::set_var`] (e.g. `{workspace}`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    pub blocks: Vec<Block>,
    pub usage: Usage,
}

impl Turn {
    pub fn new() -> Self {
        Turn::default()
    }

    /// A reply consisting of one text block.
    pub fn text_only(text: impl Into<String>) -> Self {
        Turn::new().text(text)
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Text(text.into()));
        self
    }

    pub fn tool_use(mut self, name: impl Into<String>, input: Value) -> Self {
        self.blocks.push(Block::ToolUse {
            name: name.into(),
            input,
        });
        self
    }

    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    pub fn stop_reason(&self) -> &'static str {
        if self
            .blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }))
        {
            "tool_use"
        } else {
            "end_turn"
        }
    }
}

/// What the fake answers to one agent request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Turn(Turn),
    /// An HTTP error with Anthropic's error body; the error `type` follows from the status
    /// (400 `invalid_request_error`, 401 `authentication_error`, 429 `rate_limit_error`,
    /// 500 `api_error`, 529 `overloaded_error`, …).
    Error {
        status: u16,
        message: String,
    },
    /// Starts the SSE stream (`message_start`, `ping`) and then never sends anything more.
    Stall,
}

impl Reply {
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Reply::Error {
            status,
            message: message.into(),
        }
    }
}

impl From<Turn> for Reply {
    fn from(t: Turn) -> Self {
        Reply::Turn(t)
    }
}

/// An ordered queue of replies for *agent* requests: `POST /v1/messages` calls that offer
/// tools. Side requests Claude Code makes on its own (titles, summaries; no tools) get a short
/// text reply and do not consume the script. When the queue is empty, the fake answers with
/// [`Script::when_exhausted`] (default: a text turn "Done.").
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) replies: VecDeque<Reply>,
    pub(crate) exhausted: Reply,
    pub(crate) api_key: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            replies: VecDeque::new(),
            exhausted: Reply::Turn(Turn::text_only("Done.")),
            api_key: None,
        }
    }
}

impl Script {
    pub fn new() -> Self {
        Script::default()
    }

    /// Appends a successful turn.
    pub fn turn(self, turn: Turn) -> Self {
        self.reply(Reply::Turn(turn))
    }

    /// Appends any reply.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.replies.push_back(reply);
        self
    }

    /// Appends an HTTP error reply.
    pub fn error(self, status: u16, message: impl Into<String>) -> Self {
        self.reply(Reply::error(status, message))
    }

    /// What to answer once the queue is empty.
    pub fn when_exhausted(mut self, reply: Reply) -> Self {
        self.exhausted = reply;
        self
    }

    /// Require this `x-api-key` (or `Authorization: Bearer`); others get 401.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

/// Anthropic's error `type` for an HTTP status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic's error body.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// Replaces `{name}` placeholders in every string of `value`.
pub(crate) fn render(value: &Value, vars: &[(String, String)]) -> Value {
    match value {
        Value::String(s) => Value::String(render_str(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render(v, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(crate) fn render_str(s: &str, vars: &[(String, String)]) -> String {
    let mut out = s.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}
