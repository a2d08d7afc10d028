//! A container's user namespace mapping, so that `cp` shows and writes owners as the container sees
//! them (docker does the same under user namespace remapping): a tar out of the container carries the
//! container's ids, a tar into it is written with the host ids they stand for.

use nix::unistd::Pid;
use std::fs;

/// `uid_map` or `gid_map` lines: (first id inside, first id outside, count).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranges(Vec<(u64, u64, u64)>);

/// The id a process outside sees for an unmapped one (the kernel's overflow id).
const OVERFLOW_ID: u64 = 65534;

impl Ranges {
    fn parse(text: &str) -> Ranges {
        Ranges(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace().map(|n| n.parse().ok());
                    Some((f.next()??, f.next()??, f.next()??))
                })
                .collect(),
        )
    }

    fn is_identity(&self) -> bool {
        self.0.iter().all(|(inside, outside, _)| inside == outside)
    }

    fn to_host(&self, id: u64) -> Option<u64> {
        self.0
            .iter()
            .find(|(inside, _, n)| (*inside..inside.saturating_add(*n)).contains(&id))
            .map(|(inside, outside, _)| outside + (id - inside))
    }

    fn to_container(&self, id: u64) -> u64 {
        self.0
            .iter()
            .find(|(_, outside, n)| (*outside..outside.saturating_add(*n)).contains(&id))
            .map_or(OVERFLOW_ID, |(inside, outside, _)| inside + (id - outside))
    }
}

/// The uid and gid mappings of a container's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    uid: Ranges,
    gid: Ranges,
}

impl IdMaps {
    /// The mappings of `pid`'s user namespace, read from the agent's /proc.
    pub fn of(pid: Pid) -> Result<IdMaps, String> {
        let read = |what| {
            fs::read_to_string(format!("/proc/{pid}/{what}"))
                .map(|t| Ranges::parse(&t))
                .map_err(|e| format!("reading the container's {what}: {e}"))
        };
        Ok(IdMaps {
            uid: read("uid_map")?,
            gid: read("gid_map")?,
        })
    }

    /// Whether ids are the same inside and out (no user namespace of its own).
    pub fn is_identity(&self) -> bool {
        self.uid.is_identity() && self.gid.is_identity()
    }

    /// Host (uid, gid) of a container's; an unmapped id is an error naming it.
    pub fn to_host(&self, uid: u64, gid: u64) -> Result<(u64, u64), String> {
        let uid = self
            .uid
            .to_host(uid)
            .ok_or_else(|| format!("uid {uid} has no mapping in the container's user namespace"))?;
        let gid = self
            .gid
            .to_host(gid)
            .ok_or_else(|| format!("gid {gid} has no mapping in the container's user namespace"))?;
        Ok((uid, gid))
    }

    /// The container's (uid, gid) of a host's, the overflow id for an unmapped one.
    pub fn to_container(&self, uid: u64, gid: u64) -> (u64, u64) {
        (self.uid.to_container(uid), self.gid.to_container(gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways_through_the_ranges() {
        let maps = IdMaps {
            uid: Ranges::parse("         0     100000      65536\n"),
            gid: Ranges::parse("0 200000 10\n"),
        };
        assert!(!maps.is_identity());
        assert_eq!(maps.to_host(0, 5), Ok((100000, 200005)));
        assert!(maps.to_host(0, 10).unwrap_err().contains("gid 10"));
        assert_eq!(maps.to_container(100001, 200000), (1, 0));
        assert_eq!(maps.to_container(0, 0), (OVERFLOW_ID, OVERFLOW_ID));
        assert!(IdMaps::of(Pid::this()).unwrap().is_identity());
    }
}
