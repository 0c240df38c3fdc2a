//! Writing to the user without dying of it.
//!
//! `println!` and `eprintln!` panic when the other end is gone: a pipe
//! into `head` that closed, a terminal that hung up. A panic in the middle
//! of an apply would skip the restore and leave a half-configured server, so
//! every line the tool prints goes through these macros, which drop what
//! cannot be written. The run goes on and ends as it would have.

/// Like `print!`, but a closed stdout is not an error.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stdout(), $($arg)*);
    }};
}

/// Like `println!`, but a closed stdout is not an error.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}

/// Like `eprintln!`, but a closed stderr is not an error.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}
