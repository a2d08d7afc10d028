//! Docker's two mount syntaxes, `-v` and `--mount`, parsed into one request type. Nothing here touches
//! the filesystem: the engine creates volumes and bind sources only once the whole container
//! definition is valid, so bad input leaves nothing behind.

use super::validate_name;
use crate::EngineError;
use std::path::PathBuf;

/// One mount as the caller asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// A host path. `-v` creates a missing directory (as docker does); `--mount` requires it to exist.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        create_source: bool,
    },
    /// A named volume, or an anonymous one (`name: None`), created on first use. `copy`: an empty
    /// volume gets the image's content at the target.
    Volume {
        name: Option<String>,
        target: String,
        readonly: bool,
        copy: bool,
    },
    Tmpfs {
        target: String,
        options: String,
    },
}

impl Requested {
    pub fn target(&self) -> &str {
        match self {
            Requested::Bind { target, .. }
            | Requested::Volume { target, .. }
            | Requested::Tmpfs { target, .. } => target,
        }
    }
}

fn invalid(flag: &str, value: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidOption(format!("invalid {flag} {value}: {why}"))
}

fn check_target(flag: &str, value: &str, target: &str) -> Result<(), EngineError> {
    if !target.starts_with('/') || target == "/" {
        return Err(invalid(
            flag,
            value,
            format!("the container path {target:?} must be absolute and not /"),
        ));
    }
    Ok(())
}

/// `-v /path` (anonymous volume), `-v NAME:/path[:OPTS]` (named volume) or `-v /host:/path[:OPTS]`
/// (bind), where OPTS is a comma list of `ro`, `rw` and `nocopy`.
pub fn parse_volume(v: &str) -> Result<Requested, EngineError> {
    let flag = "volume";
    let parts: Vec<&str> = v.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, o] => (Some(*s), *t, *o),
        _ => {
            return Err(invalid(
                flag,
                v,
                "expected [SOURCE:]CONTAINER-PATH[:OPTIONS]",
            ))
        }
    };
    check_target(flag, v, target)?;
    let (mut readonly, mut copy) = (false, true);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => copy = false,
            other => {
                return Err(invalid(
                    flag,
                    v,
                    format!("unknown option {other:?} (use ro, rw or nocopy)"),
                ))
            }
        }
    }
    match source {
        Some(s) if s.starts_with('/') => {
            if !copy {
                return Err(invalid(flag, v, "nocopy applies to volumes, not binds"));
            }
            Ok(Requested::Bind {
                source: PathBuf::from(s),
                target: target.to_string(),
                readonly,
                create_source: true,
            })
        }
        Some(name) => {
            validate_name(name).map_err(|why| invalid(flag, v, why))?;
            Ok(Requested::Volume {
                name: Some(name.to_string()),
                target: target.to_string(),
                readonly,
                copy,
            })
        }
        None => Ok(Requested::Volume {
            name: None,
            target: target.to_string(),
            readonly,
            copy,
        }),
    }
}

