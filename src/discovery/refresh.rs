//! The background task that keeps the authorization server snapshot fresh.
//!
//! A good fetch is offered to the snapshot (swapped only if the bytes changed); a failed one
//! leaves the last good document in service and is retried with exponential backoff, capped at
//! the refresh period. Logs are written when the state changes, not on every attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::discovery::metadata::Fetcher;
use crate::discovery::snapshot::Snapshots;
use crate::gate::tokens::{TokenChecker, Unusable};
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;

/// What one resource's refresh task works on: handed the parts it updates, never the state.
pub struct Refresh {
    pub fetcher: Fetcher,
    pub period: Duration,
    pub snapshots: Arc<Snapshots>,
    /// The token check whose keys (or endpoint) come with the metadata; `None` in presence
    /// mode and without an upstream.
    pub checker: Option<Arc<TokenChecker>>,
    pub metrics: Arc<Metrics>,
    /// The configured scopes, checked against the server's `scopes_supported`.
    pub scopes: Vec<String>,
    /// The scopes the MCP policy's rules require: a first document whose `scopes_supported`
    /// lacks one stops the configuration (start-up or reload).
    pub policy_scopes: Vec<String>,
    /// The resource's URL when the edge has several, to say whose documents a line is about.
    pub label: Option<String>,
}

/// Refreshes one resource's documents until `shutdown` fires. The first fetch starts at once.
/// Ends early, with the reason, when the first good document cannot support the token check:
/// the edge could never let a request through, so it stops rather than look healthy.
pub async fn run(task: Refresh, mut shutdown: Shutdown, serving: Arc<AtomicBool>) -> Result<(), Unusable> {
    let Refresh { fetcher, period, snapshots, checker, metrics, scopes, policy_scopes, label } = task;
    let checker = checker.as_deref();
    let first_retry = period.min(Duration::from_secs(1));
    let mut retry = first_retry;
    // The failure last logged; `None` while healthy.
    let mut failing: Option<String> = None;
    let mut loaded = false;
    let (mut keys_ok, mut keys_warned) = (false, false);
    loop {
        let outcome = tokio::select! {
            outcome = fetcher.fetch() => outcome,
            _ = shutdown.wait() => return Ok(()),
        };
        // With several resources, each line says whose documents it is about; while a reload
        // is primed, that it is about the new configuration, not the one in service.
        let priming = !serving.load(Ordering::Relaxed);
        let whose = match (&label, priming) {
            (None, false) => String::new(),
            (None, true) => "[new configuration] ".to_string(),
            (Some(resource), false) => format!("[{resource}] "),
            (Some(resource), true) => format!("[new configuration, {resource}] "),
        };
        // A document without what the token check needs is refused like an invalid one.
        let outcome = match (outcome, checker) {
            (Ok(fetched), Some(v)) => match v.requirement(fetched.metadata.offered()) {
                Ok(()) => Ok(fetched),
                Err(reason) if !loaded => {
                    crate::error!("{whose}{reason}; stopping");
                    return Err(reason);
                }
                Err(reason) => Err(reason.to_string()),
            },
            (outcome, _) => outcome.map_err(|e| e.to_string()),
        };
        // SECURITY of the configuration, not of a request: a policy whose rules need scopes the
        // server cannot issue would deny those operations forever; say so at once. Checked on
        // the first document only: a running edge keeps serving if the server later drops one.
        if let (Ok(fetched), false) = (&outcome, loaded) {
            let unlisted = fetched.metadata.unlisted_scopes(&policy_scopes);
            if !unlisted.is_empty() {
                let reason = Unusable::UnlistedPolicyScopes(unlisted.into_iter().map(String::from).collect());
                crate::error!("{whose}{reason}; stopping");
                return Err(reason);
            }
            if !policy_scopes.is_empty() && fetched.metadata.scopes_supported.is_none() {
                crate::info!(
                    "{whose}the authorization server lists no scopes_supported; the policy's scopes cannot be checked against it"
                );
            }
        }
        let wait = match outcome {
            Ok(fetched) => {
                let changed = snapshots.offer(fetched.body.clone());
                if let Some(checker) = checker {
                    // The JWKS is refreshed with the metadata, so rotated keys are picked up
                    // within one period (an unknown kid also triggers a refetch on demand).
                    let needs = checker.needs();
                    let taken = checker.refresh(fetched.metadata.offered()).await;
                    if checker.uses_keys() {
                        metrics.jwks_fetched(taken.is_ok());
                    }
                    match taken {
                        Ok(()) if !keys_ok => {
                            crate::info!("{whose}{needs} loaded; tokens can be checked");
                            keys_ok = true;
                        }
                        Ok(()) => {}
                        Err(e) if keys_ok || !keys_warned => {
                            crate::warn!("{whose}{needs} not loaded, tokens cannot be checked until it is: {e}");
                            keys_ok = false;
                            keys_warned = true;
                        }
                        Err(_) => {}
                    }
                }
                if changed {
                    let unlisted = fetched.metadata.unlisted_scopes(&scopes);
                    if !unlisted.is_empty() {
                        crate::warn!(
                            "{whose}scopes {unlisted:?} are not in the authorization server's scopes_supported; \
                             clients that register with them may be refused"
                        );
                    }
                }
                metrics.refresh_succeeded(changed);
                if !loaded {
                    crate::info!("{whose}authorization server metadata loaded; ready");
                } else if failing.is_some() {
                    crate::info!("{whose}authorization server metadata fetched again; refresh recovered");
                } else if changed {
                    crate::info!("{whose}authorization server metadata changed; new snapshot in service");
                }
                loaded = true;
                failing = None;
                retry = first_retry;
                period
            }
            Err(message) => {
                metrics.refresh_failed();
                if failing.as_deref() != Some(message.as_str()) {
                    if loaded {
                        crate::warn!("{whose}metadata refresh failed, still serving the last good document: {message}");
                    } else {
                        crate::warn!(
                            "{whose}metadata fetch failed, discovery answers 503 until it succeeds: {message}"
                        );
                    }
                    failing = Some(message);
                }
                let wait = retry;
                retry = (retry * 2).min(period);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(jitter(wait)) => {}
            _ = shutdown.wait() => return Ok(()),
        }
    }
}

/// Spreads waits by up to ±10% so that replicas started together do not fetch in lockstep.
fn jitter(wait: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let factor = 0.9 + 0.2 * (f64::from(nanos % 1000) / 1000.0);
    wait.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::jitter;
    use std::time::Duration;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(j >= Duration::from_secs(9) && j <= Duration::from_secs(11), "{j:?}");
        }
    }
}
