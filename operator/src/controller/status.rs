//! The status of a SyncedDatabase, computed from what the operator observes.
//!
//! - `Ready`: everything the database owns is in place (Service, certificates, durable
//!   replicas ready), so pods can join it.
//! - `MeshFormed`: the ready members see each other (asked on their admin port, `/status`).
//! - `Degraded`: something needs attention although the database works: members that are not
//!   ready, or pods that carry the opt-in label but were created without the replica.
//! - `ReplicasUpToDate`: every member runs the replica image the operator injects now (after an
//!   upgrade of the operator, old pods keep their image until they are recreated).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Deserialize;

use crate::crd::{MemberCounts, ReplicaVersion, SyncedDatabase, SyncedDatabaseStatus};
use crate::webhook::patch::{is_injected, ADMIN_PORT, SIDECAR_NAME};

/// A pod's place in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ip: Option<String>,
    pub ready: bool,
    /// The image of its replica container.
    pub image: Option<String>,
}

/// The image of a pod's replica container (the injected sidecar, or a durable replica's
/// container), by its name.
pub fn replica_image(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == SIDECAR_NAME)
        .and_then(|c| c.image.clone())
}

/// Whether a pod is gone or going (being deleted, or finished).
fn is_leaving(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// (pod name, replica image) of the durable replicas' pods that are not leaving.
pub fn durable_images(pods: &[Pod]) -> Vec<(String, String)> {
    pods.iter()
        .filter(|p| !is_leaving(p))
        .filter_map(|p| Some((p.metadata.name.clone()?, replica_image(p)?)))
        .collect()
}

/// Members (injected pods) and pods that opted in without a replica, from the opt-in pods.
pub fn classify(pods: &[Pod]) -> (Vec<Member>, Vec<String>) {
    let mut members = Vec::new();
    let mut uninjected = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if is_leaving(pod) {
            continue;
        }
        if !is_injected(pod) {
            uninjected.push(name);
            continue;
        }
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.init_container_statuses.as_ref())
            .and_then(|list| list.iter().find(|c| c.name == SIDECAR_NAME))
            .is_some_and(|c| c.ready);
        members.push(Member {
            name,
            ip: status.and_then(|s| s.pod_ip.clone()),
            ready,
            image: replica_image(pod),
        });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    uninjected.sort();
    (members, uninjected)
}

/// How one ready member sees the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshView {
    /// It answered: this many peers connected, and the members it quarantined (their ids).
    Connected { peers: usize, quarantined: Vec<String> },
    /// It could not be asked.
    Unreachable(String),
}

#[derive(Deserialize)]
struct ReplicaStatus {
    peers: Vec<PeerState>,
}

#[derive(Deserialize)]
struct PeerState {
    id: String,
    state: String,
}

/// Asks a replica's admin port how it sees the mesh (`/status`, with the database's admin token).
pub async fn probe(ip: &str, token: &str, timeout: Duration) -> MeshView {
    let request = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
        let mut stream = tokio::net::TcpStream::connect(format!("{host}:{ADMIN_PORT}")).await?;
        stream
            .write_all(
                format!(
                    "GET /status HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut buf = Vec::new();
        stream.take(1 << 20).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => return MeshView::Unreachable(e.to_string()),
        Err(_) => return MeshView::Unreachable("timed out".into()),
    };
    let text = String::from_utf8_lossy(&buf);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return MeshView::Unreachable("bad HTTP answer".into());
    };
    match serde_json::from_str::<ReplicaStatus>(body) {
        Ok(s) => MeshView::Connected {
            peers: s.peers.iter().filter(|p| p.state == "connected").count(),
            quarantined: s.peers.iter().filter(|p| p.state == "quarantined").map(|p| p.id.clone()).collect(),
        },
        Err(e) => MeshView::Unreachable(format!("bad /status: {e}")),
    }
}

