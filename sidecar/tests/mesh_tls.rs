//! Mutual TLS on the mesh, with certificates made by `openssl`: replicas with certificates from
//! the database's CA replicate; a replica whose certificate comes from another CA is refused.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{converge, free_port, ReplicaProcess};
use redis::Commands;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").current_dir(dir).args(args).status().expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and `names` certificates signed by it, in `dir/<ca>/`.
fn make_ca(dir: &Path, ca: &str, names: &[&str]) {
    let d = dir.join(ca);
    std::fs::create_dir_all(&d).unwrap();
    openssl(&d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(
        &d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            &format!("/CN={ca}"),
            "-days",
            "2",
            "-out",
            "ca.crt",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:syncmesh-peer,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    for n in names {
        openssl(&d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &format!("{n}.key")]);
        openssl(
            &d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{n}.key"),
                "-subj",
                &format!("/CN={n}"),
                "-out",
                &format!("{n}.csr"),
            ],
        );
        openssl(
            &d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{n}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                &format!("{n}.crt"),
            ],
        );
    }
}

#[test]
fn replicas_with_the_database_ca_replicate_and_a_foreign_certificate_is_refused() {
    let dir = std::env::temp_dir().join(format!("syncmesh-tls-{}", std::process::id()));
    make_ca(&dir, "mesh-ca", &["a", "b"]);
    make_ca(&dir, "other-ca", &["rogue"]);
    let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    let seeds = ports.iter().map(|p| format!("127.0.0.1:{}", p.2)).collect::<Vec<_>>().join(",");
    // Every replica trusts the mesh CA; `issuer` is the CA that signed its own certificate.
    let start = |i: usize, issuer: &str, name: &str| {
        let ca = dir.join("mesh-ca").join("ca.crt");
        let cert = dir.join(issuer).join(format!("{name}.crt"));
        let key = dir.join(issuer).join(format!("{name}.key"));
        let args = [
            "--tls-ca",
            ca.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--peers",
            &seeds,
            "--bootstrap-timeout-ms",
            "300",
        ];
        ReplicaProcess::start_on(ports[i], &args)
    };
    let a = start(0, "mesh-ca", "a");
    let b = start(1, "mesh-ca", "b");
    // The rogue trusts the mesh CA (so it is not its own check that stops it) but presents a
    // certificate from another CA.
    let rogue = start(2, "other-ca", "rogue");
    let _: () = a.client().set("from-a", "1").unwrap();
    let _: () = rogue.client().set("from-rogue", "1").unwrap();
    converge(&[&a, &b], Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.client().get::<_, Option<String>>("from-a").unwrap().as_deref(), Some("1"));
    assert_eq!(b.client().get::<_, Option<String>>("from-rogue").unwrap(), None, "the rogue got in");
    assert_eq!(rogue.client().get::<_, Option<String>>("from-a").unwrap(), None, "the rogue was let in");
    let _ = std::fs::remove_dir_all(&dir);
}
