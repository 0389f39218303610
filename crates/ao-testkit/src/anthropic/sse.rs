//! The Messages API wire format: SSE event sequences and non-streaming message bodies.

use bytes::Bytes;
use serde_json::{Value, json};

use super::script::{Block, Turn, Usage, render, render_str};

/// One `event: …\ndata: …\n\n` frame.
fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn usage_json(u: &Usage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": output_tokens,
    })
}

/// `message_start` (+ `ping`): the prefix of every stream.
pub(crate) fn start_frames(msg_id: &str, model: &str, usage: &Usage) -> Vec<Bytes> {
    let message = json!({
        "id": msg_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": usage_json(usage, 1),
    });
    vec![
        frame(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        ),
        frame("ping", &json!({"type": "ping"})),
    ]
}

/// The full SSE event sequence for a turn.
pub(crate) fn turn_frames(
    msg_id: &str,
    model: &str,
    turn: &Turn,
    vars: &[(String, String)],
) -> Vec<Bytes> {
    let mut out = start_frames(msg_id, model, &turn.usage);
    for (index, block) in turn.blocks.iter().enumerate() {
        let (start, deltas) = match block {
            Block::Text(t) => {
                let t = render_str(t, vars);
                let deltas = chunks(&t, 40)
                    .into_iter()
                    .map(|c| json!({"type": "text_delta", "text": c}))
                    .collect::<Vec<_>>();
                (json!({"type": "text", "text": ""}), deltas)
            }
            Block::ToolUse { name, input } => {
                let input = render(input, vars).to_string();
                let deltas = chunks(&input, 30)
                    .into_iter()
                    .map(|c| json!({"type": "input_json_delta", "partial_json": c}))
                    .collect::<Vec<_>>();
                let id = tool_id(msg_id, index);
                (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    deltas,
                )
            }
        };
        out.push(frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for delta in deltas {
            out.push(frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        out.push(frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(frame(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": turn.usage.output_tokens},
        }),
    ));
    out.push(frame("message_stop", &json!({"type": "message_stop"})));
    out
}

/// The non-streaming response body for a turn.
pub(crate) fn turn_message(
    msg_id: &str,
    model: &str,
    turn: &Turn,
    vars: &[(String, String)],
) -> Value {
    let content: Vec<Value> = turn
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            Block::Text(t) => json!({"type": "text", "text": render_str(t, vars)}),
            Block::ToolUse { name, input } => json!({
                "type": "tool_use", "id": tool_id(msg_id, i), "name": name, "input": render(input, vars),
            }),
        })
        .collect();
    json!({
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": turn.stop_reason(), "stop_sequence": null,
        "usage": usage_json(&turn.usage, turn.usage.output_tokens),
    })
}

fn tool_id(msg_id: &str, index: usize) -> String {
    format!("toolu_{}_{index}", msg_id.trim_start_matches("msg_"))
}

/// Splits on char boundaries into pieces of at most `n` chars (at least one piece).
fn chunks(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_turn_stream_has_standard_sequence() {
        let turn = Turn::new()
            .text("hi")
            .tool_use("Write", json!({"file_path": "{cwd}/a"}));
        let vars = vec![("cwd".to_owned(), "/w".to_owned())];
        let frames: Vec<String> = turn_frames("msg_1", "m", &turn, &vars)
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        let kinds: Vec<&str> = frames.iter().map(|f| f.lines().next().unwrap()).collect();
        assert_eq!(kinds[0], "event: message_start");
        assert_eq!(kinds.last().unwrap(), &"event: message_stop");
        let all = frames.concat();
        assert!(all.contains(r#""stop_reason":"tool_use""#));
        assert!(all.contains("input_json_delta"));
        // Reassemble the partial JSON.
        let json: String = frames
            .iter()
            .filter(|f| f.contains("input_json_delta"))
            .map(|f| {
                let data: Value =
                    serde_json::from_str(f.lines().nth(1).unwrap().trim_start_matches("data: "))
                        .unwrap();
                data["delta"]["partial_json"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"file_path": "/w/a"})
        );
    }
}
