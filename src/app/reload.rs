//! Configuration reload. A new configuration is primed beside the one in service: its own
//! state is built and its refresh task started, and only once that state is ready (metadata
//! fetched, and in jwt mode keys too) is it swapped in whole. Anything short of that leaves
//! the running configuration as it was. Requests already started keep the state they began
//! with, since each holds its own reference to it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{Live, State};
use crate::config::{Config, ConfigError};
use crate::discovery::metadata::Fetcher;
use crate::discovery::refresh::{self, Refresh};
use crate::gate::tokens::Unusable;
use crate::shutdown::{self, Shutdown, Trigger};
use crate::{info, warn};

/// How often priming looks whether the new state has become ready.
const PRIME_POLL: Duration = Duration::from_millis(20);

/// One configuration's background work: its refresh task and the trigger that ends it.
/// Dropping it ends the task too (a dropped trigger reads as fired).
pub struct Generation {
    trigger: Trigger,
    /// One refresh task per protected resource.
    refresh: Vec<JoinHandle<Result<(), Unusable>>>,
    /// Whether its state is the one in service.
    serving: Arc<AtomicBool>,
}

impl Generation {
    /// Starts a refresh task for each resource of `state`. When `fatal` is given, a first
    /// document unusable for the token check records the reason there and fires the trigger
    /// given with it.
    pub fn start(state: &State, config: &Config, fatal: Option<(Arc<Trigger>, Arc<Fatal>)>) -> Generation {
        let (trigger, stop) = shutdown::channel();
        // The first configuration serves from the start; a reload's once it is swapped in.
        let serving = Arc::new(AtomicBool::new(fatal.is_some()));
        let several = state.resources.len() > 1;
        let refresh = config
            .protected()
            .zip(&state.resources)
            .map(|(resource, protected)| {
                let task = Refresh {
                    fetcher: Fetcher::new(resource),
                    period: resource.refresh,
                    snapshots: Arc::clone(&protected.snapshots),
                    checker: protected.checker().cloned(),
                    metrics: Arc::clone(&state.telemetry.metrics),
                    scopes: resource.scopes.clone(),
                    policy_scopes: resource
                        .policy
                        .as_ref()
                        .map(|p| p.scopes().into_iter().map(String::from).collect())
                        .unwrap_or_default(),
                    label: several.then(|| protected.resource.clone()),
                };
                let task = refresh::run(task, stop.clone(), Arc::clone(&serving));
                let fatal = fatal.clone();
                tokio::spawn(async move {
                    let outcome = task.await;
                    if let (Err(reason), Some((edge, record))) = (&outcome, fatal) {
                        let _ = record.set(reason.clone());
                        edge.fire();
                    }
                    outcome
                })
            })
            .collect();
        Generation { trigger, refresh, serving }
    }

    /// Marks this generation as the one in service (its log lines lose their prefix).
    fn in_service(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    /// Stops the refresh tasks and waits for them to end.
    pub async fn stop(self) {
        self.trigger.fire();
        for task in self.refresh {
            let _ = task.await;
        }
    }

    /// The outcome of a refresh task that has ended, if one has: they end only when stopped
    /// or when a first document is unusable.
    async fn ended(&mut self) -> Option<Result<Result<(), Unusable>, tokio::task::JoinError>> {
        let at = self.refresh.iter().position(JoinHandle::is_finished)?;
        Some(self.refresh.swap_remove(at).await)
    }
}

/// Why the first configuration could not serve: set once, read when the edge stops.
pub type Fatal = OnceLock<Unusable>;

/// Why a new configuration was not put in service.
#[derive(Debug)]
pub enum Refused {
    /// Its authorization server's metadata (or keys) could not be fetched in time.
    NotReady(Duration),
    /// Its authorization server cannot support its token check.
    Unusable(Unusable),
    /// The edge began to stop while the new configuration was being primed.
    Stopping,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotReady(after) => write!(
                f,
                "its authorization server's metadata (or, in jwt mode, its keys) could not be fetched within {} s",
                after.as_secs_f64()
            ),
            Refused::Unusable(reason) => write!(f, "{reason}"),
            Refused::Stopping => f.write_str("the edge is stopping"),
        }
    }
}

