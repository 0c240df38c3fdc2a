//! The socket setters for `/etc/default/opendkim` (`SOCKET=`), a systemd
//! drop-in (`ExecStart= ... -p`) and `/etc/sysconfig/opendkim` (`OPTIONS=`)
//! never panic, and a second run of each changes nothing; reading the
//! `OPTIONS=` flags never panics either.

#![no_main]

use dkim_setup::edit::default_file::{
    options_flags, set_exec_start_socket, set_options_socket, set_socket_var,
};
use libfuzzer_sys::fuzz_target;

type Setter = fn(&str, &str) -> String;

/// Sockets as setup writes them: inet, inet6 (quoted in the shell) and unix.
const SOCKETS: [&str; 3] = [
    "inet:8891@127.0.0.1",
    "inet6:8891@[::1]",
    "local:/run/opendkim/opendkim.sock",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let setters: [(&str, Setter); 3] = [
        ("set_socket_var", set_socket_var),
        ("set_exec_start_socket", set_exec_start_socket),
        ("set_options_socket", set_options_socket),
    ];
    for socket in SOCKETS {
        for (name, setter) in setters {
            let once = setter(text, socket);
            assert_eq!(
                setter(&once, socket),
                once,
                "a second {name} changed the text"
            );
        }
    }
    let _ = options_flags(text);
});
