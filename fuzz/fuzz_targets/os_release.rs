//! Parsing os-release text and mapping it to a supported distribution never
//! panics, whatever the file holds.

#![no_main]

use dkim_setup::distro::{detect_text, parse_os_release};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_os_release(text);
    if let Ok(distro) = detect_text(text) {
        let _ = distro.major();
        let _ = distro.profile();
    }
});
