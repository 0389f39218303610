//! Memory limits: the byte value of a `resources.limits.memory` quantity, and the resident
//! memory of a container's process group read from `/proc`. The pod task samples it every
//! [`SAMPLE_EVERY`] and kills the group over the limit (reported as `OOMKilled`), which is
//! what the kernel's cgroup OOM killer does for a real kubelet.

use std::time::Duration;

/// How often a limited container's memory is sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

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

/// Total resident memory (bytes) of the processes in process group `pgid`.
pub(crate) fn group_rss(pgid: i32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| process_group(*pid) == Some(pgid))
        .filter_map(rss)
        .sum()
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`, after the `(comm)`).
fn process_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_pgrp(&stat)
}

fn parse_pgrp(stat: &str) -> Option<i32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(2)?.parse().ok()
}

fn rss(pid: u32) -> Option<u64> {
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
        assert_eq!(parse_pgrp("42 (a b) c) S 1 77 77 0"), Some(77));
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2 << 20));
    }

    #[test]
    fn own_group_has_resident_memory() {
        let pgid = nix::unistd::getpgrp().as_raw();
        assert!(group_rss(pgid) > 0);
    }
}
