//! Prometheus exposition formats. `prometheus-client` writes OpenMetrics
//! text; Prometheus servers ask for it, but older scrapers, `curl` users and
//! `promtool check metrics` read the classic text format (0.0.4). This
//! rewrites the one into the other: `unknown` becomes `untyped`, a counter
//! family's `HELP`/`TYPE` take the `_total` name its samples carry, and
//! `# UNIT` / `# EOF` lines go.

/// Content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text → Prometheus text format 0.0.4.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    to_prometheus_text_with(openmetrics, &[])
}

/// [`to_prometheus_text`], with `classic_counters`: `unknown` families
/// (exposed under an exact name without `_total`, as cloudflared's
/// counters are) whose classic type is `counter`.
pub fn to_prometheus_text_with(openmetrics: &str, classic_counters: &[&str]) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // Counter families seen in `# TYPE` lines, to rename their `# HELP`.
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" unknown") {
                let ty = if classic_counters.contains(&name) {
                    "counter"
                } else {
                    "untyped"
                };
                out.push_str(&format!("# TYPE {name} {ty}\n"));
                continue;
            }
            if let Some(name) = rest.strip_suffix(" counter") {
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(&format!("# HELP {name}_total {help}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_classic_text() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n\
                  # HELP b Old counter.\n# TYPE b unknown\nb 2\n# HELP c Gauge.\n# TYPE c gauge\n# UNIT c bytes\nc 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n\
             # HELP b Old counter.\n# TYPE b untyped\nb 2\n# HELP c Gauge.\n# TYPE c gauge\nc 1\n"
        );
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
