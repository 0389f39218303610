//! `tasks list`: an aligned table (plain and wide), filters by status and label, `-o json`.

use crate::common::TestApp;
use crate::{cli, submit};

/// Character offset of each header word in the header line.
fn column_starts(header: &str, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| {
            header
                .find(n)
                .unwrap_or_else(|| panic!("header `{header}` has {n}"))
        })
        .collect()
}

/// Every row has a cell starting exactly at each column start, preceded by padding.
fn assert_aligned(table: &str, names: &[&str]) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let starts = column_starts(header, names);
    assert_eq!(starts[0], 0, "{table}");
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{table}");
    for row in lines {
        let chars: Vec<char> = row.chars().collect();
        for &s in &starts[1..] {
            assert!(chars.len() > s, "row too short for its columns:\n{table}");
            assert!(
                chars[s - 2..s].iter().all(|c| *c == ' ') && chars[s] != ' ',
                "misaligned at {s}:\n{table}"
            );
        }
    }
}

#[tokio::test]
async fn list_shows_an_aligned_filterable_table() {
    let app = TestApp::spawn(&[]).await;
    let a = submit(&app, &["--label", "team=a", "first task"]).await;
    let b = submit(
        &app,
        &[
            "--label",
            "team=b",
            "--env",
            "EXIT=3",
            "second task with a much longer prompt",
        ],
    )
    .await;
    let c = submit(&app, &["--label", "team=a", "third"]).await;
    for id in [&a, &b, &c] {
        app.wait_terminal(id).await;
    }

    let out = cli(&app, &["tasks", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    let cols = ["ID", "STATUS", "REASON", "AGE", "PROMPT"];
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        cols,
        "{out:?}"
    );
    assert_aligned(&out.stdout, &cols);
    // Newest first, with relative ages.
    assert!(
        lines[1].starts_with(&c) && lines[2].starts_with(&b) && lines[3].starts_with(&a),
        "{out:?}"
    );
    let age_at = column_starts(lines[0], &["AGE"])[0];
    for row in &lines[1..] {
        let age: String = row.chars().skip(age_at).collect();
        let (n, rest) = age
            .split_once('s')
            .unwrap_or_else(|| panic!("age in `{row}`"));
        assert!(
            n.parse::<u32>().is_ok_and(|n| n < 60) && rest.starts_with(" ago"),
            "`0s ago`-like age in `{row}`"
        );
    }
    assert!(
        lines[2].contains("failed") && lines[1].contains("succeeded"),
        "{out:?}"
    );

    let failed = cli(&app, &["tasks", "list", "--status", "failed"]).await;
    assert_eq!(failed.code, 0, "{failed:?}");
    let rows: Vec<&str> = failed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failed:?}");
    assert!(rows[0].starts_with(&b), "{failed:?}");

    let team_a = cli(&app, &["tasks", "list", "--label", "team=a", "-o", "json"]).await;
    assert_eq!(team_a.code, 0, "{team_a:?}");
    let ids: Vec<String> = team_a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![c.clone(), a.clone()]);

    // `-o id`: the IDs alone, one a line, for scripts; `get -o id` the one.
    let team_a_ids = cli(&app, &["tasks", "list", "--label", "team=a", "-o", "id"]).await;
    assert_eq!(team_a_ids.code, 0, "{team_a_ids:?}");
    assert_eq!(team_a_ids.stdout, format!("{c}\n{a}\n"));
    let one = cli(&app, &["tasks", "get", &a, "-o", "id"]).await;
    assert_eq!(
        (one.code, one.stdout.as_str()),
        (0, format!("{a}\n").as_str())
    );

    let none = cli(&app, &["tasks", "list", "--label", "team=zzz"]).await;
    assert_eq!(
        (none.code, none.stdout.trim()),
        (0, "No tasks found."),
        "{none:?}"
    );

    let all = cli(&app, &["tasks", "list", "-o", "json"]).await;
    assert_eq!(all.json().as_array().unwrap().len(), 3);

    let wide = cli(&app, &["tasks", "list", "-o", "wide"]).await;
    assert_eq!(wide.code, 0, "{wide:?}");
    let wide_cols = [
        "ID", "STATUS", "REASON", "AGE", "WORKER", "COST", "LABELS", "PROMPT",
    ];
    assert_eq!(
        wide.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        wide_cols
    );
    assert_aligned(&wide.stdout, &wide_cols);
    assert!(wide.stdout.contains("team=b"), "{wide:?}");
    app.stop().await;
}
