//! Docker's rule for the names users give containers, networks and volumes.

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and at most `max_len` bytes: never empty, never a path.
pub(crate) fn is_valid(name: &str, max_len: usize) -> bool {
    name.len() <= max_len
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}
