//! HTTP transport to one registry: scheme selection, authentication and retries.
//!
//! Every request goes through [`Client::get`], which answers auth challenges once,
//! retries 429 (honouring `Retry-After`), 5xx and connection failures a bounded
//! number of times with exponential backoff, and maps the final failure to a
//! one-line [`RegistryError`] naming the registry and what was being fetched.
//! Redirects (blob storage backends) are followed; ureq drops the `Authorization`
//! header when following them, so registry tokens never leak to storage hosts.

use std::io::Read;
use std::time::Duration;

use crate::auth::{AuthState, Authorization, Challenge, TokenResponse};
use crate::credentials::Credentials;
use crate::error::RegistryError;

/// Upper bound of a token endpoint's answer.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
/// Backoff never grows beyond this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Bounds of the retries of one request (and of one blob download).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, including the first one (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled for every further one (capped at 10 s).
    pub backoff: Duration,
    /// Longest `Retry-After` of a 429 answer that is honoured; longer ones are clamped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based count of failed attempts).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.max(1)
    }
}

/// Client of one registry host.
pub(crate) struct Client {
    agent: ureq::Agent,
    registry: String,
    base_url: String,
    credentials: Option<Credentials>,
    auth: AuthState,
    retry: RetryPolicy,
}

impl Client {
    /// `registry` is the registry part of a reference (`docker.io`, `localhost:5000`).
    pub(crate) fn new(
        registry: &str,
        insecure_registries: &[String],
        credentials: Option<Credentials>,
        retry: RetryPolicy,
    ) -> Self {
        let scheme = if is_plain_http(registry, insecure_registries) {
            "http"
        } else {
            "https"
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(60))
            .redirects(10)
            .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            registry: registry.to_owned(),
            base_url: format!("{scheme}://{}", api_host(registry)),
            credentials,
            auth: AuthState::default(),
            retry,
        }
    }

    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// GETs `/v2/{path}`. `scope` is the token scope the request needs
    /// (`repository:NAME:pull`), `None` for the API version check.
    pub(crate) fn get(
        &self,
        path: &str,
        accept: &[&str],
        scope: Option<&str>,
        what: &str,
    ) -> Result<ureq::Response, RegistryError> {
        let url = format!("{}/v2/{path}", self.base_url);
        let scope_key = scope.unwrap_or_default();
        let mut failures = 0u32;
        let mut reauthenticated = false;
        loop {
            let mut request = self.agent.get(&url);
            if !accept.is_empty() {
                request = request.set("Accept", &accept.join(", "));
            }
            match self
                .auth
                .authorization(scope_key, self.credentials.as_ref())
            {
                Authorization::None => {}
                Authorization::Header(value) => request = request.set("Authorization", &value),
                Authorization::NeedToken(challenge) => {
                    let token = self.fetch_token(&challenge, scope, what)?;
                    request = request.set("Authorization", &format!("Bearer {token}"));
                    self.auth.store_token(scope_key, token);
                }
            }
            let delay = match request.call() {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(401, response)) if !reauthenticated => {
                    reauthenticated = true;
                    let challenge = Challenge::from_headers(response.all("www-authenticate"), &self.registry)?
                        .ok_or_else(|| self.auth_failed(what, "the registry requires authentication but offers no supported scheme (Basic or Bearer)"))?;
                    if challenge == Challenge::Basic && self.credentials.is_none() {
                        return Err(self.auth_failed(
                            what,
                            "the registry requires credentials; run `bulkhead login`",
                        ));
                    }
                    self.auth.drop_token(scope_key);
                    self.auth.set_challenge(challenge);
                    continue;
                }
                Err(ureq::Error::Status(401, _)) => {
                    let reason = if self.credentials.is_some() {
                        "credentials rejected or not authorised for this repository"
                    } else {
                        "anonymous access denied (the repository may not exist or may require `bulkhead login`)"
                    };
                    return Err(self.auth_failed(what, reason));
                }
                Err(ureq::Error::Status(403, _)) => {
                    return Err(RegistryError::Denied {
                        registry: self.registry.clone(),
                        what: what.to_owned(),
                    })
                }
                Err(ureq::Error::Status(404, _)) => {
                    return Err(RegistryError::NotFound {
                        registry: self.registry.clone(),
                        what: what.to_owned(),
                    })
                }
                Err(ureq::Error::Status(429, response)) => {
                    failures += 1;
                    if failures >= self.retry.attempts() {
                        return Err(RegistryError::RateLimited {
                            registry: self.registry.clone(),
                            what: what.to_owned(),
                            attempts: failures,
                        });
                    }
                    retry_after(&response)
                        .unwrap_or_else(|| self.retry.backoff(failures))
                        .min(self.retry.max_retry_after)
                }
                Err(ureq::Error::Status(status, _)) if status >= 500 => {
                    failures += 1;
                    if failures >= self.retry.attempts() {
                        return Err(RegistryError::ServerError {
                            registry: self.registry.clone(),
                            what: what.to_owned(),
                            status,
                            attempts: failures,
                        });
                    }
                    self.retry.backoff(failures)
                }
                Err(ureq::Error::Status(status, _)) => {
                    return Err(RegistryError::UnexpectedStatus {
                        registry: self.registry.clone(),
                        what: what.to_owned(),
                        status,
                    })
                }
                Err(ureq::Error::Transport(transport)) => {
                    failures += 1;
                    if failures >= self.retry.attempts() {
                        return Err(RegistryError::Connection {
                            registry: self.registry.clone(),
                            what: what.to_owned(),
                            attempts: failures,
                            reason: transport.to_string(),
                        });
                    }
                    self.retry.backoff(failures)
                }
            };
            tracing::debug!(registry = %self.registry, %what, ?delay, failures, "retrying request");
            std::thread::sleep(delay);
        }
    }

    fn fetch_token(
        &self,
        challenge: &Challenge,
        scope: Option<&str>,
        what: &str,
    ) -> Result<String, RegistryError> {
        let Challenge::Bearer {
            realm,
            service,
            scope: challenge_scope,
        } = challenge
        else {
            return Err(self.auth_failed(what, "no bearer challenge to answer"));
        };
        let invalid = |reason: String| RegistryError::InvalidToken {
            registry: self.registry.clone(),
            realm: realm.clone(),
            reason,
        };
        let mut request = self.agent.get(realm);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        if let Some(scope) = scope.or(challenge_scope.as_deref()) {
            request = request.query("scope", scope);
        }
        if let Some(credentials) = &self.credentials {
            request = request
                .query("account", &credentials.username)
                .set("Authorization", &credentials.basic_authorization());
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(status @ (401 | 403), _)) => {
                let reason = if self.credentials.is_some() {
                    format!("token server {realm} refused the credentials (HTTP {status})")
                } else {
                    format!("token server {realm} refused anonymous access (HTTP {status}); run `bulkhead login`")
                };
                return Err(self.auth_failed(what, &reason));
            }
            Err(ureq::Error::Status(status, _)) => {
                return Err(invalid(format!("HTTP {status}")));
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(RegistryError::Connection {
                    registry: self.registry.clone(),
                    what: format!("token from {realm} for {what}"),
                    attempts: 1,
                    reason: transport.to_string(),
                })
            }
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_TOKEN_RESPONSE)
            .read_to_end(&mut body)
            .map_err(|e| invalid(e.to_string()))?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        parsed
            .into_token()
            .ok_or_else(|| invalid("no token in response".to_owned()))
    }

    fn auth_failed(&self, what: &str, reason: &str) -> RegistryError {
        RegistryError::AuthFailed {
            registry: self.registry.clone(),
            what: what.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Plain HTTP for loopback registries and those the user listed as insecure.
fn is_plain_http(registry: &str, insecure_registries: &[String]) -> bool {
    let host = host_without_port(registry);
    matches!(host, "localhost" | "127.0.0.1" | "::1")
        || insecure_registries
            .iter()
            .any(|r| r == registry || r == host)
}

fn host_without_port(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(host, _)| host)
}

/// Docker Hub's API is not served on its reference name.
fn api_host(registry: &str) -> &str {
    match registry {
        bulkhead_image::DEFAULT_REGISTRY | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// `Retry-After` in seconds (the HTTP-date form falls back to the backoff).
fn retry_after(response: &ureq::Response) -> Option<Duration> {
    response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_use_plain_http() {
        let insecure = vec!["reg.lan:5000".to_owned(), "other.lan".to_owned()];
        assert!(is_plain_http("localhost:5000", &[]));
        assert!(is_plain_http("127.0.0.1:41234", &[]));
        assert!(is_plain_http("[::1]:5000", &[]));
        assert!(is_plain_http("reg.lan:5000", &insecure));
        assert!(is_plain_http("other.lan:443", &insecure));
        assert!(!is_plain_http("reg.lan:6000", &insecure));
        assert!(!is_plain_http("docker.io", &insecure));
        assert!(!is_plain_http("localhost.evil.com", &[]));
    }

    #[test]
    fn docker_hub_api_host() {
        let client = Client::new("docker.io", &[], None, RetryPolicy::default());
        assert_eq!(client.base_url, "https://registry-1.docker.io");
        let local = Client::new("localhost:5000", &[], None, RetryPolicy::default());
        assert_eq!(local.base_url, "http://localhost:5000");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(500));
        assert_eq!(policy.backoff(2), Duration::from_secs(1));
        assert_eq!(policy.backoff(3), Duration::from_secs(2));
        assert_eq!(policy.backoff(40), MAX_BACKOFF);
    }
}
