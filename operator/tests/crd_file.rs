//! The committed CRD must be exactly what the Rust types generate.

#[test]
fn committed_crd_matches_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/syncmesh.io_synceddatabases.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/syncmesh.io_synceddatabases.yaml exists");
    let generated = syncmesh_operator::crd::crd_yaml();
    assert!(
        committed == generated,
        "crds/syncmesh.io_synceddatabases.yaml is out of date: run\n    \
         cargo run -p syncmesh-operator --bin crdgen crds/syncmesh.io_synceddatabases.yaml"
    );
}

#[test]
fn the_helm_chart_ships_the_same_crd() {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/syncmesh/crds/syncmesh.io_synceddatabases.yaml");
    let in_chart = std::fs::read_to_string(path).expect("the chart has the CRD");
    assert!(
        in_chart == syncmesh_operator::crd::crd_yaml(),
        "charts/syncmesh/crds/ differs from the generated CRD: copy crds/syncmesh.io_synceddatabases.yaml there"
    );
}