/// `--mount type=volume|bind|tmpfs,source=,target=,readonly,...` with docker's keys and aliases
/// (`src`, `dst`, `destination`, `ro`, `volume-nocopy`, `tmpfs-size`, `tmpfs-mode`).
pub fn parse_mount(m: &str) -> Result<Requested, EngineError> {
    let flag = "mount";
    let (mut kind, mut source, mut target) = ("volume", None::<&str>, None::<&str>);
    let (mut readonly, mut copy) = (false, true);
    let (mut size, mut mode) = (None::<&str>, None::<&str>);
    let boolean = |key: &str, value: Option<&str>| match value {
        None | Some("1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(other) => Err(invalid(
            flag,
            m,
            format!("{key}={other}: expected true or false"),
        )),
    };
    for field in m.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let needs = || value.ok_or_else(|| invalid(flag, m, format!("{key} needs a value")));
        match key {
            "type" => kind = needs()?,
            "source" | "src" => source = Some(needs()?),
            "target" | "destination" | "dst" => target = Some(needs()?),
            "readonly" | "ro" => readonly = boolean(key, value)?,
            "volume-nocopy" => copy = !boolean(key, value)?,
            "tmpfs-size" => size = Some(needs()?),
            "tmpfs-mode" => mode = Some(needs()?),
            other => {
                return Err(invalid(flag, m, format!("unknown key {other:?}")));
            }
        }
    }
    let target = target
        .ok_or_else(|| invalid(flag, m, "target is required (target=/path)"))?
        .to_string();
    check_target(flag, m, &target)?;
    let tmpfs_only = size.is_some() || mode.is_some();
    if tmpfs_only && kind != "tmpfs" {
        return Err(invalid(
            flag,
            m,
            "tmpfs-size and tmpfs-mode need type=tmpfs",
        ));
    }
    if !copy && kind != "volume" {
        return Err(invalid(flag, m, "volume-nocopy needs type=volume"));
    }
    match kind {
        "volume" => {
            if let Some(name) = source {
                validate_name(name).map_err(|why| invalid(flag, m, why))?;
            }
            Ok(Requested::Volume {
                name: source.map(str::to_string),
                target,
                readonly,
                copy,
            })
        }
        "bind" => {
            let source =
                source.ok_or_else(|| invalid(flag, m, "a bind needs source=/host/path"))?;
            if !source.starts_with('/') {
                return Err(invalid(
                    flag,
                    m,
                    format!("bind source {source:?} must be an absolute host path"),
                ));
            }
            Ok(Requested::Bind {
                source: PathBuf::from(source),
                target,
                readonly,
                create_source: false,
            })
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(invalid(flag, m, "a tmpfs takes no source"));
            }
            let mut options = Vec::new();
            if let Some(size) = size {
                if size.is_empty()
                    || !size
                        .trim_end_matches(['k', 'm', 'g'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                {
                    return Err(invalid(
                        flag,
                        m,
                        format!("tmpfs-size={size}: expected a size such as 64m"),
                    ));
                }
                options.push(format!("size={size}"));
            }
            if let Some(mode) = mode {
                if u32::from_str_radix(mode, 8).map_or(true, |v| v > 0o7777) {
                    return Err(invalid(
                        flag,
                        m,
                        format!("tmpfs-mode={mode}: expected an octal mode"),
                    ));
                }
                options.push(format!("mode={mode}"));
            }
            if readonly {
                options.push("ro".to_string());
            }
            Ok(Requested::Tmpfs {
                target,
                options: options.join(","),
            })
        }
        other => Err(invalid(
            flag,
            m,
            format!("type={other} is not one of volume, bind, tmpfs"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flag_forms() {
        assert!(matches!(
            parse_volume("/data").unwrap(),
            Requested::Volume { name: None, .. }
        ));
        assert_eq!(
            parse_volume("db:/var/lib/db:ro,nocopy").unwrap(),
            Requested::Volume {
                name: Some("db".into()),
                target: "/var/lib/db".into(),
                readonly: true,
                copy: false
            }
        );
        assert!(matches!(
            parse_volume("/srv:/srv:ro").unwrap(),
            Requested::Bind {
                readonly: true,
                create_source: true,
                ..
            }
        ));
        for bad in ["a/b:/x", "db:rel", "db:/", "db:/x:z", "a:b:c:d", "-x:/y"] {
            let err = parse_volume(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn mount_flag_forms() {
        assert_eq!(
            parse_mount("type=volume,src=db,dst=/db,ro").unwrap(),
            Requested::Volume {
                name: Some("db".into()),
                target: "/db".into(),
                readonly: true,
                copy: true
            }
        );
        assert!(matches!(
            parse_mount("target=/anon").unwrap(),
            Requested::Volume { name: None, .. }
        ));
        assert_eq!(
            parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap(),
            Requested::Tmpfs {
                target: "/t".into(),
                options: "size=64m,mode=1770".into()
            }
        );
        assert!(matches!(
            parse_mount("type=bind,source=/srv,target=/srv,readonly=true").unwrap(),
            Requested::Bind {
                readonly: true,
                create_source: false,
                ..
            }
        ));
        for (bad, names) in [
            ("type=nope,target=/x", "type=nope"),
            ("type=volume,source=db", "target is required"),
            ("type=bind,target=/x", "source"),
            ("type=bind,source=rel,target=/x", "\"rel\""),
            ("type=volume,source=a/b,target=/x", "a/b"),
            ("type=tmpfs,target=/x,tmpfs-mode=99", "tmpfs-mode=99"),
            ("type=volume,target=/x,tmpfs-size=1m", "tmpfs-size"),
            ("type=volume,target=/x,colour=red", "colour"),
            ("type=volume,target=/x,ro=maybe", "ro=maybe"),
        ] {
            let err = parse_mount(bad).unwrap_err().to_string();
            assert!(err.contains(names), "{bad}: {err}");
        }
    }
}
