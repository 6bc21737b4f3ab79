//! TLS helpers for the tests: a test CA and certificates made with the
//! openssl command line, and `openssl s_server` as a TLS origin.

use std::net::SocketAddr;
use std::time::Duration;

/// Runs openssl with `args`, failing the test with its stderr.
pub fn openssl(args: &[&str]) {
    let st = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        st.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A test CA in `dir` (`ca.pem`, `ca.key`); returns the certificate path.
pub fn make_ca(dir: &std::path::Path) -> String {
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.pem"),
    ]);
    d("ca.pem")
}

/// A certificate for DNS name `name` signed by the CA in `ca_dir`, written
/// as `out/NAME.pem` and `out/NAME.key`.
pub fn make_cert(ca_dir: &std::path::Path, name: &str, out: &std::path::Path) {
    let d = |f: &str| ca_dir.join(f).to_string_lossy().into_owned();
    let o = |f: &str| out.join(f).to_string_lossy().into_owned();
    let (key, csr, ext) = (
        o(&format!("{name}.key")),
        d(&format!("{name}.csr")),
        d(&format!("{name}.ext")),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(&ext, format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &o(&format!("{name}.pem")),
    ]);
}

/// A child process killed on drop.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -rev` (answers each line reversed) on a free port with
/// certificate `name` from `dir`; its report (cipher lists) goes to `log`.
pub fn tls_origin(
    dir: &std::path::Path,
    name: &str,
    log: &std::path::Path,
) -> (KillOnDrop, SocketAddr) {
    s_server(dir, name, log, "-rev")
}

/// `openssl s_server MODE` (`-rev`, `-www`, ...) on a free port with
/// certificate `name` from `dir`; its report goes to `log`.
pub fn s_server(
    dir: &std::path::Path,
    name: &str,
    log: &std::path::Path,
    mode: &str,
) -> (KillOnDrop, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
    let f = |x: &str| dir.join(x).to_string_lossy().into_owned();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-accept", &addr.to_string(), mode])
        .args([
            "-cert",
            &f(&format!("{name}.pem")),
            "-key",
            &f(&format!("{name}.key")),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // With -rev and -www, the connection report goes to stderr.
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("openssl must be installed");
    let guard = KillOnDrop(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, addr)
}
