//! What Ctrl-C does, by phase of a run.
//!
//! While questions are asked nothing has changed yet, so Ctrl-C leaves at
//! once with exit code 130 (after showing the cursor again, which a prompt
//! may have hidden). While a plan is applied, Ctrl-C only raises a flag: the
//! applier sees it between steps, restores every file changed so far, and
//! then exits with 130. A child process (apt-get, an init script) gets the
//! same SIGINT from the terminal and stops, which fails its step and leads
//! to the same restore.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const PROMPTING: u8 = 0;
const APPLYING: u8 = 1;

static PHASE: AtomicU8 = AtomicU8::new(PROMPTING);
static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    if PHASE.load(Ordering::SeqCst) == PROMPTING {
        // Only async-signal-safe calls here: write(2) and _exit(2).
        let show_cursor = b"\x1b[?25h\ncancelled: nothing was changed\n";
        unsafe {
            nix::libc::write(2, show_cursor.as_ptr().cast(), show_cursor.len());
            nix::libc::_exit(130);
        }
    }
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Take over SIGINT for the interactive wizard.
pub fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only touches atomics and calls write/_exit.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
        tracing::warn!("cannot handle Ctrl-C: {e}");
    }
}

/// From now on Ctrl-C asks the applier to stop and restore.
pub fn applying() {
    PHASE.store(APPLYING, Ordering::SeqCst);
}

/// True once Ctrl-C was pressed during apply.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
