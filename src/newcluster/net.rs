//! The addresses `render` is given: api-server and etcd URLs, pod and service CIDRs.
//!
//! They end up in certificates (SANs), kubeconfigs and component flags, where a typo
//! gives a cluster that renders fine and then fails at boot with a TLS or routing
//! error far from its cause. So they are parsed strictly here, and each error names
//! the flag and the value. No URL crate is needed: only `scheme://host[:port][/]` is
//! meaningful for these endpoints, and anything else (a path, userinfo, a query) is a
//! mistake worth reporting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::NewClusterError;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The host part of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A lower-cased DNS name.
    Dns(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

/// One `scheme://host[:port]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub host: Host,
    pub port: Option<u16>,
}

impl Endpoint {
    /// The port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }
}

/// Canonical form: lower-case host, IPv6 in brackets, no trailing slash.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "{scheme}://[{ip}]")?,
            host => write!(f, "{scheme}://{host}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn bad(flag: &'static str, value: &str, reason: impl Into<String>) -> NewClusterError {
    NewClusterError::Option {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses `scheme://host[:port][/]`.
pub fn parse_endpoint(flag: &'static str, value: &str) -> Result<Endpoint, NewClusterError> {
    let (scheme, rest) = if let Some(r) = value.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = value.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(bad(flag, value, "must start with https:// or http://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(bad(flag, value, "must not have a path, query or fragment"));
    }
    if authority.contains('@') {
        return Err(bad(flag, value, "must not carry credentials"));
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| bad(flag, value, "unclosed '[' around an IPv6 address"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| bad(flag, value, format!("{ip:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad(flag, value, "expected ':PORT' after the IPv6 address"))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        (parse_host(flag, value, host)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad(flag, value, format!("port {p:?} is not 1-65535"))),
        },
    };
    Ok(Endpoint { scheme, host, port })
}

fn parse_host(flag: &'static str, value: &str, host: &str) -> Result<Host, NewClusterError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = host.to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(bad(
            flag,
            value,
            format!("{host:?} is not an IP address or DNS name (IPv6 needs [brackets])"),
        ));
    }
    Ok(Host::Dns(name))
}

/// An IP network `address/prefix` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32),
        IpAddr::V6(v6) => (v6.to_bits(), 128),
    }
}

/// The mask of a `prefix`-bit network in a `width`-bit address, as the low bits of u128.
fn mask(prefix: u8, width: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let host = u32::from(width.saturating_sub(prefix));
    let host_mask = 1u128.checked_shl(host).map_or(u128::MAX, |b| b - 1);
    all & !host_mask
}

impl Cidr {
    /// Parses one network; `host_bits` bounds the size the flag's consumer supports.
    pub fn parse(
        flag: &'static str,
        value: &str,
        host_bits: std::ops::RangeInclusive<u8>,
    ) -> Result<Cidr, NewClusterError> {
        if value.contains(',') {
            return Err(bad(
                flag,
                value,
                "dual-stack (two networks) is not supported yet",
            ));
        }
        let (addr, prefix) = value
            .split_once('/')
            .ok_or_else(|| bad(flag, value, "must be ADDRESS/PREFIX"))?;
        let network: IpAddr = addr
            .parse()
            .map_err(|_| bad(flag, value, format!("{addr:?} is not an IP address")))?;
        let (value_bits, width) = bits(network);
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= width)
            .ok_or_else(|| bad(flag, value, format!("prefix must be 0-{width}")))?;
        let host = width - prefix;
        if !host_bits.contains(&host) {
            return Err(bad(
                flag,
                value,
                format!(
                    "a /{prefix} network is not supported here: it must have {} to {} host bits",
                    host_bits.start(),
                    host_bits.end()
                ),
            ));
        }
        let cidr = Cidr { network, prefix };
        let masked = value_bits & mask(prefix, width);
        if masked != value_bits {
            let suggestion = cidr.with_bits(masked);
            return Err(bad(
                flag,
                value,
                format!("has host bits set; did you mean {suggestion}/{prefix}?"),
            ));
        }
        Ok(cidr)
    }

    fn with_bits(&self, b: u128) -> IpAddr {
        match self.network {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from_bits(b as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from_bits(b)),
        }
    }

    /// The first address after the network address (the `kubernetes` service IP).
    pub fn first_host(&self) -> IpAddr {
        // `parse` guarantees host bits, all zero, so setting the lowest one is +1.
        self.with_bits(bits(self.network).0 | 1)
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let ((a, width), (b, other_width)) = (bits(self.network), bits(other.network));
        if width != other_width {
            return false;
        }
        let m = mask(self.prefix.min(other.prefix), width);
        a & m == b & m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = parse_endpoint("--x", "https://K8S.Example.com:6443/").unwrap();
        assert_eq!(e.host, Host::Dns("k8s.example.com".into()));
        assert_eq!(e.to_string(), "https://k8s.example.com:6443");
        let e = parse_endpoint("--x", "https://[fd00::1]:443").unwrap();
        assert_eq!(e.to_string(), "https://[fd00::1]:443");
        let e = parse_endpoint("--x", "http://10.0.0.1").unwrap();
        assert_eq!((e.scheme, e.port_or_default()), (Scheme::Http, 80));
        for bad in [
            "10.0.0.1:6443",
            "https://",
            "https://a/b",
            "https://u:p@h",
            "https://fd00::1",
            "https://h:0",
            "https://h:99999",
            "https://-h",
            "https://[::1",
        ] {
            assert!(parse_endpoint("--x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("--x", "10.3.0.0/24", 2..=20).unwrap();
        assert_eq!(c.first_host().to_string(), "10.3.0.1");
        let c6 = Cidr::parse("--x", "fd00:3::/112", 2..=20).unwrap();
        assert_eq!(c6.first_host().to_string(), "fd00:3::1");
        let err = Cidr::parse("--x", "10.3.0.5/24", 2..=20).unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.3.0.0/24"),
            "{err}"
        );
        for bad in [
            "10.3.0.0",
            "10.3.0.0/33",
            "x/8",
            "10.0.0.0/8",
            "10.3.0.0/24,fd00::/112",
        ] {
            assert!(Cidr::parse("--x", bad, 2..=20).is_err(), "{bad}");
        }
        let pods = Cidr::parse("--x", "10.2.0.0/16", 8..=24).unwrap();
        assert!(!pods.overlaps(&c));
        let all = Cidr::parse("--x", "10.0.0.0/8", 8..=24).unwrap();
        assert!(all.overlaps(&c) && c.overlaps(&all));
        assert!(!all.overlaps(&c6));
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(32, 32), u128::from(u32::MAX));
        assert_eq!(mask(0, 128), 0);
    }
}
