//! Prints the SyncedDatabase CRD as YAML, or writes it to the file given as the only argument.
//!
//!     cargo run -p syncmesh-operator --bin crdgen > crds/syncmesh.io_synceddatabases.yaml

fn main() {
    let yaml = syncmesh_operator::crd::crd_yaml();
    match std::env::args().nth(1) {
        Some(path) => std::fs::write(&path, yaml).unwrap_or_else(|e| {
            eprintln!("crdgen: cannot write {path}: {e}");
            std::process::exit(1);
        }),
        None => print!("{yaml}"),
    }
}
