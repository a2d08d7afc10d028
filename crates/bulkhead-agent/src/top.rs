//! docker top: the processes of the container, i.e. those in the pid namespace of its init, read from
//! the agent's /proc (the host's in process mode, the guest's in a VM), in `ps -ef`'s columns.

use bulkhead_proto::introspect::ProcessTable;
use chrono::{DateTime, Datelike, Utc};
use nix::unistd::Pid;
use std::fs;

const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
/// A command line is cut here: the whole table must fit one frame.
const MAX_CMD: usize = 4096;

/// The processes that share `init`'s pid namespace, by pid.
pub fn table(init: Pid) -> Result<ProcessTable, String> {
    let ns_of = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let ns =
        ns_of(&init.to_string()).ok_or_else(|| format!("the container's init ({init}) is gone"))?;
    let clock = Clock::read()?;
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map_err(|e| format!("listing /proc: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let processes = pids
        .into_iter()
        .filter(|pid| ns_of(&pid.to_string()).as_ref() == Some(&ns))
        // A process may end while it is read: it is then left out.
        .filter_map(|pid| row(pid, &clock))
        .collect();
    Ok(ProcessTable {
        titles: TITLES.iter().map(|t| t.to_string()).collect(),
        processes,
    })
}

/// What turns clock ticks into times.
struct Clock {
    hz: u64,
    boot: i64,
    uptime: f64,
    now: DateTime<Utc>,
}

impl Clock {
    fn read() -> Result<Clock, String> {
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let boot = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
            .ok_or("/proc/stat has no btime")?;
        let uptime = fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .ok_or("/proc/uptime is unreadable")?;
        Ok(Clock {
            hz,
            boot,
            uptime,
            now: Utc::now(),
        })
    }
}

fn row(pid: i32, clock: &Clock) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold ") ": the fields follow the last one.
    let (head, tail) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (ppid, tty, utime, stime, start) = (num(1)?, num(4)?, num(11)?, num(12)?, num(19)?);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().nth(1))?
        .to_string();
    let cpu_secs = (utime + stime) / clock.hz;
    let age = clock.uptime - start as f64 / clock.hz as f64;
    let c = if age > 0.0 {
        ((utime + stime) as f64 / clock.hz as f64 * 100.0 / age) as u64
    } else {
        0
    };
    let started = DateTime::from_timestamp(clock.boot + (start / clock.hz) as i64, 0)?;
    Some(vec![
        euid,
        pid.to_string(),
        ppid.to_string(),
        c.to_string(),
        stime_column(started, clock.now),
        tty_name(tty),
        format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs / 60 % 60,
            cpu_secs % 60
        ),
        command(pid, comm),
    ])
}

/// As ps: the time for a process started today, the day for one started this year, else the year.
fn stime_column(started: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if started.date_naive() == now.date_naive() {
        started.format("%H:%M").to_string()
    } else if started.year() == now.year() {
        started.format("%b%d").to_string()
    } else {
        started.format("%Y").to_string()
    }
}

/// `tty_nr` as ps names it: `pts/N`, `ttyN`, or `?` for none.
fn tty_name(tty_nr: u64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        _ => "?".into(),
    }
}

/// The command line, or `[comm]` for a process without one (a kernel thread, a zombie).
fn command(pid: i32, comm: &str) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut cmd: String = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.is_empty() {
        return format!("[{comm}]");
    }
    if cmd.len() > MAX_CMD {
        let mut cut = MAX_CMD;
        while !cmd.is_char_boundary(cut) {
            cut -= 1;
        }
        cmd.truncate(cut);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_listed_with_its_command() {
        let me = std::process::id() as i32;
        let t = table(Pid::from_raw(me)).unwrap();
        assert_eq!(t.titles, TITLES);
        let row = t
            .processes
            .iter()
            .find(|r| r[1] == me.to_string())
            .expect("own pid listed");
        assert_eq!(row[2], nix::unistd::getppid().to_string());
        assert!(row[7].contains("bulkhead_agent"), "{row:?}");
    }

    #[test]
    fn ttys_are_named_as_ps_does() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
    }
}
