//! The PKI of `kubeboot render`, checked with an independent X.509 parser: the
//! api-server's serving cert names every address it is reached at and chains to the
//! CA; client certs carry the identities RBAC expects; etcd has its own CA; keys
//! match their certs and are private on disk; the admin kubeconfig embeds them.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use kubeboot::assets;
use kubeboot::model::AssetDir;
use kubeboot::newcluster::{NewClusterOptions, render_new};
use rcgen::{KeyPair, PublicKeyData};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::{Pem, parse_x509_pem};

fn opts() -> NewClusterOptions {
    NewClusterOptions {
        api_servers: vec![
            "https://k8s.Example.com:6443".into(),
            "https://10.0.0.5:6443".into(),
            "https://[fd00::5]:6443".into(),
        ],
        service_cidr: "10.96.0.0/12".into(),
        etcd_servers: vec![
            "https://10.0.0.11:2379".into(),
            "https://etcd-2.example.com:2379".into(),
        ],
        ..NewClusterOptions::default()
    }
}

fn text(a: &AssetDir, path: &str) -> String {
    let asset = a.get(path).unwrap_or_else(|| panic!("{path} missing"));
    String::from_utf8(asset.bytes.clone()).unwrap()
}

fn pem(a: &AssetDir, path: &str) -> Pem {
    let bytes = a
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .bytes
        .clone();
    let (rest, pem) = parse_x509_pem(&bytes).unwrap();
    assert!(rest.iter().all(u8::is_ascii_whitespace), "{path}: one cert");
    pem
}

