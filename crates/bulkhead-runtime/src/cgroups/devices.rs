//! Which device nodes a container may create and open: Docker's default device rules. Any character
//! or block node may be created (mknod, as Docker allows, so images that ship nodes unpack), but only
//! the standard character devices may be opened; a node of the host's disk made inside the container
//! cannot be read or written. v1 enforces the rules with the `devices` controller, v2 with the
//! program of [`super::device_program`].

/// The kind of a device node, as the kernel's device cgroup checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    Char,
    Block,
}

/// Access bits, as in the v1 `devices.allow` syntax and `BPF_DEVCG_ACC_*`.
pub(crate) const MKNOD: u32 = 1;
pub(crate) const READ: u32 = 2;
pub(crate) const WRITE: u32 = 4;

/// One allow rule; `None` matches any major or minor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

const fn chr(major: u32, minor: Option<u32>) -> DeviceRule {
    DeviceRule {
        kind: DeviceKind::Char,
        major: Some(major),
        minor,
        access: MKNOD | READ | WRITE,
    }
}

/// The rules of a default (unprivileged) container; everything else is denied.
pub(crate) const DEFAULT_RULES: &[DeviceRule] = &[
    DeviceRule {
        kind: DeviceKind::Char,
        major: None,
        minor: None,
        access: MKNOD,
    },
    DeviceRule {
        kind: DeviceKind::Block,
        major: None,
        minor: None,
        access: MKNOD,
    },
    chr(1, Some(3)), // null
    chr(1, Some(5)), // zero
    chr(1, Some(7)), // full
    chr(1, Some(8)), // random
    chr(1, Some(9)), // urandom
    chr(5, Some(0)), // tty
    chr(5, Some(1)), // console
    chr(5, Some(2)), // ptmx
    chr(136, None),  // pts/*
];

impl DeviceRule {
    /// The rule as a line of the v1 `devices.allow` file, e.g. `c 1:3 rwm` or `b *:* m`.
    pub(crate) fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let access: String = [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        format!(
            "{kind} {}:{} {access}",
            number(self.major),
            number(self.minor)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_use_the_kernel_syntax() {
        let lines: Vec<String> = DEFAULT_RULES.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[..3], ["c *:* m", "b *:* m", "c 1:3 rwm"]);
        assert_eq!(lines.last().unwrap(), "c 136:* rwm");
    }
}
