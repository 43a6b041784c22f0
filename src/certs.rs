//! Certificate lifetimes: what `render --cert-validity` and `--ca-validity` accept, and
//! what `kubeboot certs check` reports (issue 15, finding 16). kubeboot does not rotate
//! certificates, so an operator must learn of an expiry before the api-server stops
//! accepting the kubelets (kubeadm's `certs check-expiration` answers the same need).
//!
//! Pure: the certificates come in as PEM bytes with a label (where they were found);
//! reading the files is `cmd::certs`.

use jiff::{Span, Timestamp, ToSpan};
use serde::Serialize;

/// A lifetime flag's value: whole days (`90d`) or calendar years (`1y`, `10y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Days(i64),
    Years(i64),
}

impl Lifetime {
    pub fn span(self) -> Span {
        match self {
            Lifetime::Days(d) => d.days(),
            Lifetime::Years(y) => y.years(),
        }
    }

    /// For comparing two lifetimes: a year counts 365 days.
    pub fn approx_days(self) -> i64 {
        match self {
            Lifetime::Days(d) => d,
            Lifetime::Years(y) => y * 365,
        }
    }
}

impl std::fmt::Display for Lifetime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lifetime::Days(d) => write!(f, "{d}d"),
            Lifetime::Years(y) => write!(f, "{y}y"),
        }
    }
}

/// Parses `90d` or `2y`: 1 day to 100 years.
pub fn parse_lifetime(s: &str) -> Result<Lifetime, String> {
    let bad = || format!("{s:?} is not a lifetime like 90d or 2y");
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let l = match unit {
        "d" => Lifetime::Days(n),
        "y" => Lifetime::Years(n),
        _ => return Err(bad()),
    };
    if !(1..=36_500).contains(&l.approx_days()) {
        return Err(format!("{s:?} is not between 1d and 100y"));
    }
    Ok(l)
}

/// One certificate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Where: a file, or a kubeconfig and the entry in it.
    pub source: String,
    pub subject: String,
    pub ca: bool,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days from now to `not_after`; negative once expired.
    pub days_left: i64,
}

/// The certificates in PEM `bytes` (every CERTIFICATE block), labelled `source`.
pub fn from_pem(source: &str, bytes: &[u8], now: Timestamp) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("{source}: not PEM: {e}"))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("{source}: not an X.509 certificate: {e}"))?;
        let secs = cert.validity().not_after.timestamp();
        let not_after = Timestamp::from_second(secs)
            .map_err(|e| format!("{source}: its notAfter is out of range: {e}"))?;
        let subject = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map_or_else(|| cert.subject().to_string(), str::to_string);
        out.push(Found {
            source: source.to_string(),
            subject,
            ca: cert.is_ca(),
            not_after: not_after.to_string(),
            days_left: (secs - now.as_second()).div_euclid(86_400),
        });
    }
    if out.is_empty() {
        return Err(format!("{source}: holds no certificate"));
    }
    Ok(out)
}

/// The certificates that expire within `days` (or have), soonest first.
pub fn expiring(found: &[Found], days: i64) -> Vec<&Found> {
    let mut soon: Vec<&Found> = found.iter().filter(|f| f.days_left < days).collect();
    soon.sort_by_key(|f| f.days_left);
    soon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_days_or_years_within_bounds() {
        assert_eq!(parse_lifetime("90d"), Ok(Lifetime::Days(90)));
        assert_eq!(parse_lifetime("10y"), Ok(Lifetime::Years(10)));
        for bad in ["", "d", "10", "1w", "0d", "101y", "-1d", "1.5y"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    fn cert(days: i64, ca: bool) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "kube-ca");
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let end = Timestamp::now().checked_add((days * 24).hours()).unwrap();
        p.not_after = rcgen::date_time_ymd(
            i32::from(end.to_zoned(jiff::tz::TimeZone::UTC).year()),
            end.to_zoned(jiff::tz::TimeZone::UTC).month().unsigned_abs(),
            end.to_zoned(jiff::tz::TimeZone::UTC).day().unsigned_abs(),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().pem().into_bytes()
    }

    #[test]
    fn a_bundle_is_read_whole_and_the_soonest_come_first() {
        let mut bundle = cert(400, true);
        bundle.extend(cert(10, false));
        let found = from_pem("tls/x.crt", &bundle, Timestamp::now()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].subject, "kube-ca");
        assert!(found[0].ca && !found[1].ca);
        // Midnight UTC of the day: 8 or 9 whole days left of 10.
        assert!((8..=10).contains(&found[1].days_left), "{:?}", found[1]);
        let soon = expiring(&found, 30);
        assert_eq!(soon.len(), 1);
        assert!(!soon[0].ca);
        assert!(expiring(&found, 5).is_empty());
    }

    #[test]
    fn no_certificate_is_an_error_naming_the_source() {
        let e = from_pem(
            "tls/ca.key",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            Timestamp::now(),
        );
        assert!(e.unwrap_err().starts_with("tls/ca.key: "));
    }
}
