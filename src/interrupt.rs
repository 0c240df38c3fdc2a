//! What Ctrl-C (SIGINT), SIGTERM and a hang-up (SIGHUP) do, by phase of a run.
//!
//! While questions are asked nothing has changed yet, so the signal ends the
//! run at once with exit code 128 + its number (130 for Ctrl-C), after
//! showing the cursor again, which a prompt may have hidden. While a plan is
//! applied, it only raises a flag: the applier sees it between steps,
//! restores every file changed so far, and then exits with that code. A
//! child process (apt-get, an init script) gets the same SIGINT from the
//! terminal and stops, which fails its step and leads to the same restore.
//! A dropped SSH session (SIGHUP) or `kill` (SIGTERM) in the middle of an
//! apply so leaves the server as it was, not half-configured.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

const PROMPTING: u8 = 0;
const APPLYING: u8 = 1;

static PHASE: AtomicU8 = AtomicU8::new(PROMPTING);
static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(nix::libc::SIGINT);

extern "C" fn on_signal(signal: nix::libc::c_int) {
    if PHASE.load(Ordering::SeqCst) == PROMPTING {
        // Only async-signal-safe calls here: write(2) and _exit(2).
        let show_cursor = b"\x1b[?25h\ncancelled: nothing was changed\n";
        unsafe {
            nix::libc::write(2, show_cursor.as_ptr().cast(), show_cursor.len());
            nix::libc::_exit(128 + signal);
        }
    }
    SIGNAL.store(signal, Ordering::SeqCst);
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Take over SIGINT, SIGTERM and SIGHUP for a run that changes the system.
pub fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls write/_exit.
        if let Err(e) = unsafe { sigaction(signal, &action) } {
            tracing::warn!("cannot handle {signal}: {e}");
        }
    }
}

/// From now on Ctrl-C asks the applier to stop and restore.
pub fn applying() {
    PHASE.store(APPLYING, Ordering::SeqCst);
}

/// True once Ctrl-C was pressed (or SIGTERM or SIGHUP came) during apply.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// What stopped the run, for its messages: `Ctrl-C`, `SIGTERM`, `SIGHUP`.
pub fn what() -> &'static str {
    match SIGNAL.load(Ordering::SeqCst) {
        nix::libc::SIGTERM => "SIGTERM",
        nix::libc::SIGHUP => "SIGHUP",
        _ => "Ctrl-C",
    }
}

/// The exit code of a run stopped by that signal: 128 + its number.
pub fn exit_code() -> u8 {
    u8::try_from(128 + SIGNAL.load(Ordering::SeqCst)).unwrap_or(130)
}
