//! Memory limits and a container's processes: the byte value of a `resources.limits.memory`
//! quantity, and the processes of a container (its process group and their descendants) with
//! their resident memory, read from `/proc`. The pod task samples it every
//! [`SAMPLE_EVERY`] and kills the group over the limit (reported as `OOMKilled`), which is
//! what the kernel's cgroup OOM killer does for a real kubelet.

use std::time::Duration;

/// How often a container's processes (and their memory) are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Bytes of a Kubernetes quantity (`128Mi`, `1G`, `1.5Gi`, `129e6`, `500m`), rounded up.
pub(crate) fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = (number * factor).ceil();
    (bytes >= 0.0).then_some(bytes as u64)
}

/// One process, with its start time (clock ticks after boot), so that a reused pid is never
/// taken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Proc {
    pub pid: i32,
    pub start: u64,
}

/// The fields of `/proc/<pid>/stat` the node needs.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    ppid: i32,
    pgrp: i32,
    start: u64,
}

/// A container's processes now and their resident memory.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub procs: Vec<Proc>,
    pub rss: u64,
}

/// The processes of a container: its process group and every descendant of a member (so a
/// child that made its own group or session, as a daemonising tool does, still counts).
pub(crate) fn snapshot(pgid: i32) -> Snapshot {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Snapshot::default();
    };
    let all: Vec<(i32, Stat)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect();
    let members = members(&all, pgid);
    let rss = members.iter().filter_map(|p| rss(p.pid)).sum();
    Snapshot {
        procs: members,
        rss,
    }
}

fn members(all: &[(i32, Stat)], pgid: i32) -> Vec<Proc> {
    let mut ids: std::collections::HashSet<i32> = all
        .iter()
        .filter(|(_, s)| s.pgrp == pgid)
        .map(|(pid, _)| *pid)
        .collect();
    loop {
        let before = ids.len();
        for (pid, s) in all {
            if ids.contains(&s.ppid) {
                ids.insert(*pid);
            }
        }
        if ids.len() == before {
            break;
        }
    }
    all.iter()
        .filter(|(pid, _)| ids.contains(pid))
        .map(|(pid, s)| Proc {
            pid: *pid,
            start: s.start,
        })
        .collect()
}

/// Whether `p` still runs (the same process, not a reused pid).
pub(crate) fn alive(p: Proc) -> bool {
    stat(p.pid).is_some_and(|s| s.start == p.start)
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields after `(comm)`: state ppid pgrp session tty tpgid flags ... starttime (the 20th).
fn parse_stat(stat: &str) -> Option<Stat> {
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    let ppid = f.nth(1)?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    let start = f.nth(16)?.parse().ok()?;
    Some(Stat { ppid, pgrp, start })
}

fn rss(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("128Mi"), Some(128 << 20));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("100k"), Some(100_000));
        assert_eq!(parse_quantity("129e6"), Some(129_000_000));
        assert_eq!(parse_quantity("12345"), Some(12345));
        assert_eq!(parse_quantity("1500m"), Some(2));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }

    #[test]
    fn proc_fields() {
        let stat = "42 (a b) c) S 1 77 77 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                ppid: 1,
                pgrp: 77,
                start: 98765
            })
        );
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2 << 20));
    }

    #[test]
    fn members_are_the_group_and_its_descendants() {
        let s = |ppid, pgrp| Stat {
            ppid,
            pgrp,
            start: 1,
        };
        // 10 leads group 10; 11 is in it; 12 (a child of 11) made its own session; 13 is a
        // child of 12; 20 is unrelated.
        let all = [
            (13, s(12, 12)),
            (10, s(1, 10)),
            (11, s(10, 10)),
            (12, s(11, 12)),
            (20, s(1, 20)),
        ];
        let mut pids: Vec<i32> = members(&all, 10).iter().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, [10, 11, 12, 13]);
    }

    #[test]
    fn own_group_has_resident_memory() {
        let pgid = nix::unistd::getpgrp().as_raw();
        let snap = snapshot(pgid);
        assert!(snap.rss > 0);
        let me = snap
            .procs
            .iter()
            .find(|p| p.pid == std::process::id() as i32)
            .copied()
            .expect("this process");
        assert!(alive(me));
        assert!(!alive(Proc {
            pid: me.pid,
            start: me.start + 1
        }));
    }
}
