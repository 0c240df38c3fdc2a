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
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
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
        run_checked(runner, &words(&["service", name, "stop"]))?;
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
    if is_opendkim && action != ServiceAction::Enable && root.is_live() {
        probe(root, socket, Duration::from_secs(15))?;
    }
    Ok(())
}

fn run_checked(runner: &dyn Runner, argv: &[String]) -> Result<()> {
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

/// Prove that opendkim runs and accepts connections on its socket.
pub fn probe(root: &Root, socket: &Socket, limit: Duration) -> Result<()> {
    let connects = || match socket {
        Socket::Inet { port, addr } => {
            let addr = SocketAddr::new(*addr, *port);
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        }
        Socket::Local { path } => std::os::unix::net::UnixStream::connect(root.path(path)).is_ok(),
    };
    if wait_until(limit, || !opendkim_pids().is_empty() && connects()) {
        return Ok(());
    }
    let where_ = match socket {
        Socket::Inet { port, addr } => format!("{addr}:{port}"),
        Socket::Local { path } => path.clone(),
    };
    if opendkim_pids().is_empty() {
        bail!(
            "opendkim is not running: it exited after starting (see the mail log; a start command's \
             exit code does not prove it came up)"
        );
    }
    bail!("opendkim is not listening on {where_}")
}
