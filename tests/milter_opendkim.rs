//! The milter client against a real opendkim, and its signature through the
//! verifier.
//!
//! Each case starts a private `opendkim -f` on a temporary configuration
//! (signing mode, one key, 127.0.0.1 internal), on a loopback port or on a
//! unix socket, submits a message as Postfix would, and checks that the
//! inserted DKIM-Signature verifies with `dkim_verify` against the record of
//! the key, and in dkimpy when it is there. A client outside InternalHosts
//! gets no signature. Without an opendkim binary the test says "skipped".

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dkim_setup::dkim_verify;
use dkim_setup::milter::{self, Address};

fn opendkim_binary() -> Option<PathBuf> {
    ["/usr/sbin/opendkim", "/usr/bin/opendkim"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A running opendkim, stopped when dropped.
struct Opendkim {
    child: Child,
    log: PathBuf,
}

impl Drop for Opendkim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Opendkim {
    fn start(binary: &Path, dir: &Path, socket: &str, address: &Address) -> Opendkim {
        let key = dkim_setup::keys::generate(2048).unwrap();
        let key_path = dir.join("mail.private");
        std::fs::write(&key_path, key.pem.as_bytes()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("record.txt"), &key.record).unwrap();
        let conf = dir.join("opendkim.conf");
        std::fs::write(
            &conf,
            format!(
                "Syslog no\nMode s\nDomain example.test\nSelector mail\nKeyFile {}\n\
                 Socket {socket}\nCanonicalization relaxed/simple\nInternalHosts 127.0.0.1\n\
                 RequireSafeKeys false\nPidFile {}\n",
                key_path.display(),
                dir.join("opendkim.pid").display()
            ),
        )
        .unwrap();
        let log = dir.join("opendkim.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .args(["-f", "-x"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut running = Opendkim { child, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let up = match address {
                Address::Tcp(a) => TcpStream::connect(a).is_ok(),
                Address::Unix(p) => UnixStream::connect(p).is_ok(),
            };
            if up {
                return running;
            }
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("opendkim exited ({status}): {}", running.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "opendkim did not listen: {}",
                running.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        text
    }
}

fn headers() -> Vec<(String, String)> {
    [
        ("From", " Alice <alice@example.test>"),
        ("To", " bob@example.org"),
        ("Subject", " a  test\r\n\tfolded"),
        ("Date", " Mon, 1 Jan 2024 00:00:00 +0000"),
        ("Message-ID", " <check.1@example.test>"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

const BODY: &str = "Hello  there.\r\n\r\nBye.\r\n\r\n\r\n";

fn dkimpy() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import dkim"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const VERIFY: &str = r#"
import sys, dkim
record = open(sys.argv[2], 'rb').read()
ok = dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=lambda name, timeout=5: record)
print('pass' if ok else 'fail')
"#;

fn check_signing(binary: &Path, dir: &Path, socket: &str, address: Address) {
    let opendkim = Opendkim::start(binary, dir, socket, &address);
    let record = std::fs::read_to_string(dir.join("record.txt")).unwrap();
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let timeout = Duration::from_secs(10);
    let (from, to) = ("alice@example.test", "bob@example.org");
    let done = milter::submit(&address, timeout, localhost, from, to, &headers(), BODY)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", opendkim.log_text()));
    assert!(matches!(done.verdict, 'a' | 'c'), "{done:?}");
    let (name, signature) = done
        .inserted
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .unwrap_or_else(|| panic!("no signature: {done:?}\n{}", opendkim.log_text()));
    let verified = dkim_verify::verify(signature, &headers(), BODY, &record)
        .unwrap_or_else(|e| panic!("{e:#}\nsignature:{signature}"));
    assert_eq!(verified.domain, "example.test");
    assert_eq!(verified.selector, "mail");
    assert_eq!(verified.canonicalization, "relaxed/simple");
    assert!(
        verified
            .signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("from"))
    );

    // The message as Postfix would write it, in dkimpy.
    if let Some(python) = dkimpy() {
        let mut message = format!("{name}:{}\r\n", signature.replace('\n', "\r\n"));
        for (n, v) in headers() {
            message.push_str(&format!("{n}:{v}\r\n"));
        }
        message.push_str("\r\n");
        message.push_str(BODY);
        let file = dir.join("signed.eml");
        std::fs::write(&file, message).unwrap();
        let out = Command::new(python)
            .args(["-c", VERIFY])
            .arg(&file)
            .arg(dir.join("record.txt"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pass");
    }

    // A client opendkim does not trust gets no signature.
    let outside = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let done = milter::submit(&address, timeout, outside, from, to, &headers(), BODY).unwrap();
    assert!(done.inserted.is_empty(), "{done:?}");
}

#[test]
fn opendkim_signs_what_the_milter_client_submits() {
    let Some(binary) = opendkim_binary() else {
        println!("skipped: no opendkim binary (install the opendkim package)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = dir.path().join("tcp");
    std::fs::create_dir(&tcp).unwrap();
    let address = Address::Tcp((Ipv4Addr::LOCALHOST, port).into());
    check_signing(&binary, &tcp, &format!("inet:{port}@127.0.0.1"), address);

    let unix = dir.path().join("unix");
    std::fs::create_dir(&unix).unwrap();
    let sock = unix.join("opendkim.sock");
    let socket = format!("local:{}", sock.display());
    check_signing(&binary, &unix, &socket, Address::Unix(sock));
}
