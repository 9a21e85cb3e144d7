//! Golden-file tests of the injection patch: each directory under `tests/golden/` holds a pod
//! (`pod.yaml`), the SyncedDatabase it names (`database.yaml`) and the expected JSON Patch
//! (`patch.json`, or `skip.txt` with the reason when nothing is injected).
//!
//! `UPDATE_GOLDEN=1 cargo test -p syncmesh-operator --test golden` rewrites the expected files;
//! review the diff before committing it.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use syncmesh_operator::crd::SyncedDatabase;
use syncmesh_operator::webhook::patch::{injection_patch, Decision, Defaults};

fn defaults() -> Defaults {
    Defaults { replica_image: "syncmesh/syncmesh-replica:test".into() }
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_case(dir: &Path) {
    let pod: Pod = read_yaml(&dir.join("pod.yaml"));
    let db: SyncedDatabase = read_yaml(&dir.join("database.yaml"));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    match injection_patch(&pod, &db, &defaults()) {
        Decision::Skip(reason) => {
            let path = dir.join("skip.txt");
            if update {
                std::fs::write(&path, format!("{reason}\n")).unwrap();
            }
            let expected = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{}: expected a patch, got skip ({reason})", dir.display()));
            assert_eq!(expected.trim(), reason, "{}", dir.display());
        }
        Decision::Patch(ops) => {
            let path = dir.join("patch.json");
            let actual = serde_json::Value::Array(ops.clone());
            if update {
                std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            }
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{}: no patch.json", dir.display()));
            let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
            pretty_assertions::assert_eq!(expected, actual, "{}", dir.display());

            // The patch applies to the pod, gives a valid pod, and injecting that pod again is
            // a no-op: the webhook is idempotent.
            let mut doc = serde_json::to_value(&pod).unwrap();
            let patch: json_patch::Patch = serde_json::from_value(actual).unwrap();
            json_patch::patch(&mut doc, &patch)
                .unwrap_or_else(|e| panic!("{}: patch does not apply: {e}", dir.display()));
            let patched: Pod = serde_json::from_value(doc).unwrap();
            assert_eq!(injection_patch(&patched, &db, &defaults()), Decision::Skip("already injected"));
            let spec = patched.spec.unwrap();
            let sidecars: Vec<_> =
                spec.init_containers.iter().flatten().filter(|c| c.name == "syncmesh-replica").collect();
            assert_eq!(sidecars.len(), 1, "{}: exactly one replica", dir.display());
            assert_eq!(sidecars[0].restart_policy.as_deref(), Some("Always"));
            for c in &spec.containers {
                assert!(
                    c.env.iter().flatten().filter(|e| e.name == "REDIS_URL").count() == 1,
                    "{}: one REDIS_URL in {}",
                    dir.display(),
                    c.name
                );
            }
        }
    }
}

#[test]
fn injection_patches_match_the_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 6, "golden cases missing under {}", root.display());
    for case in cases {
        check_case(&case);
    }
}
