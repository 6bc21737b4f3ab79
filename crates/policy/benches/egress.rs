//! `decide` over 1,000 egress rules: the flow matches only the last one
//! (the worst case: every rule is evaluated).
#![allow(missing_docs)]

use burrow_policy::egress::{decide, Action, Facts, Protocol, Rule, Selector};
use burrow_policy::host::HostPattern;
use burrow_policy::ports::PortRange;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::{IpAddr, Ipv4Addr};

fn rules(n: usize) -> Vec<Rule> {
    let mut v: Vec<Rule> = (0..n - 1)
        .map(|i| Rule {
            id: format!("r{i}"),
            name: format!("rule {i}"),
            selector: Selector {
                groups: vec![format!("group-{i}")],
                dst: vec![format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()],
                ports: vec![PortRange::new(1000, 2000).unwrap()],
                protocols: vec![Protocol::Tcp],
                hostnames: vec![HostPattern::parse(&format!("*.site{i}.example.com")).unwrap()],
                ..Default::default()
            },
            action: Action::Dedicated {
                primary_ipv4: Ipv4Addr::new(192, 0, 2, (i % 250) as u8),
                secondary_ipv4: None,
                ipv6_range: None,
            },
        })
        .collect();
    v.push(Rule {
        id: "all".into(),
        name: "catch-all".into(),
        selector: Selector::default(),
        action: Action::Default,
    });
    v
}

fn bench(c: &mut Criterion) {
    let rules = rules(1_000);
    let facts = Facts {
        user_email: Some("ana@example.com".into()),
        groups: vec!["eng".into()],
        device_id: Some("dev-1".into()),
        src_ip: IpAddr::from([203, 0, 113, 7]),
        dst_ip: Some(IpAddr::from([198, 51, 100, 20])),
        dst_port: 443,
        protocol: Protocol::Tcp,
        hostname: Some("api.example.org".into()),
        proxied: false,
        vnet: None,
    };
    assert_eq!(decide(&rules, &facts).index, Some(999));
    c.bench_function("decide, 1000 rules, last matches", |b| {
        b.iter(|| decide(black_box(&rules), black_box(&facts)).index)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
