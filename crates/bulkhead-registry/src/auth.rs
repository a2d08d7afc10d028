//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens and basic auth.
//!
//! Distribution registries answer an unauthenticated request with 401 and a challenge.
//! `Basic` means: resend with the user's credentials. `Bearer realm=..,service=..,scope=..`
//! means: fetch a token from the realm (anonymously, or with basic credentials) for the
//! scope and resend with it. Tokens are cached per scope for the lifetime of one client.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

use crate::credentials::Credentials;
use crate::error::RegistryError;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses the challenges of a 401 response; prefers Bearer over Basic when a
    /// registry offers both. Unknown schemes are ignored.
    pub(crate) fn from_headers<'a>(
        headers: impl IntoIterator<Item = &'a str>,
        registry: &str,
    ) -> Result<Option<Challenge>, RegistryError> {
        let mut basic = false;
        for header in headers {
            let header = header.trim();
            let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
            if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            } else if scheme.eq_ignore_ascii_case("bearer") {
                let mut params = parse_params(params).ok_or_else(|| invalid(registry, header))?;
                let realm = params
                    .remove("realm")
                    .ok_or_else(|| invalid(registry, header))?;
                return Ok(Some(Challenge::Bearer {
                    realm,
                    service: params.remove("service"),
                    scope: params.remove("scope"),
                }));
            }
        }
        Ok(basic.then_some(Challenge::Basic))
    }
}

fn invalid(registry: &str, header: &str) -> RegistryError {
    RegistryError::InvalidChallenge {
        registry: registry.to_owned(),
        challenge: header.to_owned(),
    }
}

/// Parses `key="value", key2=value2` (RFC 7235 auth-params); `None` when malformed.
fn parse_params(input: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut rest = input.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => value.push(chars.next()?.1),
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.is_empty() {
            return None;
        }
        params.insert(key, value);
        rest = remaining.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(params)
}

/// Answer of a token endpoint (Docker uses `token`, OAuth2 servers `access_token`).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

/// Authentication state shared by the threads of one pull.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    inner: Mutex<AuthInner>,
}

#[derive(Debug, Default)]
struct AuthInner {
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

/// What to send with the next request for a scope.
pub(crate) enum Authorization {
    None,
    Header(String),
    /// A bearer challenge is known but no token is cached for the scope yet.
    NeedToken(Challenge),
}

impl AuthState {
    pub(crate) fn authorization(
        &self,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Authorization {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match &inner.challenge {
            None => Authorization::None,
            Some(Challenge::Basic) => match credentials {
                Some(c) => Authorization::Header(c.basic_authorization()),
                None => Authorization::None,
            },
            Some(bearer @ Challenge::Bearer { .. }) => match inner.tokens.get(scope) {
                Some(token) => Authorization::Header(format!("Bearer {token}")),
                None => Authorization::NeedToken(bearer.clone()),
            },
        }
    }

    pub(crate) fn set_challenge(&self, challenge: Challenge) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.challenge = Some(challenge);
    }

    pub(crate) fn store_token(&self, scope: &str, token: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tokens.insert(scope.to_owned(), token);
    }

    /// Forgets a token the registry rejected (expired), so the next request refetches.
    pub(crate) fn drop_token(&self, scope: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let challenge = Challenge::from_headers([header], "docker.io").unwrap();
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn parses_basic_unquoted_and_escaped() {
        assert_eq!(
            Challenge::from_headers([r#"Basic realm="Registry Realm""#], "r").unwrap(),
            Some(Challenge::Basic)
        );
        let c = Challenge::from_headers(
            [
                "Basic realm=x",
                r#"Bearer realm=http://h/t , service="a\"b""#,
            ],
            "r",
        )
        .unwrap();
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some("a\"b".into()),
                scope: None
            })
        );
        assert_eq!(
            Challenge::from_headers(["Negotiate abc"], "r").unwrap(),
            None
        );
    }

    #[test]
    fn rejects_bearer_without_realm_or_unterminated() {
        assert!(Challenge::from_headers([r#"Bearer service="x""#], "r").is_err());
        assert!(Challenge::from_headers([r#"Bearer realm="x"#], "r").is_err());
    }

    #[test]
    fn token_cache_is_per_scope() {
        let state = AuthState::default();
        let creds = Credentials::new("u", "p");
        assert!(matches!(
            state.authorization("a", Some(&creds)),
            Authorization::None
        ));
        state.set_challenge(Challenge::Bearer {
            realm: "http://t".into(),
            service: None,
            scope: None,
        });
        assert!(matches!(
            state.authorization("a", None),
            Authorization::NeedToken(_)
        ));
        state.store_token("a", "tok".into());
        assert!(
            matches!(state.authorization("a", None), Authorization::Header(h) if h == "Bearer tok")
        );
        assert!(matches!(
            state.authorization("b", None),
            Authorization::NeedToken(_)
        ));
        state.drop_token("a");
        assert!(matches!(
            state.authorization("a", None),
            Authorization::NeedToken(_)
        ));
        state.set_challenge(Challenge::Basic);
        assert!(
            matches!(state.authorization("a", Some(&creds)), Authorization::Header(h) if h.starts_with("Basic "))
        );
    }
}
