//! User-defined networks for tests: a subnet per test process, and a network removed when dropped.

use super::Root;

/// A subnet for this test process: `10.<second>.<pid % 250>.0/24`.
pub fn subnet(second: u8) -> String {
    format!("10.{second}.{}.0/24", std::process::id() % 250)
}

/// A user-defined network, removed with its bridge when dropped (also when the test fails: bridges
/// and their rules are host-global). Containers using it go first (the root's drop comes later).
pub struct Network<'a> {
    root: &'a Root,
    pub name: String,
}

impl<'a> Network<'a> {
    pub fn create(root: &'a Root, prefix: &str, subnet: &str) -> Network<'a> {
        Network::create_with(root, prefix, subnet, &[])
    }

    /// With more `network create` options (`--label`, ...).
    pub fn create_with(root: &'a Root, prefix: &str, subnet: &str, extra: &[&str]) -> Network<'a> {
        let name = format!("{prefix}{}", std::process::id());
        let mut args = vec!["network", "create", "--subnet", subnet];
        args.extend_from_slice(extra);
        args.push(&name);
        root.ok(&args);
        Network { root, name }
    }
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        for id in self.root.all_ids() {
            let _ = self.root.bh(&["rm", "-f", &id]);
        }
        let _ = self.root.bh(&["network", "rm", &self.name]);
    }
}
