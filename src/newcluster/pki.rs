//! The PKI of a new cluster, made with rcgen.
//!
//! One cluster CA signs the api-server's serving cert, its kubelet-client cert, the
//! admin client cert and one client cert per `--node-names` kubelet; the controller-manager signs kubelet and CSR certs with the
//! same CA. etcd gets its own CA when it is reached over https, so a cert that etcd
//! trusts is never also a Kubernetes client identity (and the other way round). The
//! service-account key pair is a bare key pair: tokens are JWTs, not certs.
//!
//! Keys are ECDSA P-256: rcgen's ring backend cannot generate RSA keys, and every
//! Kubernetes and etcd component accepts P-256 for TLS and ES256 for service-account
//! tokens. Private keys are PKCS#8 PEM.
//!
//! Validity: the CAs 10 years, leaf certs 1 year by default (`--ca-validity`,
//! `--cert-validity`), counted from the UTC day before the render so a node whose clock
//! is a little behind still accepts them. kubeboot does not rotate certs yet; the short
//! leaf lifetime bounds what a leaked key is worth, and `kubeboot certs check` warns
//! before it runs out.
//!
//! This is the only random part of `render`: serial numbers are derived from the
//! (random) public keys, and everything else is a pure function of the options and
//! this [`Pki`].

use std::net::IpAddr;

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::NewClusterError;
use super::net::Host;
use crate::certs::Lifetime;

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// etcd's own CA and the certs for its members and its one client, the api-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdPki {
    pub ca: CertKey,
    /// Serving cert for etcd's client URLs.
    pub server: CertKey,
    /// Member-to-member cert (server and client auth).
    pub peer: CertKey,
    /// The api-server's client cert.
    pub client: CertKey,
}

/// Every key and cert of a new cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// When the PKI was made; also the render time recorded in `kubeboot.json`.
    pub issued_at: Timestamp,
    pub ca: CertKey,
    pub apiserver: CertKey,
    pub kubelet_client: CertKey,
    pub admin: CertKey,
    pub service_account_key_pem: String,
    pub service_account_pub_pem: String,
    /// Present when etcd is reached over https.
    pub etcd: Option<EtcdPki>,
    /// Each `--node-names` kubelet's client cert, `system:node:<name>` in
    /// `system:nodes`, in the order given.
    pub kubelets: Vec<(String, CertKey)>,
}

/// Subject common names, also the RBAC user names of the client certs.
pub const CA_CN: &str = "kubeboot-ca";
pub const APISERVER_CN: &str = "kube-apiserver";
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
pub const ADMIN_CN: &str = "kubeboot-admin";
pub const ADMIN_GROUP: &str = "system:masters";
pub const ETCD_CA_CN: &str = "kubeboot-etcd-ca";
pub const ETCD_CLIENT_CN: &str = "kube-apiserver-etcd-client";
/// The user and group the Node authorizer and NodeRestriction recognise a kubelet by.
pub const NODE_USER_PREFIX: &str = "system:node:";
pub const NODES_GROUP: &str = "system:nodes";

/// What the certs must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PkiRequest {
    /// Every name and address the api-server is reached at.
    pub(super) apiserver_sans: Vec<Host>,
    /// etcd member names and addresses; `None` when etcd is plain http.
    pub(super) etcd_sans: Option<Vec<Host>>,
    /// Kubelets that get a client cert of their own.
    pub(super) node_names: Vec<String>,
    pub(super) cert_validity: Lifetime,
    pub(super) ca_validity: Lifetime,
}

fn pki_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> NewClusterError {
    move |source| NewClusterError::Pki { what, source }
}

/// The validity window: (not before, CA not after, leaf not after) as UTC dates.
fn window(
    now: Timestamp,
    leaf: Lifetime,
    ca: Lifetime,
) -> Result<(Date, Date, Date), NewClusterError> {
    let today = now.to_zoned(TimeZone::UTC).date();
    let span_err = |e: jiff::Error| NewClusterError::Clock(e.to_string());
    let start = today.checked_sub(1.day()).map_err(span_err)?;
    let ca_end = start.checked_add(ca.span()).map_err(span_err)?;
    let leaf_end = start.checked_add(leaf.span()).map_err(span_err)?;
    Ok((start, ca_end, leaf_end))
}

