//! Starting, restarting and reloading opendkim and Postfix, and proving
//! that opendkim really listens afterwards.
//!
//! systemd is used only when it runs (`/run/systemd/system` exists, as
//! `sd_booted` checks); the `systemctl` binary alone proves nothing. Without
//! it, `service NAME ACTION` runs the init script. Start commands report
//! success even when the daemon dies a moment later (platform note P10), and
//! opendkim takes seconds to exit after SIGTERM (P11), so a restart waits
//! for the old process to be gone and every start ends with a probe: the
//! process is alive and the socket accepts a connection.

use crate::plan::ServiceAction;
use crate::system::Root;
use crate::system::runner::{Runner, argv as words};
use crate::validate::Socket;
use anyhow::{Result, bail};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The init system that manages services on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Systemd,
    SysV,
}

pub fn init_system(root: &Root) -> Init {
    if root.exists("/run/systemd/system") {
        Init::Systemd
    } else {
        Init::SysV
    }
}

/// True when a systemd unit is enabled for the default target.
pub fn enabled(root: &Root, name: &str) -> bool {
    root.exists(&format!(
        "/etc/systemd/system/multi-user.target.wants/{name}.service"
    ))
}

/// The command that performs `action` on service `name`.
pub fn argv(init: Init, name: &str, action: ServiceAction) -> Vec<String> {
    let verb = match action {
        ServiceAction::Enable => "enable",
        ServiceAction::Start => "start",
        ServiceAction::Restart => "restart",
        ServiceAction::Reload => "reload",
    };
    match (init, name, action) {
        (_, "postfix", ServiceAction::Reload) => words(&["postfix", "reload"]),
        (Init::Systemd, _, _) => words(&["systemctl", verb, name]),
        (Init::SysV, _, ServiceAction::Enable) => words(&["update-rc.d", name, "enable"]),
        (Init::SysV, _, _) => words(&["service", name, verb]),
    }
}

/// Processes of this PID namespace whose command name is `opendkim`.
pub fn opendkim_pids() -> Vec<u32> {
    processes(|comm, _| comm == "opendkim")
}

/// True when Postfix's master process runs.
pub fn postfix_running() -> bool {
    !processes(|comm, cmdline| comm == "master" && cmdline.contains("postfix")).is_empty()
}

fn processes(matches: impl Fn(&str, &str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // /proc also lists the processes of child PID namespaces (a container,
    // a test system); only this namespace's are ours to manage. A namespace
    // that cannot be read (another user's process) counts as ours.
    let own_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let (Some(own), Ok(ns)) = (&own_ns, std::fs::read_link(format!("/proc/{pid}/ns/pid")))
            && &ns != own
        {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if matches(comm.trim(), &cmdline) {
            pids.push(pid);
        }
    }
    pids
}

/// Run a service action (`argv` as planned) and, for opendkim on a live
/// system, prove it came up.
pub fn perform(
    runner: &dyn Runner,
    root: &Root,
    init: Init,
    name: &str,
    action: ServiceAction,
    argv: &[String],
    socket: &Socket,
) -> Result<()> {
    let is_opendkim = name == "opendkim";
    if is_opendkim && init == Init::SysV && action == ServiceAction::Restart {
        // `stop` fails when nothing runs; what matters is that no process is left.
        let stop = runner.run(&words(&["service", name, "stop"]))?;
        tracing::debug!(status = stop.status, "service {name} stop");
        wait_until(Duration::from_secs(20), || opendkim_pids().is_empty());
        if !opendkim_pids().is_empty() {
            bail!(
                "opendkim did not stop within 20 seconds (pids {:?})",
                opendkim_pids()
            );
        }
        run_checked(runner, &self::argv(init, name, ServiceAction::Start))?;
    } else {
        run_checked(runner, argv)?;
    }
    if is_opendkim && action != ServiceAction::Enable && root.is_live() && !runner.is_recording() {
        probe(root, socket, Duration::from_secs(15))?;
    }
    Ok(())
}

/// Run a command; a non-zero exit is an error quoting what it said.
pub fn run_checked(runner: &dyn Runner, argv: &[String]) -> Result<()> {
    let out = runner.run(argv)?;
    if !out.success() {
        bail!(
            "'{}' failed (exit {}): {}",
            argv.join(" "),
            out.status,
            out.said()
        );
    }
    Ok(())
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// Prove that opendkim runs, that the socket's listener belongs to an
/// opendkim process, and that it accepts a connection. Another program on
/// the port, or a daemon that exited right after its start command returned
/// success, fails the probe with a message naming what was found.
pub fn probe(root: &Root, socket: &Socket, limit: Duration) -> Result<()> {
    let connects = || match socket {
        Socket::Inet { port, addr } => {
            let addr = SocketAddr::new(*addr, *port);
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        }
        Socket::Local { path } => std::os::unix::net::UnixStream::connect(root.path(path)).is_ok(),
    };
    let start = Instant::now();
    let mut gone_since: Option<Instant> = None;
    while start.elapsed() < limit {
        let pids = opendkim_pids();
        if !pids.is_empty() && listener_pids(socket).iter().any(|p| pids.contains(p)) && connects()
        {
            return Ok(());
        }
        if pids.is_empty() {
            let since = *gone_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                break;
            }
        } else {
            gone_since = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let where_ = match socket {
        Socket::Inet { port, addr } => format!("{addr}:{port}"),
        Socket::Local { path } => path.clone(),
    };
    let others: Vec<u32> = listener_pids(socket);
    if opendkim_pids().is_empty() {
        let taken = match others.first() {
            Some(pid) => format!(
                "; {where_} is taken by another program ({}, pid {pid})",
                comm(*pid)
            ),
            None => String::new(),
        };
        let said = match logged_since_start(root) {
            Some(lines) => format!("; it logged: {lines}"),
            None => " (a start command's exit code does not prove the daemon came up; see the \
                     mail log)"
                .to_string(),
        };
        bail!("opendkim is not running: it exited right after starting{taken}{said}");
    }
    bail!("opendkim is not listening on {where_}")
}

/// What opendkim logged after its last start (at most three lines, without
/// the syslog prefix), from the mail log where syslog writes it.
pub fn logged_since_start(root: &Root) -> Option<String> {
    // rsyslog writes a moment later than the daemon dies.
    std::thread::sleep(Duration::from_millis(300));
    let text = ["/var/log/mail.log", "/var/log/maillog", "/var/log/syslog"]
        .iter()
        .find_map(|p| root.read_opt(p).ok().flatten())?;
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("opendkim[")).collect();
    let start = lines.iter().rposition(|l| l.contains("starting (args"))?;
    let after: Vec<String> = lines[start + 1..]
        .iter()
        .map(|l| match l.split_once("]: ") {
            Some((_, message)) => message.trim().to_string(),
            None => l.trim().to_string(),
        })
        .filter(|m| !m.is_empty())
        .take(3)
        .collect();
    (!after.is_empty()).then(|| after.join(" / "))
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The processes holding a listening socket at the given address.
pub fn listener_pids(socket: &Socket) -> Vec<u32> {
    let inodes = listening_inodes(socket);
    if inodes.is_empty() {
        return Vec::new();
    }
    processes(|_, _| true)
        .into_iter()
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .ok()
                    .and_then(|l| {
                        let l = l.to_string_lossy().to_string();
                        l.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .parse::<u64>()
                            .ok()
                    })
                    .is_some_and(|inode| inodes.contains(&inode))
            })
        })
        .collect()
}

