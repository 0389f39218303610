//! Printing tasks and events for people: aligned tables, relative ages, one line per tool call.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Output;

/// `3s ago`, `5m ago`, `2h ago`, `4d ago`.
pub fn age(ts: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
        return "-".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Elapsed time as `1m05s`.
pub fn elapsed(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!(
            "{}…",
            one_line
                .chars()
                .take(max.saturating_sub(1))
                .collect::<String>()
        )
    }
}

/// Render rows as columns padded to the widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

pub fn print_list(tasks: &[Value], output: Output) {
    if output == Output::Id {
        for t in tasks {
            out!("{}", s(&t["id"]));
        }
        return;
    }
    if output == Output::Json {
        out!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(tasks.to_vec())).unwrap_or_default()
        );
        return;
    }
    let now = Utc::now();
    let wide = output == Output::Wide;
    let mut header = vec!["ID", "STATUS", "REASON", "AGE"];
    if wide {
        header.extend(["WORKER", "COST", "LABELS", "PROMPT"]);
    } else {
        header.push("PROMPT");
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let mut r = vec![
                s(&t["id"]),
                s(&t["status"]),
                s(&t["reason"]),
                age(t["created_at"].as_str().unwrap_or(""), now),
            ];
            if wide {
                r.push(s(&t["worker"]["name"]));
                r.push(
                    t["result"]["cost_usd"]
                        .as_f64()
                        .map_or("-".into(), |c| format!("${c:.4}")),
                );
                let labels: Vec<String> = t["labels"].as_object().map_or(vec![], |m| {
                    m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect()
                });
                r.push(if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                });
                r.push(short(t["prompt"].as_str().unwrap_or(""), 60));
            } else {
                r.push(short(t["prompt"].as_str().unwrap_or(""), 40));
            }
            r
        })
        .collect();
    if rows.is_empty() {
        out!("No tasks found.");
    } else {
        out!("{}", table(&header, &rows));
    }
}

pub fn print_task(t: &Value, output: Output) {
    if output == Output::Id {
        out!("{}", s(&t["id"]));
        return;
    }
    if output == Output::Json {
        out!("{}", serde_json::to_string_pretty(t).unwrap_or_default());
        return;
    }
    let now = Utc::now();
    let mut rows: Vec<(&str, String)> = vec![
        ("ID", s(&t["id"])),
        ("Status", s(&t["status"])),
        ("Reason", s(&t["reason"])),
        (
            "Created",
            format!(
                "{} ({})",
                s(&t["created_at"]),
                age(t["created_at"].as_str().unwrap_or(""), now)
            ),
        ),
    ];
    for (k, f) in [("Started", "started_at"), ("Finished", "finished_at")] {
        if let Some(ts) = t[f].as_str() {
            rows.push((k, format!("{ts} ({})", age(ts, now))));
        }
    }
    if t["worker"].is_object() {
        rows.push((
            "Worker",
            format!("{}/{}", s(&t["worker"]["runtime"]), s(&t["worker"]["name"])),
        ));
    }
    if !t["exit_code"].is_null() {
        rows.push(("Exit code", s(&t["exit_code"])));
    }
    if let Some(m) = t["message"].as_str() {
        rows.push(("Message", m.to_string()));
    }
    if let Some(repo) = t["repository"]["url"].as_str() {
        rows.push((
            "Repository",
            format!("{repo} {}", t["repository"]["ref"].as_str().unwrap_or("")),
        ));
    }
    rows.push(("Prompt", short(t["prompt"].as_str().unwrap_or(""), 100)));
    let r = &t["result"];
    if r.is_object() {
        rows.push(("Outcome", s(&r["outcome"])));
        if let Some(e) = r["error"].as_str() {
            rows.push(("Error", short(e, 200)));
        }
        for (k, f) in [
            ("PR", "pr_url"),
            ("Branch", "branch"),
            ("Commit", "commit_sha"),
        ] {
            if let Some(v) = r[f].as_str() {
                rows.push((k, v.to_string()));
            }
        }
        if let Some(c) = r["cost_usd"].as_f64() {
            rows.push(("Cost", format!("${c:.4}")));
        }
        rows.push((
            "Tokens",
            format!(
                "{} in / {} out",
                s(&r["input_tokens"]),
                s(&r["output_tokens"])
            ),
        ));
        rows.push(("Turns", s(&r["num_turns"])));
        if let Some(sum) = r["summary"].as_str() {
            rows.push(("Summary", short(sum, 200)));
        }
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in rows {
        out!("{:<w$} {v}", format!("{k}:"));
    }
}

/// One readable line for an agent event, or nothing for events not worth a line.
pub fn event_line(ev: &Value) -> Vec<String> {
    match ev["type"].as_str() {
        Some("system") if ev["subtype"] == "init" => vec![format!(
            "● session {} · model {}",
            s(&ev["session_id"]),
            s(&ev["model"])
        )],
        Some("assistant") => ev["message"]["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| match b["type"].as_str() {
                        Some("tool_use") => Some(format!(
                            "→ {}: {}",
                            s(&b["name"]),
                            short(&tool_arg(&b["input"]), 80)
                        )),
                        Some("text") => b["text"]
                            .as_str()
                            .filter(|t| !t.trim().is_empty())
                            .map(|t| format!("  {}", short(t, 160))),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some("result") => {
            let cost = ev["total_cost_usd"]
                .as_f64()
                .map_or(String::new(), |c| format!(" · ${c:.4}"));
            let mut lines = vec![format!(
                "■ {} · {} turns{cost}",
                s(&ev["subtype"]),
                s(&ev["num_turns"])
            )];
            if let Some(text) = ev["result"].as_str() {
                lines.push(text.to_string());
            }
            lines
        }
        Some("worker") => ev["phase"]
            .as_str()
            .map_or(vec![], |p| vec![format!("· {p}")]),
        _ => vec![],
    }
}

/// The most telling argument of a tool call.
fn tool_arg(input: &Value) -> String {
    for key in [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ] {
        if let Some(v) = input[key].as_str() {
            return v.to_string();
        }
    }
    input.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_are_relative() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age("2026-01-01T11:59:57Z", now), "3s ago");
        assert_eq!(age("2026-01-01T11:57:00Z", now), "3m ago");
        assert_eq!(age("2026-01-01T09:00:00Z", now), "3h ago");
        assert_eq!(age("2025-12-29T12:00:00Z", now), "3d ago");
        assert_eq!(age("bogus", now), "-");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz    w");
    }

    #[test]
    fn events_render_one_line_per_tool_call() {
        let ev = json!({"type": "assistant", "message": {"content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "name": "Bash", "input": {"command": "git status"}},
            {"type": "tool_use", "name": "Write", "input": {"file_path": "/w/a.txt", "content": "x"}}]}});
        assert_eq!(
            event_line(&ev),
            vec!["  Let me look.", "→ Bash: git status", "→ Write: /w/a.txt"]
        );
        let res = json!({"type": "result", "subtype": "success", "num_turns": 3, "total_cost_usd": 0.5, "result": "Done."});
        assert_eq!(
            event_line(&res),
            vec!["■ success · 3 turns · $0.5000", "Done."]
        );
    }
}