/// The settings a reload cannot change: they shape listeners and the runtime made at start.
/// Returns the names of those that differ between `running` and `next`.
pub fn restart_only(running: &Config, next: &Config) -> Vec<&'static str> {
    let mut differ = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            differ.push(name);
        }
    };
    check("listen", running.listen == next.listen);
    check("admin_listen", running.admin_listen == next.admin_listen);
    check("threads", running.threads == next.threads);
    check("tls_cert/tls_key", running.tls == next.tls);
    check("drain_timeout", running.drain_timeout == next.drain_timeout);
    check("access_log", running.access_log == next.access_log);
    let (a, b) = (&running.limits, &next.limits);
    check("max_header_bytes", a.max_header_bytes == b.max_header_bytes);
    check("max_headers", a.max_headers == b.max_headers);
    check("header_read_timeout", a.header_read_timeout == b.header_read_timeout);
    check("idle_timeout", a.idle_timeout == b.idle_timeout);
    check("max_connections", a.max_connections == b.max_connections);
    check("h2_max_concurrent_streams", a.h2_max_concurrent_streams == b.h2_max_concurrent_streams);
    differ
}

/// Builds the state for `config`, counting and logging where `running` does, and waits until
/// it is ready to serve, up to twice the fetch timeout plus the first retry's second.
pub async fn prime(config: &Config, running: &State) -> Result<(Arc<State>, Generation), Refused> {
    let state = Arc::new(State::after(config, Arc::clone(&running.telemetry), Some(running)));
    let mut generation = Generation::start(&state, config, None);
    let allowed = config.fetch_timeout * 2 + Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + allowed;
    loop {
        if state.ready() {
            return Ok((state, generation));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Refused::NotReady(allowed));
        }
        if let Some(outcome) = generation.ended().await {
            return Err(match outcome {
                Ok(Err(reason)) => Refused::Unusable(reason),
                _ => Refused::Stopping,
            });
        }
        tokio::time::sleep(PRIME_POLL).await;
    }
}

/// What a reload request brings: the configuration read again, or why it could not be.
pub type Reload = Result<Config, ConfigError>;

/// Takes new configurations from `reloads` until `stop`, swapping each into `live` once
/// primed. Only the latest matters: one sent while another is being primed replaces any
/// still waiting. Ends by stopping the generation then in service.
pub async fn run(
    live: Arc<Live>,
    mut current: Generation,
    mut running: Config,
    mut reloads: watch::Receiver<Option<Reload>>,
    mut stop: Shutdown,
) {
    let metrics = Arc::clone(&live.load().telemetry.metrics);
    loop {
        let next = tokio::select! {
            changed = reloads.changed() => changed.ok().map(|()| reloads.borrow_and_update().clone()),
            _ = stop.wait() => break,
        };
        // Every sender is gone: nothing more can arrive.
        let next = match next {
            Some(Some(Ok(next))) => next,
            Some(None) => continue,
            Some(Some(Err(invalid))) => {
                metrics.reloaded(false);
                warn!("configuration reload refused, the running configuration stays: {invalid}");
                continue;
            }
            None => {
                stop.wait().await;
                break;
            }
        };
        let running_state = live.load_full();
        let primed = tokio::select! {
            primed = prime(&next, &running_state) => primed,
            _ = stop.wait() => Err(Refused::Stopping),
        };
        match primed {
            Ok((state, generation)) => {
                live.store(state);
                generation.in_service();
                std::mem::replace(&mut current, generation).stop().await;
                metrics.reloaded(true);
                info!(
                    "configuration reloaded: resource {} with authorization server {}",
                    next.resource.url, next.issuer.url
                );
                let ignored = restart_only(&running, &next);
                if !ignored.is_empty() {
                    warn!("changed settings that take effect only on restart: {}", ignored.join(", "));
                }
                running = next;
            }
            Err(Refused::Stopping) => break,
            Err(refused) => {
                metrics.reloaded(false);
                warn!("configuration reload refused, the running configuration stays: {refused}");
            }
        }
    }
    current.stop().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config(extra: &[&str]) -> Config {
        let mut args = vec!["--resource", "https://mcp.example/mcp", "--auth-server", "https://as.example"];
        args.extend_from_slice(extra);
        Config::from_settings(&Settings::load(args.into_iter().map(String::from), |_| None).unwrap()).unwrap()
    }

    #[test]
    fn reloadable_settings_are_not_reported() {
        let running = config(&[]);
        let next = config(&["--scope", "tools", "--upstream", "http://127.0.0.1:9", "--refresh", "60"]);
        assert!(restart_only(&running, &next).is_empty());
    }

    #[test]
    fn listener_and_limit_changes_are_named() {
        let running = config(&[]);
        let next = config(&["--listen", "127.0.0.1:9999", "--max-connections", "10", "--idle-timeout", "3"]);
        assert_eq!(restart_only(&running, &next), ["listen", "idle_timeout", "max_connections"]);
    }
}
