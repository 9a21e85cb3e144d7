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

/// Copies `issuer`'s certificate `name` and the given trust bundle into `live/`, the files a
/// replica was started with (as the kubelet updates a mounted Secret).
fn install(dir: &Path, live: &Path, bundle: &[&str], issuer: &str, name: &str) {
    std::fs::create_dir_all(live).unwrap();
    let bundle: String =
        bundle.iter().map(|ca| std::fs::read_to_string(dir.join(ca).join("ca.crt")).unwrap()).collect();
    // Write next to the target and rename, so a reload never sees a half-written file.
    let put = |file: &str, data: String| {
        let tmp = live.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(&tmp, live.join(file)).unwrap();
    };
    put("ca.crt", bundle);
    put("tls.crt", std::fs::read_to_string(dir.join(issuer).join(format!("{name}.crt"))).unwrap());
    put("tls.key", std::fs::read_to_string(dir.join(issuer).join(format!("{name}.key"))).unwrap());
}

#[test]
fn renewed_certificates_and_a_rotated_ca_are_used_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("syncmesh-tls-rotate-{}", std::process::id()));
    make_ca(&dir, "old-ca", &["a", "b"]);
    make_ca(&dir, "new-ca", &["a", "b", "c"]);
    let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    let seeds = ports.iter().map(|p| format!("127.0.0.1:{}", p.2)).collect::<Vec<_>>().join(",");
    let start = |i: usize, live: &Path| {
        let file = |f: &str| live.join(f).to_str().unwrap().to_string();
        let (ca, cert, key) = (file("ca.crt"), file("tls.crt"), file("tls.key"));
        let args = [
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--peers",
            &seeds,
            "--tls-reload-secs",
            "1",
        ];
        ReplicaProcess::start_on(ports[i], &args)
    };
    // a and b run with the old CA; c only knows the new one, so it cannot join them yet.
    let (live_a, live_b, live_c) = (dir.join("live-a"), dir.join("live-b"), dir.join("live-c"));
    install(&dir, &live_a, &["old-ca"], "old-ca", "a");
    install(&dir, &live_b, &["old-ca"], "old-ca", "b");
    install(&dir, &live_c, &["new-ca"], "new-ca", "c");
    let a = start(0, &live_a);
    let b = start(1, &live_b);
    let c = start(2, &live_c);
    let _: () = a.client().set("before", "1").unwrap();
    converge(&[&a, &b], Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.client().get::<_, Option<String>>("before").unwrap(), None, "c joined with a foreign CA");

    // The rotation: a and b trust both CAs and get certificates from the new one, in place.
    install(&dir, &live_a, &["new-ca", "old-ca"], "new-ca", "a");
    install(&dir, &live_b, &["new-ca", "old-ca"], "new-ca", "b");
    let _: () = c.client().set("from-c", "1").unwrap();
    converge(&[&a, &b, &c], Duration::from_secs(30));
    assert_eq!(c.client().get::<_, Option<String>>("before").unwrap().as_deref(), Some("1"));
    assert_eq!(a.client().get::<_, Option<String>>("from-c").unwrap().as_deref(), Some("1"));
    let _ = std::fs::remove_dir_all(&dir);
}