/// Sets the validity window on `params` (UTC midnights).
fn set_validity(params: &mut CertificateParams, start: Date, end: Date) {
    let day = |d: Date| {
        rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    params.not_before = day(start);
    params.not_after = day(end);
}

fn san(host: &Host) -> Result<SanType, NewClusterError> {
    Ok(match host {
        Host::Ip(ip) => SanType::IpAddress(*ip),
        Host::Dns(name) => SanType::DnsName(
            rcgen::string::Ia5String::try_from(name.as_str()).map_err(pki_err("a DNS name SAN"))?,
        ),
    })
}

fn pem(cert: &Certificate, key: &KeyPair) -> CertKey {
    CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A self-signed CA and the issuer that signs with it.
fn new_ca(
    cn: &str,
    start: Date,
    end: Date,
) -> Result<(CertKey, Issuer<'static, KeyPair>), NewClusterError> {
    let key = KeyPair::generate().map_err(pki_err("a CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity(&mut params, start, end);
    let cert = params.self_signed(&key).map_err(pki_err("a CA cert"))?;
    let out = pem(&cert, &key);
    Ok((out, Issuer::new(params, key)))
}

/// What one leaf cert is for.
struct Leaf<'a> {
    cn: &'a str,
    org: Option<&'a str>,
    sans: &'a [Host],
    server: bool,
    client: bool,
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    spec: &Leaf<'_>,
    start: Date,
    end: Date,
) -> Result<CertKey, NewClusterError> {
    let key = KeyPair::generate().map_err(pki_err("a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, spec.cn);
    if let Some(org) = spec.org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.subject_alt_names = spec.sans.iter().map(san).collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, start, end);
    let cert = params
        .signed_by(&key, issuer)
        .map_err(pki_err("a leaf cert"))?;
    Ok(pem(&cert, &key))
}

/// The api-server's SANs: `hosts`, the `kubernetes` service IP and names, loopback.
pub(super) fn apiserver_sans(hosts: &[Host], service_ip: IpAddr) -> Vec<Host> {
    let mut out: Vec<Host> = hosts.to_vec();
    out.push(Host::Ip(service_ip));
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ] {
        out.push(Host::Dns(name.into()));
    }
    out.push(Host::Ip(IpAddr::from([127, 0, 0, 1])));
    dedup(out)
}

/// etcd's SANs: its member hosts and loopback.
pub(super) fn etcd_sans(hosts: &[Host]) -> Vec<Host> {
    let mut out: Vec<Host> = hosts.to_vec();
    out.push(Host::Dns("localhost".into()));
    out.push(Host::Ip(IpAddr::from([127, 0, 0, 1])));
    dedup(out)
}

/// Removes repeats, keeping the first occurrence's position.
fn dedup(hosts: Vec<Host>) -> Vec<Host> {
    let mut out: Vec<Host> = Vec::with_capacity(hosts.len());
    for h in hosts {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Generates the whole PKI. See the module doc.
pub(super) fn generate(req: &PkiRequest, now: Timestamp) -> Result<Pki, NewClusterError> {
    let (start, ca_end, leaf_end) = window(now, req.cert_validity, req.ca_validity)?;
    let (ca, issuer) = new_ca(CA_CN, start, ca_end)?;
    let apiserver = leaf(
        &issuer,
        &Leaf {
            cn: APISERVER_CN,
            org: None,
            sans: &req.apiserver_sans,
            server: true,
            client: false,
        },
        start,
        leaf_end,
    )?;
    let client = |cn, org| Leaf {
        cn,
        org,
        sans: &[],
        server: false,
        client: true,
    };
    let kubelet_client = leaf(&issuer, &client(KUBELET_CLIENT_CN, None), start, leaf_end)?;
    let admin = leaf(
        &issuer,
        &client(ADMIN_CN, Some(ADMIN_GROUP)),
        start,
        leaf_end,
    )?;
    let mut kubelets = Vec::with_capacity(req.node_names.len());
    for name in &req.node_names {
        let cn = format!("{NODE_USER_PREFIX}{name}");
        let spec = Leaf {
            cn: &cn,
            org: Some(NODES_GROUP),
            sans: &[],
            server: false,
            client: true,
        };
        let cert = leaf(&issuer, &spec, start, leaf_end)?;
        kubelets.push((name.clone(), cert));
    }
    let sa = KeyPair::generate().map_err(pki_err("the service-account key"))?;
    let etcd = match &req.etcd_sans {
        None => None,
        Some(sans) => {
            let (ca, issuer) = new_ca(ETCD_CA_CN, start, ca_end)?;
            let member = |cn| Leaf {
                cn,
                org: None,
                sans,
                server: true,
                client: true,
            };
            Some(EtcdPki {
                ca,
                server: leaf(&issuer, &member("etcd-server"), start, leaf_end)?,
                peer: leaf(&issuer, &member("etcd-peer"), start, leaf_end)?,
                client: leaf(&issuer, &client(ETCD_CLIENT_CN, None), start, leaf_end)?,
            })
        }
    };
    Ok(Pki {
        issued_at: now,
        ca,
        apiserver,
        kubelet_client,
        admin,
        service_account_key_pem: sa.serialize_pem(),
        service_account_pub_pem: sa.public_key_pem(),
        etcd,
        kubelets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_the_day_before() {
        let now: Timestamp = "2028-02-29T13:00:00Z".parse().unwrap();
        let (start, ca_end, leaf_end) =
            window(now, Lifetime::Years(1), Lifetime::Years(10)).unwrap();
        assert_eq!(start.to_string(), "2028-02-28");
        assert_eq!(ca_end.to_string(), "2038-02-28");
        assert_eq!(leaf_end.to_string(), "2029-02-28");
        let (_, _, leaf_end) = window(now, Lifetime::Days(90), Lifetime::Years(10)).unwrap();
        assert_eq!(leaf_end.to_string(), "2028-05-28");
    }

    #[test]
    fn sans_are_deduplicated_in_order() {
        let lo = Host::Ip(IpAddr::from([127, 0, 0, 1]));
        let sans = apiserver_sans(std::slice::from_ref(&lo), IpAddr::from([10, 3, 0, 1]));
        assert_eq!(sans.first(), Some(&lo));
        assert_eq!(sans.len(), 7);
    }
}
