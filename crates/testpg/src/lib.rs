//! A throwaway PostgreSQL cluster for a test: Debian's `postgresql`
//! binaries, `initdb` into a temp dir as the `postgres` user (PostgreSQL
//! refuses to run as root), a free port on 127.0.0.1, its socket in the
//! same dir; stopped (and the dir removed) on drop. `.ci/test` installs the
//! package. A dev-dependency of the crates whose tests need a database
//! (the store's, the cluster tests').

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running cluster; `url` reaches its `postgres` database as the
/// superuser `burrow` (trust authentication, loopback only).
pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Addresses it listens on besides 127.0.0.1 ([`Pg::listen_also`]).
    extra: std::sync::Mutex<Vec<String>>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `postgres://burrow@127.0.0.1:PORT/postgres`.
    pub url: String,
}

/// The newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e}): apt-get install postgresql"))?
        .filter_map(Result::ok)
        .filter_map(|d| Some((d.file_name().to_str()?.parse().ok()?, d.path().join("bin"))))
        .filter(|(_, b)| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no initdb under /usr/lib/postgresql: apt-get install postgresql".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// A free TCP port of 127.0.0.1 below the ephemeral range (32768 up), so
/// no outgoing connection takes it while the cluster is stopped.
fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let p = rand::thread_rng().gen_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// `program` as root: directly, or through `sudo -n` (no password prompt).
fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(program);
        c
    }
}

/// Runs `tool ARGS` as the `postgres` user.
fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<Output, String> {
    privileged("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .map_err(|e| format!("runuser {tool}: {e}"))
}

fn ok(out: Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Pg {
    /// Starts a cluster; the error says why it cannot (not installed, not
    /// root, no `postgres` user), for a test to report.
    pub fn start() -> Result<Pg, String> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let path = |p: &Path| p.to_str().unwrap_or_default().to_owned();
        // The postgres user must own the directory it runs in.
        let chown = privileged("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("chown: {e}"))?;
        ok(
            chown,
            "chown to postgres (needs root or password-less sudo)",
        )?;
        ok(
            as_postgres(
                &bin,
                "initdb",
                &[
                    "-D",
                    &path(&data),
                    "-U",
                    "burrow",
                    "-A",
                    "trust",
                    "--no-sync",
                ],
            )?,
            "initdb",
        )?;
        let port = free_port();
        let pg = Pg {
            url: format!("postgres://burrow@127.0.0.1:{port}/postgres"),
            port,
            dir,
            bin,
            extra: std::sync::Mutex::default(),
        };
        pg.set_running(true)?;
        Ok(pg)
    }

    /// `psql -c SQL` against the cluster; its stdout.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-d", &self.url, "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        ok(out, "psql").map(|()| text)
    }

    /// Listens on `ip` too and lets clients from `cidr` in (trust, as on
    /// loopback); restarts the cluster. For nodes in network namespaces.
    pub fn listen_also(&self, ip: &str, cidr: &str) -> Result<(), String> {
        let hba = self.dir.path().join("data").join("pg_hba.conf");
        let line = format!("host all all {cidr} trust\n");
        let out = privileged("sh")
            .arg("-c")
            .arg(format!("printf '%s' '{line}' >> {}", hba.display()))
            .output()
            .map_err(|e| format!("pg_hba.conf: {e}"))?;
        ok(out, "appending to pg_hba.conf")?;
        self.extra.lock().unwrap().push(ip.to_owned());
        self.set_running(false)?;
        self.set_running(true)
    }

    /// Stops the cluster (as if the database host went away) or starts it
    /// again on the same port.
    pub fn set_running(&self, running: bool) -> Result<(), String> {
        let data = self.dir.path().join("data");
        let data = data.to_str().unwrap_or_default();
        if running {
            let mut listen = vec!["127.0.0.1".to_owned()];
            listen.extend(self.extra.lock().unwrap().iter().cloned());
            let opts = format!(
                "-p {} -k {} -c listen_addresses={} -c fsync=off",
                self.port,
                self.dir.path().display(),
                listen.join(",")
            );
            let log = self.dir.path().join("pg.log");
            let log = log.to_str().unwrap_or_default();
            ok(
                as_postgres(
                    &self.bin,
                    "pg_ctl",
                    &["-D", data, "-o", &opts, "-l", log, "-w", "start"],
                )?,
                "pg_ctl start",
            )
        } else {
            ok(
                as_postgres(
                    &self.bin,
                    "pg_ctl",
                    &["-D", data, "-m", "immediate", "-w", "stop"],
                )?,
                "pg_ctl stop",
            )
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.set_running(false);
    }
}