/// Subject CN and O values, and (server auth, client auth).
fn identity(p: &Pem) -> (Vec<String>, Vec<String>, (bool, bool)) {
    let c = p.parse_x509().unwrap();
    let s = c.subject();
    let strs = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.map(|a| a.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let eku = c.extended_key_usage().unwrap().map(|e| e.value.clone());
    (
        strs(&mut s.iter_common_name()),
        strs(&mut s.iter_organization()),
        eku.map_or((false, false), |e| (e.server_auth, e.client_auth)),
    )
}

fn sans(p: &Pem) -> Vec<String> {
    let c = p.parse_x509().unwrap();
    let ext = c.subject_alternative_name().unwrap().unwrap();
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
            },
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

fn signed_by(cert: &Pem, ca: &Pem) -> bool {
    let (c, ca) = (cert.parse_x509().unwrap(), ca.parse_x509().unwrap());
    c.issuer() == ca.subject() && c.verify_signature(Some(ca.public_key())).is_ok()
}

/// The key PEM at `key` is the private half of the cert at `cert`.
fn key_matches(a: &AssetDir, cert: &str, key: &str) {
    let kp = KeyPair::from_pem(&text(a, key)).unwrap();
    let p = pem(a, cert);
    let c = p.parse_x509().unwrap();
    assert_eq!(
        kp.subject_public_key_info(),
        c.public_key().raw,
        "{key} vs {cert}"
    );
}

#[test]
fn serving_cert_names_every_address_and_chains_to_the_ca() {
    let a = render_new(&opts()).unwrap();
    let (ca, server) = (pem(&a, "tls/ca.crt"), pem(&a, "tls/apiserver.crt"));
    assert!(ca.parse_x509().unwrap().is_ca());
    assert!(signed_by(&ca, &ca), "the CA is self-signed");
    assert!(signed_by(&server, &ca));
    // Same CA subject, another key: the signature check, not the name, decides.
    let other = render_new(&opts()).unwrap();
    assert!(!signed_by(&server, &pem(&other, "tls/ca.crt")));
    assert_eq!(
        sans(&server),
        [
            "k8s.example.com",
            "10.0.0.5",
            "fd00::5",
            "10.96.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "127.0.0.1",
        ]
    );
    let (cn, _, (server_auth, client_auth)) = identity(&server);
    assert_eq!(cn, ["kube-apiserver"]);
    assert!(server_auth && !client_auth);
    key_matches(&a, "tls/apiserver.crt", "tls/apiserver.key");
    // The pods get the very same bytes through their Secret.
    assert_eq!(
        a.get("tls/secrets/kube-apiserver/apiserver.crt")
            .unwrap()
            .bytes,
        a.get("tls/apiserver.crt").unwrap().bytes
    );

    let c = server.parse_x509().unwrap();
    let days = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86400;
    assert!((365..=366).contains(&days), "leaf valid {days} days");
    let c = ca.parse_x509().unwrap();
    let days = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86400;
    assert!((3652..=3653).contains(&days), "CA valid {days} days");
    let now = jiff::Timestamp::now().as_second();
    assert!(c.validity().not_before.timestamp() < now - 86400 + 1);
}

#[test]
fn client_certs_carry_the_identities_rbac_expects() {
    let a = render_new(&NewClusterOptions::default()).unwrap();
    let ca = pem(&a, "tls/ca.crt");
    for (cert, key, cn, orgs) in [
        (
            "tls/admin.crt",
            "tls/admin.key",
            "kubeboot-admin",
            vec!["system:masters"],
        ),
        (
            "tls/kubelet-client.crt",
            "tls/kubelet-client.key",
            "kube-apiserver-kubelet-client",
            vec![],
        ),
    ] {
        let p = pem(&a, cert);
        assert!(signed_by(&p, &ca), "{cert}");
        let (got_cn, got_orgs, (server_auth, client_auth)) = identity(&p);
        assert_eq!(
            (got_cn, got_orgs),
            (
                vec![cn.to_string()],
                orgs.iter().map(|s| s.to_string()).collect()
            )
        );
        assert!(client_auth && !server_auth, "{cert}");
        assert!(!p.parse_x509().unwrap().is_ca(), "{cert}");
        key_matches(&a, cert, key);
    }
    // The service-account key pair is one pair, shared by signer and verifier.
    let sa = KeyPair::from_pem(&text(&a, "tls/service-account.key")).unwrap();
    assert_eq!(sa.public_key_pem(), text(&a, "tls/service-account.pub"));
    assert_eq!(
        text(
            &a,
            "tls/secrets/kube-controller-manager/service-account.key"
        ),
        text(&a, "tls/service-account.key")
    );
    // http etcd: no etcd PKI at all.
    assert!(!a.files.keys().any(|k| k.contains("etcd")), "no etcd files");
}

#[test]
fn https_etcd_gets_its_own_ca() {
    let a = render_new(&opts()).unwrap();
    let (ca, etcd_ca) = (pem(&a, "tls/ca.crt"), pem(&a, "tls/etcd/ca.crt"));
    for (name, server_auth) in [("server", true), ("peer", true), ("client", false)] {
        let p = pem(&a, &format!("tls/etcd/{name}.crt"));
        assert!(signed_by(&p, &etcd_ca), "{name}");
        assert!(
            !signed_by(&p, &ca),
            "{name} must not be trusted by the cluster CA"
        );
        assert_eq!(identity(&p).2, (server_auth, true), "{name}");
        key_matches(
            &a,
            &format!("tls/etcd/{name}.crt"),
            &format!("tls/etcd/{name}.key"),
        );
    }
    assert_eq!(
        sans(&pem(&a, "tls/etcd/server.crt")),
        ["10.0.0.11", "etcd-2.example.com", "localhost", "127.0.0.1"]
    );
    // The api-server's Secret carries the etcd client files its flags name.
    for (secret_key, asset) in [
        ("etcd-client-ca.crt", "tls/etcd/ca.crt"),
        ("etcd-client.crt", "tls/etcd/client.crt"),
        ("etcd-client.key", "tls/etcd/client.key"),
    ] {
        assert_eq!(
            text(&a, &format!("tls/secrets/kube-apiserver/{secret_key}")),
            text(&a, asset)
        );
    }
    let pod = text(&a, "bootstrap-manifests/bootstrap-kube-apiserver.yaml");
    assert!(pod.contains("--etcd-servers=https://10.0.0.11:2379,https://etcd-2.example.com:2379"));
    assert!(pod.contains("--etcd-certfile=/etc/kubernetes/secrets/etcd-client.crt"));
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn keys_and_secrets_are_private_on_disk() {
    let a = render_new(&opts()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    assets::write(&dir, &a, false).unwrap();
    let mut keys = 0;
    for (rel, asset) in &a.files {
        let on_disk = mode(&dir.join(rel));
        assert_eq!(on_disk, asset.mode, "{rel}");
        if rel.ends_with(".key") {
            keys += 1;
            if !rel.starts_with("tls/secrets/") {
                assert_eq!(on_disk, 0o600, "{rel}");
            }
        }
        if rel.starts_with("tls/") || rel.starts_with("auth/") {
            assert_eq!(on_disk & 0o077, 0, "{rel} is private");
        }
        if asset.bytes.windows(11).any(|w| w == b"PRIVATE KEY")
            || text(&a, rel).contains("client-key-data")
        {
            assert_eq!(on_disk & 0o077, 0, "{rel} holds a key");
        }
    }
    assert_eq!(
        keys, 15,
        "tls/ keys and the api-server's and controller-manager's Secret keys"
    );
    for (rel, want) in [
        ("", 0o700),
        ("tls", 0o700),
        ("tls/etcd", 0o700),
        ("auth/kubeconfig", 0o600),
        ("manifests/kube-apiserver.yaml", 0o600),
        ("manifests/kube-scheduler.yaml", 0o644),
    ] {
        assert_eq!(mode(&dir.join(rel)), want, "{rel}");
    }
}

#[test]
fn admin_kubeconfig_embeds_the_ca_and_admin_cert() {
    let a = render_new(&opts()).unwrap();
    let kc: serde_json::Value = serde_yaml_ng::from_str(&text(&a, "auth/kubeconfig")).unwrap();
    let b64 = |v: &serde_json::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let cluster = &kc["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], "https://k8s.example.com:6443");
    assert_eq!(
        b64(&cluster["certificate-authority-data"]),
        text(&a, "tls/ca.crt")
    );
    let user = &kc["users"][0]["user"];
    assert_eq!(
        b64(&user["client-certificate-data"]),
        text(&a, "tls/admin.crt")
    );
    assert_eq!(b64(&user["client-key-data"]), text(&a, "tls/admin.key"));
    let ctx = kc["current-context"].as_str().unwrap();
    assert!(
        kc["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == ctx)
    );
}