/// Everything the status is computed from.
pub struct Observed<'a> {
    pub members: &'a [Member],
    pub uninjected: &'a [String],
    /// (ready, wanted) durable replicas.
    pub durable: (i32, i32),
    /// How each ready member sees the mesh, by pod name.
    pub views: &'a [(String, MeshView)],
    /// The replica image the operator injects now.
    pub wanted_image: &'a str,
    /// (pod, image) of the durable replicas' pods.
    pub durable_images: &'a [(String, String)],
    /// Workloads restarted onto `wanted_image` (`rolloutAfterUpgrade: Restart`), as `kind/name`.
    pub restarted: &'a [String],
    /// Outdated pods that no workload owns, so that no restart replaces them.
    pub unowned: &'a [String],
}

fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// The new status. Conditions keep their `lastTransitionTime` while their status is unchanged.
pub fn compute(db: &SyncedDatabase, observed: &Observed<'_>) -> SyncedDatabaseStatus {
    let generation = db.metadata.generation;
    let (durable_ready, durable_wanted) = observed.durable;
    let ready_members = observed.members.iter().filter(|m| m.ready).count() as i32 + durable_ready;
    let total_members = observed.members.len() as i32 + durable_wanted;

    let ready = if durable_ready >= durable_wanted {
        condition(
            "Ready",
            true,
            "Reconciled",
            "the mesh Service, certificates and durable replicas are in place".into(),
            generation,
        )
    } else {
        condition(
            "Ready",
            false,
            "DurableReplicasNotReady",
            format!("{durable_ready} of {durable_wanted} durable replicas are ready"),
            generation,
        )
    };

    let mesh = match ready_members {
        0 => condition("MeshFormed", false, "NoReadyMembers", "no member is ready yet".into(), generation),
        1 => condition(
            "MeshFormed",
            true,
            "SingleMember",
            "one ready member; nothing to connect to".into(),
            generation,
        ),
        n => {
            let lacking: Vec<String> = observed
                .views
                .iter()
                .filter_map(|(pod, view)| match view {
                    MeshView::Connected { peers, .. } if *peers as i32 >= n - 1 => None,
                    MeshView::Connected { peers, .. } => {
                        Some(format!("{pod} sees {peers} of {} peers", n - 1))
                    }
                    MeshView::Unreachable(why) => Some(format!("{pod}: {why}")),
                })
                .collect();
            if lacking.is_empty() {
                condition(
                    "MeshFormed",
                    true,
                    "AllConnected",
                    format!("{n} ready members, all connected"),
                    generation,
                )
            } else {
                condition("MeshFormed", false, "PartiallyConnected", lacking.join("; "), generation)
            }
        }
    };

    let not_ready = total_members - ready_members;
    let quarantines: Vec<String> = observed
        .views
        .iter()
        .filter_map(|(pod, view)| match view {
            MeshView::Connected { quarantined, .. } if !quarantined.is_empty() => {
                Some(format!("{pod} quarantined {}", quarantined.join(", ")))
            }
            _ => None,
        })
        .collect();
    let degraded = if !quarantines.is_empty() {
        condition(
            "Degraded",
            true,
            "MemberQuarantined",
            format!(
                "{}: a member claimed or sent history of another that it does not hold (docs/durability.md, \"What a peer can and cannot do\")",
                quarantines.join("; ")
            ),
            generation,
        )
    } else if !observed.uninjected.is_empty() {
        condition(
            "Degraded",
            true,
            "UninjectedPods",
            format!(
                "{} pod(s) carry the label but no replica (created before the webhook ran): {}; recreate them",
                observed.uninjected.len(),
                observed.uninjected.join(", ")
            ),
            generation,
        )
    } else if not_ready > 0 {
        condition(
            "Degraded",
            true,
            "MembersNotReady",
            format!("{not_ready} of {total_members} members are not ready"),
            generation,
        )
    } else {
        condition("Degraded", false, "AsExpected", "every member is ready".into(), generation)
    };

    let (replica_versions, up_to_date) = versions(observed, generation);

    let previous = db.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let conditions = [ready, mesh, degraded, up_to_date]
        .into_iter()
        .map(|mut c| {
            if let Some(old) = previous.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
                c.last_transition_time = old.last_transition_time.clone();
            }
            c
        })
        .collect();

    SyncedDatabaseStatus {
        observed_generation: generation,
        conditions,
        members: MemberCounts {
            injected: total_members,
            ready: ready_members,
            durable_ready,
            summary: format!("{ready_members}/{total_members}"),
        },
        uninjected_pods: observed.uninjected.to_vec(),
        mesh_service: Some(db.mesh_service_name()),
        replica_versions,
    }
}

