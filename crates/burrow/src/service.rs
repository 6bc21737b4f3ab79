//! `burrow service install edge|connector`: a hardened systemd unit for
//! the edge or a connector. The unit runs as a dedicated user with no
//! privileges beyond binding ports below 1024 (edge only), a read-only
//! system, its own state directory, and a stop timeout longer than the
//! drain grace period.

use std::path::Path;

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// `burrow edge`.
    Edge,
    /// `burrow tunnel run` (a connector).
    Connector,
}

impl Kind {
    pub(crate) fn unit_name(self) -> &'static str {
        match self {
            Kind::Edge => "burrow-edge.service",
            Kind::Connector => "burrow-connector.service",
        }
    }
}

/// The unit file text.
pub(crate) fn unit(kind: Kind, binary: &Path, config: &Path, user: &str) -> String {
    let (what, exec, caps) = match kind {
        Kind::Edge => (
            "burrow edge (tunnel endpoint, apps, admin API)",
            format!(
                "{} edge --config {} --state /var/lib/burrow/edge.db",
                binary.display(),
                config.display()
            ),
            // Ports 80/443 need it; nothing else does.
            "CAP_NET_BIND_SERVICE",
        ),
        Kind::Connector => (
            "burrow connector (dials out to the edge)",
            format!(
                "{} tunnel run --config {}",
                binary.display(),
                config.display()
            ),
            "",
        ),
    };
    format!(
        "# Written by `burrow service install {kind}`.\n\
         [Unit]\n\
         Description={what}\n\
         Documentation=https://github.com/burrow/burrow#readme\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Group={user}\n\
         # Relative paths in the config (credentials-file: web.json) are\n\
         # relative to its directory.\n\
         WorkingDirectory={workdir}\n\
         ExecStart={exec}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         # SIGTERM drains open flows for the grace period (30 s) first.\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=45s\n\
         LimitNOFILE=1048576\n\
         StateDirectory=burrow\n\
         StateDirectoryMode=0700\n\
         LogsDirectory=burrow\n\
         AmbientCapabilities={caps}\n\
         CapabilityBoundingSet={caps}\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=yes\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         UMask=0077\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        kind = match kind {
            Kind::Edge => "edge",
            Kind::Connector => "connector",
        },
        workdir = config.parent().unwrap_or(Path::new("/")).display(),
    )
}

/// Where the unit runs burrow from unless `--binary` says otherwise.
pub(crate) const DEFAULT_BINARY: &str = "/usr/local/bin/burrow";

/// What to run after the unit is written; `install_from` is this binary
/// when it is not the one the unit runs (a build tree, say).
pub(crate) fn next_steps(
    kind: Kind,
    user: &str,
    config: &Path,
    binary: &Path,
    install_from: Option<&Path>,
) -> String {
    let name = kind.unit_name();
    let install = install_from.map_or_else(String::new, |from| {
        format!(
            "\x20 install -m 0755 {} {}   # the unit runs that path\n",
            from.display(),
            binary.display()
        )
    });
    format!(
        "Next:\n\
         {install}\
         \x20 useradd --system --home-dir /var/lib/burrow --shell /usr/sbin/nologin {user}   # once\n\
         \x20 # put the config at {} (readable by {user}), then:\n\
         \x20 systemctl daemon-reload && systemctl enable --now {name}\n\
         \x20 journalctl -u {name} -f\n",
        config.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_hardened_and_run_the_right_command() {
        let c = unit(
            Kind::Connector,
            Path::new("/usr/local/bin/burrow"),
            Path::new("/etc/burrow/config.yml"),
            "burrow",
        );
        assert!(c.contains(
            "ExecStart=/usr/local/bin/burrow tunnel run --config /etc/burrow/config.yml\n"
        ));
        assert!(c.contains("WorkingDirectory=/etc/burrow\n"), "{c}");
        let steps = next_steps(
            Kind::Connector,
            "burrow",
            Path::new("/etc/burrow/config.yml"),
            Path::new("/usr/local/bin/burrow"),
            Some(Path::new("/home/me/burrow/target/release/burrow")),
        );
        assert!(steps.contains(
            "install -m 0755 /home/me/burrow/target/release/burrow /usr/local/bin/burrow"
        ));
        assert!(c.contains("NoNewPrivileges=yes\n") && c.contains("ProtectSystem=strict\n"));
        assert!(
            c.contains("AmbientCapabilities=\n"),
            "a connector needs no capability"
        );
        let e = unit(
            Kind::Edge,
            Path::new("/usr/local/bin/burrow"),
            Path::new("/etc/burrow/edge.yaml"),
            "burrow",
        );
        assert!(e.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE\n"));
        assert!(e.contains("--state /var/lib/burrow/edge.db"));
        // Every line is a section, a comment, blank, or key=value.
        for l in e.lines() {
            assert!(
                l.is_empty() || l.starts_with('#') || l.starts_with('[') || l.contains('='),
                "{l}"
            );
        }
    }
}
