//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.
//!
//! Only the leader runs the reconciler; every instance serves the webhook. An instance takes the
//! Lease when it is free, released, or has not been renewed for its whole duration. Expiry is
//! judged by *this* instance's clock since it last saw the Lease change (not by comparing
//! `renewTime` with the local wall clock), so clock skew between nodes cannot make two leaders.
//! Updates carry the `resourceVersion` they read, so two candidates racing for the same Lease
//! cannot both win: the API server rejects the second write with a conflict.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The holder and renew time last seen, and when this instance saw them change.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
    /// Whether to create the Lease when it does not exist (else wait for it).
    create_missing: bool,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaderElector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
            observed: None,
            create_missing: true,
        }
    }

    /// Waits for a missing Lease instead of creating it (it is created by the Helm chart).
    pub fn without_creating(mut self) -> Self {
        self.create_missing = false;
        self
    }

    /// Tries to acquire or renew the Lease once; returns whether this instance holds it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let lease = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None if self.create_missing => return self.create().await,
            None => {
                warn!(lease = %self.name, "the leader-election Lease does not exist (the Helm chart creates it); waiting");
                return Ok(false);
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let changed = match &self.observed {
            Some((h, r, _)) => *h != holder || *r != spec.renew_time,
            None => true,
        };
        if changed {
            self.observed = Some((holder.clone(), spec.renew_time.clone(), Instant::now()));
        }
        let held_by_me = holder.as_deref() == Some(self.identity.as_str());
        let lease_duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.duration);
        let expired = self.observed.as_ref().is_some_and(|(_, _, seen)| seen.elapsed() > lease_duration);
        if !(held_by_me || holder.is_none() || expired) {
            return Ok(false);
        }
        let mut next = lease.clone();
        let mut new_spec = spec.clone();
        let now = now();
        if !held_by_me {
            new_spec.acquire_time = Some(now.clone());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            new_spec.holder_identity = Some(self.identity.clone());
        }
        new_spec.renew_time = Some(now);
        new_spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        next.spec = Some(new_spec);
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) => {
                if !held_by_me {
                    info!(lease = %self.name, identity = %self.identity, "acquired the leader lease");
                }
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let now = now();
        let lease = Lease {
            metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                info!(lease = %self.name, identity = %self.identity, "created and acquired the leader lease");
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown) so that another instance takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.name, "released the leader lease"),
            Err(e) => warn!(lease = %self.name, error = %e, "could not release the leader lease"),
        }
    }

    /// Campaigns and renews forever, publishing leadership on `leading`. A leader that cannot
    /// renew within the Lease duration steps down (publishes `false`) before anyone else may
    /// take over, so two instances never reconcile at the same time.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let retry = (self.duration / 5).max(Duration::from_millis(500));
        let renew_deadline = self.duration * 2 / 3;
        let mut last_renewal: Option<Instant> = None;
        loop {
            let held = match self.try_acquire_or_renew().await {
                Ok(held) => held,
                Err(e) => {
                    warn!(lease = %self.name, error = %e, "leader election request failed");
                    false
                }
            };
            if held {
                last_renewal = Some(Instant::now());
            }
            let leader = last_renewal.is_some_and(|t| t.elapsed() < renew_deadline);
            if !leader {
                last_renewal = None;
            }
            if *leading.borrow() != leader {
                if !leader {
                    warn!(lease = %self.name, "lost the leader lease; the reconciler stops");
                }
                crate::metrics::METRICS.leader.set(leader as i64);
                let _ = leading.send(leader);
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => {
                    if *leading.borrow() {
                        self.release().await;
                    }
                    let _ = leading.send(false);
                    return;
                }
            }
        }
    }
}
