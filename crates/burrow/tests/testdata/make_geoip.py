"""Builds the tiny MaxMind-DB files the IP-access-rule tests use.

Run: pip install mmdb-writer netaddr; python3 make_geoip.py
(numbers are written as uint32, as MaxMind's own files do; a plain Python
int would be written as a signed int32, which readers expecting GeoLite2
do not decode.)
Writes test-country.mmdb (GeoLite2-Country shape) and test-asn.mmdb
(GeoLite2-ASN shape) covering loopback addresses only:
  127.0.0.3/32 -> country JP
  127.0.0.4/32 -> country US, ASN 64500 ("Test Net")
"""
from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

country = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
country.insert_network(IPSet(["127.0.0.3/32"]), {"country": {"iso_code": "JP"}})
country.insert_network(IPSet(["127.0.0.4/32"]), {"country": {"iso_code": "US"}})
country.to_db_file("test-country.mmdb")

asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
asn.insert_network(IPSet(["127.0.0.4/32"]), {"autonomous_system_number": MmdbU32(64500), "autonomous_system_organization": "Test Net"})
asn.to_db_file("test-asn.mmdb")