/// Inodes of listening sockets at the address, from /proc/net.
fn listening_inodes(socket: &Socket) -> Vec<u64> {
    let mut inodes = Vec::new();
    match socket {
        Socket::Inet { port, addr } => {
            let (file, want) = match addr {
                std::net::IpAddr::V4(a) => {
                    let hex = u32::from_ne_bytes(a.octets());
                    ("/proc/net/tcp", format!("{hex:08X}:{port:04X}"))
                }
                std::net::IpAddr::V6(a) => {
                    let words: String = a
                        .octets()
                        .chunks(4)
                        .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                        .collect();
                    ("/proc/net/tcp6", format!("{words}:{port:04X}"))
                }
            };
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 9 && f[1] == want && f[3] == "0A" {
                    inodes.extend(f[9].parse::<u64>().ok());
                }
            }
        }
        Socket::Local { path } => {
            let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 7 && f[7] == path {
                    inodes.extend(f[6].parse::<u64>().ok());
                }
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_opendkim_logged_after_its_last_start_is_quoted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/log")).unwrap();
        std::fs::write(
            dir.path().join("var/log/mail.log"),
            "Dec  4 mail opendkim[10]: OpenDKIM Filter v2.11.0 starting (args: -x x)\n\
             Dec  4 mail opendkim[10]: old trouble\n\
             Dec  4 mail postfix/master[9]: daemon started\n\
             Dec  4 mail opendkim[11]: OpenDKIM Filter v2.11.0 starting (args: -x x)\n\
             Dec  4 mail opendkim[11]: can't configure DKIM library: failed to add resolver\n",
        )
        .unwrap();
        let root = Root::new(dir.path());
        assert_eq!(
            logged_since_start(&root).as_deref(),
            Some("can't configure DKIM library: failed to add resolver")
        );
    }

    use super::*;
    use std::net::TcpListener;

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let socket = Socket::Inet {
            port,
            addr: "127.0.0.1".parse().unwrap(),
        };
        assert!(listener_pids(&socket).contains(&std::process::id()));
        drop(listener);
        assert!(!listener_pids(&socket).contains(&std::process::id()));
    }

    #[test]
    fn service_commands_follow_the_init_system() {
        assert_eq!(
            argv(Init::SysV, "opendkim", ServiceAction::Start),
            ["service", "opendkim", "start"]
        );
        assert_eq!(
            argv(Init::Systemd, "opendkim", ServiceAction::Reload),
            ["systemctl", "reload", "opendkim"]
        );
        assert_eq!(
            argv(Init::SysV, "postfix", ServiceAction::Reload),
            ["postfix", "reload"]
        );
    }
}
