//! Environment lists, merged the way dockerd merges them: later entries replace earlier ones by key, and a
//! bare `KEY` (no `=`) removes the key. Looking a bare key up in a caller's environment is the front end's
//! business (the docker CLI does it client-side); the engine never reads its own environment for it.

use crate::EngineError;

/// `base` with `overrides` applied in order.
pub fn merge(base: &[String], overrides: &[String]) -> Result<Vec<String>, EngineError> {
    let mut env: Vec<String> = base.to_vec();
    for entry in overrides {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        if key.is_empty() {
            return Err(EngineError::InvalidOption(format!(
                "invalid environment variable {entry:?}: expected KEY=VALUE"
            )));
        }
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        if entry.contains('=') {
            env.push(entry.clone());
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn later_entries_replace_by_key_and_bare_keys_remove() {
        let env = merge(&s(&["A=1", "B=2", "AB=3"]), &s(&["B=3", "C=4", "A"])).unwrap();
        assert_eq!(env, s(&["AB=3", "B=3", "C=4"]));
        assert_eq!(merge(&s(&["A=1"]), &s(&["A=x=y"])).unwrap(), s(&["A=x=y"]));
        assert!(merge(&[], &s(&["=1"])).is_err());
        assert!(merge(&[], &s(&[""])).is_err());
    }
}
