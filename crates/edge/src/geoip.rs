//! Country and ASN of a client address, from MaxMind-DB-format files
//! (GeoLite2-Country / GeoLite2-ASN, DB-IP lite, or any file of the same
//! shape), for IP access rules. Files are read once at start.

use burrow_policy::access::Facts;
use maxminddb::Reader;
use std::net::IpAddr;
use std::path::Path;

/// The loaded databases; either may be absent.
#[derive(Default)]
pub(crate) struct GeoIp {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl GeoIp {
    /// Loads the given files (blocking: call at start-up).
    ///
    /// # Errors
    /// A message naming the flag and file that could not be read.
    pub(crate) fn open(country: Option<&Path>, asn: Option<&Path>) -> Result<Self, String> {
        let load = |flag: &str, p: &Path| {
            Reader::open_readfile(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
        };
        Ok(Self {
            country: country.map(|p| load("--geoip-country", p)).transpose()?,
            asn: asn.map(|p| load("--geoip-asn", p)).transpose()?,
        })
    }

    /// Whether a country (or ASN) database is loaded.
    pub(crate) fn has(&self, target: &str) -> bool {
        match target {
            "country" => self.country.is_some(),
            "asn" => self.asn.is_some(),
            _ => true,
        }
    }

    /// What the databases say about `ip`. Lookup failures count as unknown.
    pub(crate) fn facts(&self, ip: IpAddr) -> Facts {
        let country = self.country.as_ref().and_then(|r| {
            let c: maxminddb::geoip2::Country<'_> = r.lookup(ip).ok()?.decode().ok()??;
            c.country.iso_code.map(str::to_owned)
        });
        let asn = self.asn.as_ref().and_then(|r| {
            let a: maxminddb::geoip2::Asn<'_> = r.lookup(ip).ok()?.decode().ok()??;
            a.autonomous_system_number
        });
        Facts { ip, country, asn }
    }
}
