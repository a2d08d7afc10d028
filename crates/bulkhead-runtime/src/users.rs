//! Resolution of the `user` string against the container's own `/etc/passwd` and
//! `/etc/group`. The runtime is a static binary (no NSS), and the host's user database
//! is irrelevant to a container anyway.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::RuntimeError;

/// Upper bound on the size of /etc/passwd and /etc/group we are willing to read.
const MAX_DB_SIZE: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn parse_passwd(content: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    content.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn parse_group(content: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    content.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Reads a user database file of the container; a missing file reads as empty. Opened
/// non-blocking and checked to be a regular file so an image cannot make us hang on a FIFO.
pub(crate) fn read_db(path: &Path) -> Result<String, RuntimeError> {
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(RuntimeError::io("open", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| RuntimeError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(RuntimeError::Setup {
            stage: "user lookup".into(),
            reason: format!("{} is not a regular file", path.display()),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_DB_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| RuntimeError::io("read", path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) docker-style: a numeric
/// uid missing from passwd is accepted with gid 0; supplementary groups come from
/// /etc/group membership unless a group is given explicitly. `uid:gid:g1,g2` (an OCI process's user)
/// is taken as given: numeric ids, exactly these supplementary groups.
pub(crate) fn resolve(user: &str, passwd: &str, group: &str) -> Result<ExecUser, RuntimeError> {
    let unknown = |reason: String| RuntimeError::UnknownUser {
        user: user.to_string(),
        reason,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if let Some((gid, groups)) = group_part.and_then(|g| g.split_once(':')) {
        return resolve_oci(user_part, gid, groups, passwd).map_err(unknown);
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = parse_passwd(passwd).find(|e| match numeric_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let (uid, mut gid, home, name) = match (&entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => return Err(unknown("no matching entries in passwd file".into())),
    };
    let mut additional_gids = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => parse_group(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| unknown(format!("no group {g:?} in group file")))?,
            };
        }
        _ => {
            if let Some(name) = name {
                additional_gids = parse_group(group)
                    .filter(|e| e.members.contains(&name) && e.gid != gid)
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// The `uid:gid:g1,g2` form; only the home directory comes from passwd.
fn resolve_oci(uid: &str, gid: &str, groups: &str, passwd: &str) -> Result<ExecUser, String> {
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a numeric id (uid:gid:groups takes numbers)"))
    };
    let uid = number(uid)?;
    let additional_gids = groups
        .split(',')
        .filter(|g| !g.is_empty())
        .map(number)
        .collect::<Result<Vec<_>, _>>()?;
    let home = parse_passwd(passwd)
        .find(|e| e.uid == uid)
        .map_or("/", |e| e.home)
        .to_string();
    Ok(ExecUser {
        uid,
        gid: number(gid)?,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:bob\n";

    #[test]
    fn resolves_forms() {
        let root = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let alice = resolve("alice", PASSWD, GROUP).unwrap();
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.additional_gids, vec![10]);
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap(), alice);
        let custom = resolve("alice:audio", PASSWD, GROUP).unwrap();
        assert_eq!((custom.gid, custom.additional_gids.len()), (29, 0));
        let numeric = resolve("4242:7", PASSWD, GROUP).unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 7));
        assert_eq!(resolve("4242", PASSWD, GROUP).unwrap().gid, 0);
        let oci = resolve("1000:5:10,29", PASSWD, GROUP).unwrap();
        assert_eq!(
            (oci.uid, oci.gid, oci.home.as_str()),
            (1000, 5, "/home/alice")
        );
        assert_eq!(oci.additional_gids, vec![10, 29]);
        let none = resolve("7:7:", PASSWD, GROUP).unwrap();
        assert_eq!((none.home.as_str(), none.additional_gids.len()), ("/", 0));
    }

    #[test]
    fn rejects_unknown() {
        assert!(matches!(
            resolve("nobody", PASSWD, GROUP),
            Err(RuntimeError::UnknownUser { .. })
        ));
        assert!(resolve("alice:nogroup", PASSWD, GROUP).is_err());
        assert!(resolve("alice:1:2", PASSWD, GROUP).is_err());
        assert!(resolve("1:1:wheel", PASSWD, GROUP).is_err());
    }
}
