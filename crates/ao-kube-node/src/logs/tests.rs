use super::*;

async fn collect(file: Arc<LogFile>, q: Query) -> String {
    let mut r = Reader::new(file, q);
    let mut out = Vec::new();
    while let Some(chunk) = r.next().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).unwrap()
}

async fn written(dir: &std::path::Path, input: &'static [u8]) -> Arc<LogFile> {
    let (w, f) = LogWriter::create(dir.join("c.log")).await.unwrap();
    pump(input, "stdout", w).await;
    f
}

#[tokio::test]
async fn renders_lines_tail_limit_and_partial_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = written(dir.path(), b"one\ntwo\nthree").await;
    assert_eq!(
        collect(f.clone(), Query::default()).await,
        "one\ntwo\nthree"
    );
    assert_eq!(
        collect(
            f.clone(),
            Query {
                tail_lines: Some(2),
                ..Default::default()
            }
        )
        .await,
        "two\nthree"
    );
    assert_eq!(
        collect(
            f.clone(),
            Query {
                tail_lines: Some(0),
                ..Default::default()
            }
        )
        .await,
        ""
    );
    assert_eq!(
        collect(
            f.clone(),
            Query {
                limit_bytes: Some(5),
                ..Default::default()
            }
        )
        .await,
        "one\nt"
    );
    let ts = collect(
        f.clone(),
        Query {
            timestamps: true,
            ..Default::default()
        },
    )
    .await;
    let first = ts.lines().next().unwrap();
    let (t, rest) = first.split_once(' ').unwrap();
    assert!(t.parse::<Timestamp>().is_ok(), "{first}");
    assert_eq!(rest, "one");
    let future = Timestamp::now() + std::time::Duration::from_secs(60);
    assert_eq!(
        collect(
            f,
            Query {
                since: Some(future),
                ..Default::default()
            }
        )
        .await,
        ""
    );
}

#[tokio::test]
async fn follow_streams_until_the_writer_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (w, f) = LogWriter::create(dir.path().join("c.log")).await.unwrap();
    w.write("stdout", b"early\n").await.unwrap();
    let mut r = Reader::new(
        f,
        Query {
            follow: true,
            ..Default::default()
        },
    );
    assert_eq!(&r.next().await.unwrap().unwrap()[..], b"early\n");
    let later = tokio::spawn(async move {
        w.write("stderr", b"late\n").await.unwrap();
        drop(w);
    });
    let mut rest = Vec::new();
    while let Some(chunk) = r.next().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    later.await.unwrap();
    assert_eq!(rest, b"late\n");
}

#[tokio::test]
async fn tail_message_keeps_the_last_80_lines_and_2048_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input: &'static [u8] = Box::leak(
        (0..100)
            .map(|i| format!("l{i}\n"))
            .collect::<String>()
            .into_bytes()
            .into_boxed_slice(),
    );
    let f = written(dir.path(), input).await;
    let m = tail_message(&f.path).await;
    assert!(m.starts_with("l20\n") && m.ends_with("l99\n"), "{m}");
    let long: &'static [u8] = Box::leak(
        format!("{}\n", "x".repeat(5000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let g = written(dir.path(), long).await;
    assert_eq!(tail_message(&g.path).await.len(), 2048);
}