/// How many members run each replica image, and the `ReplicasUpToDate` condition.
fn versions(observed: &Observed<'_>, generation: Option<i64>) -> (Vec<ReplicaVersion>, Condition) {
    let wanted = observed.wanted_image;
    let images: Vec<(&str, &str)> = observed
        .members
        .iter()
        .filter_map(|m| Some((m.name.as_str(), m.image.as_deref()?)))
        .chain(observed.durable_images.iter().map(|(p, i)| (p.as_str(), i.as_str())))
        .collect();
    let mut counts: Vec<ReplicaVersion> = Vec::new();
    for (_, image) in &images {
        match counts.iter_mut().find(|v| v.image == *image) {
            Some(v) => v.pods += 1,
            None => counts.push(ReplicaVersion {
                version: ReplicaVersion::version_of(image),
                image: image.to_string(),
                pods: 1,
                current: *image == wanted,
            }),
        }
    }
    counts.sort_by(|a, b| b.current.cmp(&a.current).then_with(|| a.image.cmp(&b.image)));
    let outdated: Vec<&str> = images.iter().filter(|(_, i)| *i != wanted).map(|(p, _)| *p).collect();
    let condition = if outdated.is_empty() {
        let message = if images.is_empty() {
            format!("no members yet; new ones get {wanted}")
        } else {
            format!("every member runs {wanted}")
        };
        self::condition("ReplicasUpToDate", true, "AllCurrent", message, generation)
    } else {
        let others: Vec<String> =
            counts.iter().filter(|v| !v.current).map(|v| format!("{}: {}", v.image, v.pods)).collect();
        let mut pods = outdated[..outdated.len().min(5)].join(", ");
        if outdated.len() > 5 {
            pods.push_str(&format!(" and {} more", outdated.len() - 5));
        }
        let head = format!(
            "{} of {} members run another replica image than {wanted} ({}): {pods}",
            outdated.len(),
            images.len(),
            others.join(", ")
        );
        let unowned = if observed.unowned.is_empty() {
            String::new()
        } else {
            format!("; no workload owns {}: delete them to replace them", observed.unowned.join(", "))
        };
        if observed.restarted.is_empty() {
            let message = format!(
                "{head}; restart their workloads (kubectl rollout restart deployment/NAME) or set \
                 spec.rolloutAfterUpgrade: Restart{unowned}"
            );
            self::condition("ReplicasUpToDate", false, "OutdatedReplicas", message, generation)
        } else {
            let message = format!("{head}; restarted {}{unowned}", observed.restarted.join(", "));
            self::condition("ReplicasUpToDate", false, "RollingOut", message, generation)
        }
    };
    (counts, condition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SyncedDatabaseSpec;

    fn cond<'a>(s: &'a SyncedDatabaseStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn member(name: &str, ready: bool) -> Member {
        Member { name: name.into(), ip: Some("10.0.0.1".into()), ready, image: Some(IMAGE.into()) }
    }

    const IMAGE: &str = "syncmesh/syncmesh-replica:0.2.0";

    fn observed<'a>(
        members: &'a [Member],
        durable: (i32, i32),
        views: &'a [(String, MeshView)],
    ) -> Observed<'a> {
        Observed {
            members,
            uninjected: &[],
            durable,
            views,
            wanted_image: IMAGE,
            durable_images: &[],
            restarted: &[],
            unowned: &[],
        }
    }

    #[test]
    fn a_database_without_members_is_ready_but_has_no_mesh() {
        let db = SyncedDatabase::new("a", SyncedDatabaseSpec::default());
        let s = compute(&db, &observed(&[], (0, 0), &[]));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "MeshFormed").reason, "NoReadyMembers");
        assert_eq!(cond(&s, "Degraded").status, "False");
    }

    #[test]
    fn uninjected_pods_and_a_partial_mesh_are_reported() {
        let db = SyncedDatabase::new("a", SyncedDatabaseSpec::default());
        let members = [member("p1", true), member("p2", true), member("p3", true)];
        let views = [
            ("p1".to_string(), MeshView::Connected { peers: 2, quarantined: vec![] }),
            ("p2".to_string(), MeshView::Connected { peers: 1, quarantined: vec![] }),
            ("p3".to_string(), MeshView::Unreachable("timed out".into())),
        ];
        let uninjected = ["old-pod".to_string()];
        let s = compute(&db, &Observed { uninjected: &uninjected, ..observed(&members, (0, 0), &views) });
        let mesh = cond(&s, "MeshFormed");
        assert_eq!(mesh.status, "False");
        assert!(mesh.message.contains("p2 sees 1 of 2 peers") && mesh.message.contains("p3: timed out"));
        assert_eq!(cond(&s, "Degraded").reason, "UninjectedPods");
        assert_eq!(s.uninjected_pods, vec!["old-pod"]);
    }

    #[test]
    fn a_quarantined_member_degrades_the_database_first() {
        let db = SyncedDatabase::new("a", SyncedDatabaseSpec::default());
        let members = [member("p1", true), member("p2", true)];
        let views = [
            (
                "p1".to_string(),
                MeshView::Connected { peers: 1, quarantined: vec!["00000000000000aa".into()] },
            ),
            ("p2".to_string(), MeshView::Connected { peers: 1, quarantined: vec![] }),
        ];
        let uninjected = ["old-pod".to_string()];
        let s = compute(&db, &Observed { uninjected: &uninjected, ..observed(&members, (0, 0), &views) });
        let degraded = cond(&s, "Degraded");
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "MemberQuarantined"));
        assert!(degraded.message.contains("p1 quarantined 00000000000000aa"), "{}", degraded.message);
    }

    #[test]
    fn durable_replicas_gate_readiness_and_transition_times_stick() {
        let mut db = SyncedDatabase::new("a", SyncedDatabaseSpec::default());
        let s = compute(&db, &observed(&[], (1, 2), &[]));
        assert_eq!(cond(&s, "Ready").reason, "DurableReplicasNotReady");
        assert_eq!(s.members.injected, 2);
        assert_eq!(s.members.summary, "1/2");
        db.status = Some(s.clone());
        std::thread::sleep(Duration::from_millis(5));
        let again = compute(&db, &observed(&[], (1, 2), &[]));
        assert_eq!(cond(&again, "Ready").last_transition_time, cond(&s, "Ready").last_transition_time);
    }

    #[test]
    fn pods_on_another_image_are_counted_and_named() {
        let db = SyncedDatabase::new("a", SyncedDatabaseSpec::default());
        let old = |name: &str| Member {
            image: Some("syncmesh/syncmesh-replica:0.1.0".into()),
            ..member(name, true)
        };
        let members = [member("new-1", true), old("old-1"), old("old-2")];
        let durable = [("a-durable-0".to_string(), "syncmesh/syncmesh-replica:0.1.0".to_string())];
        let s = compute(&db, &Observed { durable_images: &durable, ..observed(&members, (1, 1), &[]) });
        assert_eq!(
            s.replica_versions,
            vec![
                ReplicaVersion { version: "0.2.0".into(), image: IMAGE.into(), pods: 1, current: true },
                ReplicaVersion {
                    version: "0.1.0".into(),
                    image: "syncmesh/syncmesh-replica:0.1.0".into(),
                    pods: 3,
                    current: false
                },
            ]
        );
        let c = cond(&s, "ReplicasUpToDate");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "OutdatedReplicas"));
        assert!(c.message.starts_with("3 of 4 members run another replica image"), "{}", c.message);
        assert!(c.message.contains("old-1, old-2, a-durable-0"), "{}", c.message);

        let restarted = ["deployment/checkout".to_string()];
        let s = compute(
            &db,
            &Observed { durable_images: &durable, restarted: &restarted, ..observed(&members, (1, 1), &[]) },
        );
        let c = cond(&s, "ReplicasUpToDate");
        assert_eq!(c.reason, "RollingOut");
        assert!(c.message.ends_with("restarted deployment/checkout"), "{}", c.message);

        let s = compute(&db, &observed(&[member("new-1", true)], (0, 0), &[]));
        assert_eq!(cond(&s, "ReplicasUpToDate").reason, "AllCurrent");
    }
}
