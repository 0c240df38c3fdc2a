//! A milter client that hands opendkim one message the way Postfix does, to
//! prove that it signs without sending any mail.
//!
//! The milter protocol is a stream of frames: a 4-byte big-endian length
//! (command byte plus payload), the command byte, the payload. A session here
//! is one message:
//!
//! 1. connect (TCP with a timeout, or a unix socket); every read and write has
//!    the same timeout;
//! 2. negotiate (`O`, version 6): offer every action and every protocol step
//!    option; opendkim answers with the steps it does not want (`NO*` bits)
//!    and those it will not answer (`NR*` bits), and both are honoured;
//! 3. send the message as the SMTP server would see it, each step preceded by
//!    the macros Postfix sends (`D`): connect (`j`, `{daemon_name}`), helo,
//!    mail from (`i`, the queue id opendkim logs, and an empty
//!    `{auth_authen}`), rcpt to, data, one `L` per header, end of headers,
//!    the body in chunks of at most 65535 bytes, end of body;
//! 4. read opendkim's answers to end of body: headers it adds (`h`) or
//!    inserts (`i`) are collected in order, progress and other changes are
//!    passed over, until the verdict (`a`, `c`, `r`, `t`, `d`, `y`);
//! 5. send `Q` and close.
//!
//! A verdict before end of body (say, a tempfail at connect) ends the session
//! early; [`Modifications::at`] says which step it answered. Nothing in the
//! message is changed here: the caller gets what opendkim asked to change.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where opendkim listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What opendkim asked to change in the message, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modifications {
    /// Headers added (`h`) or inserted (`i`), as (name, value), in the order
    /// received. A value is as opendkim sent it: it usually starts with a
    /// space, and folded lines may end in a bare `\n`.
    pub inserted: Vec<(String, String)>,
    /// The final reply: `a` accept, `c` continue, `r` reject, `t` tempfail,
    /// `d` discard, `y` reply code (see `reply`).
    pub verdict: char,
    /// The text of a `y` reply, such as `451 4.7.1 Service unavailable`.
    pub reply: Option<String>,
    /// The step the verdict answered: "end of body" unless opendkim decided
    /// earlier, for example "connect".
    pub at: &'static str,
}

// Commands (client to milter).
const OPTNEG: u8 = b'O';
const MACRO: u8 = b'D';
const CONNECT: u8 = b'C';
const HELO: u8 = b'H';
const MAIL: u8 = b'M';
const RCPT: u8 = b'R';
const DATA: u8 = b'T';
const HEADER: u8 = b'L';
const EOH: u8 = b'N';
const BODY: u8 = b'B';
const EOB: u8 = b'E';
const QUIT: u8 = b'Q';

// Protocol step options, as in libmilter's mfdef.h.
const NOCONNECT: u32 = 0x1;
const NOHELO: u32 = 0x2;
const NOMAIL: u32 = 0x4;
const NORCPT: u32 = 0x8;
const NOBODY: u32 = 0x10;
const NOHDRS: u32 = 0x20;
const NOEOH: u32 = 0x40;
const NR_HDR: u32 = 0x80;
const NOUNKNOWN: u32 = 0x100;
const NODATA: u32 = 0x200;
const SKIP: u32 = 0x400;
const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_DATA: u32 = 0x10000;
const NR_UNKN: u32 = 0x20000;
const NR_EOH: u32 = 0x40000;
const NR_BODY: u32 = 0x80000;
const HDR_LEADSPC: u32 = 0x100000;

/// Every step option this client honours (all but rejected recipients and
/// the larger body chunk sizes).
const PROTOCOL_OFFERED: u32 = NOCONNECT
    | NOHELO
    | NOMAIL
    | NORCPT
    | NOBODY
    | NOHDRS
    | NOEOH
    | NR_HDR
    | NOUNKNOWN
    | NODATA
    | SKIP
    | NR_CONN
    | NR_HELO
    | NR_MAIL
    | NR_RCPT
    | NR_DATA
    | NR_UNKN
    | NR_EOH
    | NR_BODY
    | HDR_LEADSPC;

/// Every action of protocol version 6 (add, change and insert headers,
/// replace the body, recipients, quarantine, sender, macro lists). None is
/// applied; offering them all keeps opendkim from refusing the session.
const ACTIONS_OFFERED: u32 = 0x1ff;

const VERSION: u32 = 6;
const MAX_CHUNK: usize = 65535;
/// The largest frame accepted from the milter.
const MAX_FRAME: usize = 1 << 20;

/// Submit one message (headers as (name, value) pairs, each value as it
/// follows the colon, normally with its leading space; body with CRLF line
/// ends) as coming from `client_addr` (e.g. 127.0.0.1, which opendkim trusts
/// as internal) with envelope `from`/`to`; return what opendkim asked to
/// change.
pub fn submit(
    addr: &Address,
    timeout: Duration,
    client_addr: IpAddr,
    from: &str,
    to: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<Modifications> {
    let message = Message {
        client_addr,
        from,
        to,
        headers,
        body,
    };
    let cannot_connect = || format!("cannot connect to opendkim at '{addr}'");
    match addr {
        Address::Tcp(sock) => {
            let stream = TcpStream::connect_timeout(sock, timeout).with_context(cannot_connect)?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .with_context(cannot_connect)?;
            Session::new(stream, addr, timeout).run(&message)
        }
        Address::Unix(path) => {
            let stream = UnixStream::connect(path).with_context(cannot_connect)?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .with_context(cannot_connect)?;
            Session::new(stream, addr, timeout).run(&message)
        }
    }
}

struct Message<'a> {
    client_addr: IpAddr,
    from: &'a str,
    to: &'a str,
    headers: &'a [(String, String)],
    body: &'a str,
}

/// The answer to one step.
enum Answer {
    Continue,
    /// `s`: send no more body chunks.
    Skip,
    Final(char, Option<String>),
}

struct Session<S> {
    stream: S,
    addr: String,
    timeout: Duration,
    /// The step options opendkim asked for.
    protocol: u32,
}

impl<S: Read + Write> Session<S> {
    fn new(stream: S, addr: &Address, timeout: Duration) -> Self {
        Session {
            stream,
            addr: addr.to_string(),
            timeout,
            protocol: 0,
        }
    }

    fn run(mut self, msg: &Message) -> Result<Modifications> {
        self.negotiate()?;
        let result = self.message(msg);
        if result.is_ok() {
            // The verdict is in; a milter that hung up already changes nothing.
            let _ = self.send(QUIT, &[]);
        }
        result
    }

    fn negotiate(&mut self) -> Result<()> {
        let mut payload = Vec::with_capacity(12);
        payload.extend(VERSION.to_be_bytes());
        payload.extend(ACTIONS_OFFERED.to_be_bytes());
        payload.extend(PROTOCOL_OFFERED.to_be_bytes());
        self.send(OPTNEG, &payload)?;
        let (code, data) = self.read(OPTNEG)?;
        if code != OPTNEG || data.len() < 12 {
            bail!(
                "opendkim at '{}' answered option negotiation with {} ({} bytes) instead of \
                 its options",
                self.addr,
                show_code(code),
                data.len()
            );
        }
        let word = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let version = word(0);
        if !(2..=VERSION).contains(&version) {
            bail!(
                "opendkim at '{}' speaks milter protocol version '{version}'; this client \
                 speaks 2 to {VERSION}",
                self.addr
            );
        }
        let protocol = word(8);
        let unknown = protocol & !PROTOCOL_OFFERED;
        if unknown != 0 {
            bail!(
                "opendkim at '{}' asked for milter protocol options '{unknown:#x}' that this \
                 client does not offer",
                self.addr
            );
        }
        self.protocol = protocol;
        Ok(())
    }

    /// Everything from connect to the verdict.
    fn message(&mut self, msg: &Message) -> Result<Modifications> {
        let host = local_hostname();
        let queue_id = format!("DKIMSETUP{:X}", std::process::id());

        let macros = [("j", host.as_str()), ("{daemon_name}", host.as_str())];
        let mut connect = Vec::new();
        connect.extend(client_name(msg.client_addr).as_bytes());
        connect.push(0);
        connect.push(if msg.client_addr.is_ipv4() {
            b'4'
        } else {
            b'6'
        });
        connect.extend(0u16.to_be_bytes());
        connect.extend(msg.client_addr.to_string().as_bytes());
        connect.push(0);
        if let Some(done) = self.step(CONNECT, &macros, &connect, NOCONNECT, NR_CONN)? {
            return Ok(done);
        }

        if let Some(done) = self.step(HELO, &[], &cstr(&host), NOHELO, NR_HELO)? {
            return Ok(done);
        }

        let macros = [("i", queue_id.as_str()), ("{auth_authen}", "")];
        let from = cstr(&angle(msg.from));
        if let Some(done) = self.step(MAIL, &macros, &from, NOMAIL, NR_MAIL)? {
            return Ok(done);
        }

        let to = cstr(&angle(msg.to));
        if let Some(done) = self.step(RCPT, &[], &to, NORCPT, NR_RCPT)? {
            return Ok(done);
        }

        if let Some(done) = self.step(DATA, &[], &[], NODATA, NR_DATA)? {
            return Ok(done);
        }

        for (name, value) in msg.headers {
            // Without HDR_LEADSPC the milter adds the space after the colon
            // itself, so the one the message has is not sent.
            let value = if self.protocol & HDR_LEADSPC == 0 {
                value.strip_prefix(' ').unwrap_or(value)
            } else {
                value
            };
            let mut header = cstr(name);
            header.extend(cstr(value));
            if let Some(done) = self.step(HEADER, &[], &header, NOHDRS, NR_HDR)? {
                return Ok(done);
            }
        }

        if let Some(done) = self.step(EOH, &[], &[], NOEOH, NR_EOH)? {
            return Ok(done);
        }

        if self.protocol & NOBODY == 0 {
            for chunk in msg.body.as_bytes().chunks(MAX_CHUNK) {
                self.send(BODY, chunk)?;
                if self.protocol & NR_BODY != 0 {
                    continue;
                }
                match self.answer(BODY)? {
                    Answer::Continue => {}
                    Answer::Skip => break,
                    Answer::Final(verdict, reply) => return Ok(final_at(BODY, verdict, reply)),
                }
            }
        }

        self.send_macros(EOB, &[("i", queue_id.as_str())])?;
        self.send(EOB, &[])?;
        self.end_of_body()
    }

    /// Send one step (unless opendkim asked to skip it) with its macros, and
    /// read the answer (unless opendkim said it will not send one). Returns
    /// the verdict when opendkim decided on the message.
    fn step(
        &mut self,
        cmd: u8,
        macros: &[(&str, &str)],
        payload: &[u8],
        no: u32,
        no_reply: u32,
    ) -> Result<Option<Modifications>> {
        if self.protocol & no != 0 {
            return Ok(None);
        }
        if !macros.is_empty() {
            self.send_macros(cmd, macros)?;
        }
        self.send(cmd, payload)?;
        if self.protocol & no_reply != 0 {
            return Ok(None);
        }
        match self.answer(cmd)? {
            Answer::Continue | Answer::Skip => Ok(None),
            Answer::Final(verdict, reply) => Ok(Some(final_at(cmd, verdict, reply))),
        }
    }

    fn send_macros(&mut self, cmd: u8, macros: &[(&str, &str)]) -> Result<()> {
        let mut payload = vec![cmd];
        for (name, value) in macros {
            payload.extend(cstr(name));
            payload.extend(cstr(value));
        }
        self.send(MACRO, &payload)
    }

    /// The answer to a step before end of body.
    fn answer(&mut self, cmd: u8) -> Result<Answer> {
        loop {
            let (code, data) = self.read(cmd)?;
            match code {
                b'c' => return Ok(Answer::Continue),
                b's' if cmd == BODY => return Ok(Answer::Skip),
                b'p' => continue,
                b'a' | b'r' | b't' | b'd' | b'y' => {
                    return Ok(Answer::Final(code as char, reply_text(code, &data)));
                }
                other => bail!(
                    "opendkim at '{}' answered {} with an unexpected {}",
                    self.addr,
                    step_name(cmd),
                    show_code(other)
                ),
            }
        }
    }

    /// Collect header changes until the verdict on the message.
    fn end_of_body(&mut self) -> Result<Modifications> {
        let mut inserted = Vec::new();
        loop {
            let (code, data) = self.read(EOB)?;
            match code {
                b'h' => inserted.push(self.header_pair(&data)?),
                b'i' => {
                    if data.len() < 4 {
                        bail!(
                            "opendkim at '{}' sent an insert-header reply too short to hold \
                             its index",
                            self.addr
                        );
                    }
                    inserted.push(self.header_pair(&data[4..])?);
                }
                b'a' | b'c' | b'r' | b't' | b'd' | b'y' => {
                    let mut done = final_at(EOB, code as char, reply_text(code, &data));
                    done.inserted = inserted;
                    return Ok(done);
                }
                // Progress, and changes other than new headers (change a
                // header, replace the body, recipients, quarantine, ...).
                _ => {}
            }
        }
    }

    fn header_pair(&self, data: &[u8]) -> Result<(String, String)> {
        let mut parts = data.split(|&b| b == 0);
        match (parts.next(), parts.next()) {
            (Some(name), Some(value)) if !name.is_empty() => Ok((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )),
            _ => bail!(
                "opendkim at '{}' sent a header change without a name and a value",
                self.addr
            ),
        }
    }

    fn send(&mut self, cmd: u8, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len() + 1).context("a milter frame is too long")?;
        let mut frame = Vec::with_capacity(payload.len() + 5);
        frame.extend(len.to_be_bytes());
        frame.push(cmd);
        frame.extend(payload);
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| self.io_error(e, true, cmd))
    }

    /// Read one frame, sent in answer to `cmd`.
    fn read(&mut self, cmd: u8) -> Result<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| self.io_error(e, false, cmd))?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_FRAME {
            bail!(
                "opendkim at '{}' answered {} with a frame of '{len}' bytes",
                self.addr,
                step_name(cmd)
            );
        }
        let mut frame = vec![0u8; len];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| self.io_error(e, false, cmd))?;
        let code = frame[0];
        frame.remove(0);
        Ok((code, frame))
    }

    fn io_error(&self, e: io::Error, sending: bool, cmd: u8) -> anyhow::Error {
        let step = step_name(cmd);
        let addr = &self.addr;
        let what = if sending {
            format!("cannot send {step} to opendkim at '{addr}'")
        } else {
            format!("no answer to {step} from opendkim at '{addr}'")
        };
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                anyhow::anyhow!("{what}: timed out after {:?}", self.timeout)
            }
            io::ErrorKind::UnexpectedEof => {
                anyhow::anyhow!("opendkim at '{addr}' closed the connection at {step}")
            }
            _ => anyhow::Error::new(e).context(what),
        }
    }
}

fn final_at(cmd: u8, verdict: char, reply: Option<String>) -> Modifications {
    Modifications {
        inserted: Vec::new(),
        verdict,
        reply,
        at: step_name(cmd),
    }
}

fn reply_text(code: u8, data: &[u8]) -> Option<String> {
    (code == b'y').then(|| {
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        String::from_utf8_lossy(&data[..end]).into_owned()
    })
}

fn step_name(cmd: u8) -> &'static str {
    match cmd {
        OPTNEG => "option negotiation",
        MACRO => "macros",
        CONNECT => "connect",
        HELO => "helo",
        MAIL => "mail from",
        RCPT => "rcpt to",
        DATA => "data",
        HEADER => "a header",
        EOH => "end of headers",
        BODY => "a body chunk",
        EOB => "end of body",
        QUIT => "quit",
        _ => "a command",
    }
}

fn show_code(code: u8) -> String {
    if code.is_ascii_graphic() {
        format!("reply '{}'", code as char)
    } else {
        format!("reply byte '{code:#04x}'")
    }
}

/// The bytes of a C string: the text and a NUL.
fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend(s.as_bytes());
    v.push(0);
    v
}

/// An envelope address in angle brackets, as SMTP has it.
fn angle(addr: &str) -> String {
    if addr.starts_with('<') {
        addr.to_string()
    } else {
        format!("<{addr}>")
    }
}

/// The client's host name as Postfix would report it: `localhost` for
/// loopback (what pickup mail shows), `unknown` for an address without one.
fn client_name(ip: IpAddr) -> &'static str {
    if ip.is_loopback() {
        "localhost"
    } else {
        "unknown"
    }
}

/// This machine's name, for `j` and HELO.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, TcpListener};
    use std::os::unix::net::UnixListener;
    use std::thread;

    type Frame = (u8, Vec<u8>);

    /// How the fake milter behaves.
    #[derive(Clone, Default)]
    struct Fake {
        protocol: u32,
        /// Replies to a command instead of `c`.
        answers: HashMap<u8, Vec<Frame>>,
        /// Replies to end of body.
        eob: Vec<Frame>,
        /// Never answer option negotiation.
        silent: bool,
    }

    fn read_frame(s: &mut impl Read) -> Option<Frame> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        let code = buf.remove(0);
        Some((code, buf))
    }

    fn write_frame(s: &mut impl Write, code: u8, payload: &[u8]) {
        let mut frame = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        frame.push(code);
        frame.extend(payload);
        s.write_all(&frame).unwrap();
    }

    /// The server side of one session; returns every frame received.
    fn serve(mut s: impl Read + Write, fake: Fake) -> Vec<Frame> {
        let mut seen = Vec::new();
        while let Some((code, payload)) = read_frame(&mut s) {
            seen.push((code, payload.clone()));
            if fake.silent {
                thread::sleep(Duration::from_millis(500));
                break;
            }
            let no_reply = match code {
                CONNECT => NR_CONN,
                HELO => NR_HELO,
                MAIL => NR_MAIL,
                RCPT => NR_RCPT,
                DATA => NR_DATA,
                HEADER => NR_HDR,
                EOH => NR_EOH,
                BODY => NR_BODY,
                _ => 0,
            };
            match code {
                OPTNEG => {
                    let mut p = 6u32.to_be_bytes().to_vec();
                    p.extend(0x111u32.to_be_bytes());
                    p.extend(fake.protocol.to_be_bytes());
                    write_frame(&mut s, OPTNEG, &p);
                }
                MACRO => {}
                QUIT => break,
                EOB => {
                    for (c, p) in &fake.eob {
                        write_frame(&mut s, *c, p);
                    }
                }
                _ if fake.answers.contains_key(&code) => {
                    for (c, p) in &fake.answers[&code] {
                        write_frame(&mut s, *c, p);
                    }
                }
                _ if fake.protocol & no_reply != 0 => {}
                _ => write_frame(&mut s, b'c', &[]),
            }
        }
        seen
    }

    fn tcp_fake(fake: Fake) -> (Address, thread::JoinHandle<Vec<Frame>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = Address::Tcp(listener.local_addr().unwrap());
        let handle = thread::spawn(move || serve(listener.accept().unwrap().0, fake));
        (addr, handle)
    }

    fn headers() -> Vec<(String, String)> {
        vec![
            ("From".into(), " a@example.test".into()),
            ("To".into(), " b@example.test".into()),
            ("Subject".into(), " hello\r\n\tworld".into()),
        ]
    }

    fn send(addr: &Address, body: &str) -> Result<Modifications> {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (from, to) = ("a@example.test", "b@example.test");
        let timeout = Duration::from_secs(5);
        submit(addr, timeout, localhost, from, to, &headers(), body)
    }

    fn insert(index: u32, name: &str, value: &str) -> Frame {
        let mut p = index.to_be_bytes().to_vec();
        p.extend(cstr(name));
        p.extend(cstr(value));
        (b'i', p)
    }

    fn codes(frames: &[Frame]) -> String {
        frames.iter().map(|(c, _)| *c as char).collect()
    }

    const SIGNATURE: &str =
        " v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;\n\ts=mail; b=AAAA";

    #[test]
    fn opendkim_like_session_collects_the_inserted_signature() {
        // opendkim's own answer: NOHELO, NOUNKNOWN, NODATA, SKIP, HDR_LEADSPC.
        let mut header = cstr("X-Extra");
        header.extend(cstr(" yes"));
        let fake = Fake {
            protocol: 0x100702,
            eob: vec![
                (b'p', vec![]),
                insert(0, "DKIM-Signature", SIGNATURE),
                (b'h', header),
                (b'm', vec![0, 0, 0, 1, b'X', 0, b'y', 0]),
                (b'a', vec![]),
            ],
            ..Fake::default()
        };
        let (addr, server) = tcp_fake(fake);
        let done = send(&addr, "line one\r\nline two\r\n").unwrap();
        assert_eq!(
            done.inserted,
            vec![
                ("DKIM-Signature".to_string(), SIGNATURE.to_string()),
                ("X-Extra".to_string(), " yes".to_string()),
            ]
        );
        assert_eq!(
            (done.verdict, done.reply, done.at),
            ('a', None, "end of body")
        );

        let seen = server.join().unwrap();
        // No HELO and no DATA: opendkim said it does not want them.
        assert_eq!(codes(&seen), "ODCDMRLLLNBDEQ");
        let connect = &seen[2].1;
        assert_eq!(connect.as_slice(), b"localhost\x004\x00\x00127.0.0.1\x00");
        let macros = &seen[1].1;
        assert_eq!(macros[0], CONNECT);
        let host = local_hostname();
        let want = format!("Cj\0{host}\0{{daemon_name}}\0{host}\0");
        assert_eq!(String::from_utf8_lossy(macros), want);
        let mail_macros = String::from_utf8_lossy(&seen[3].1).into_owned();
        assert!(mail_macros.starts_with("Mi\0DKIMSETUP"), "{mail_macros:?}");
        assert!(
            mail_macros.ends_with("{auth_authen}\0\0"),
            "{mail_macros:?}"
        );
        assert_eq!(seen[4].1, b"<a@example.test>\0");
        assert_eq!(seen[5].1, b"<b@example.test>\0");
        // HDR_LEADSPC: values go as the message has them.
        assert_eq!(seen[6].1, b"From\0 a@example.test\0");
        assert_eq!(seen[8].1, b"Subject\0 hello\r\n\tworld\0");
        assert_eq!(seen[10].1, b"line one\r\nline two\r\n");
        assert!(seen[11].1.starts_with(b"Ei\0DKIMSETUP"));
        assert!(seen[12].1.is_empty());
    }

    #[test]
    fn no_reply_bits_are_honoured_and_tempfail_is_the_verdict() {
        // opendkim answers nothing but end of body; a client waiting for a
        // reply would time out.
        let fake = Fake {
            protocol: NOHELO | NR_CONN | NR_MAIL | NR_RCPT | NR_DATA | NR_HDR | NR_EOH | NR_BODY,
            eob: vec![(b't', vec![])],
            ..Fake::default()
        };
        let (addr, server) = tcp_fake(fake);
        let done = send(&addr, "body\r\n").unwrap();
        assert_eq!((done.verdict, done.at), ('t', "end of body"));
        assert!(done.inserted.is_empty());
        let seen = server.join().unwrap();
        assert_eq!(codes(&seen), "ODCDMRTLLLNBDEQ");
        // Without HDR_LEADSPC the space after the colon is the milter's to add.
        assert_eq!(seen[7].1, b"From\0a@example.test\0");
    }

    #[test]
    fn skipped_steps_are_not_sent() {
        let fake = Fake {
            protocol: NOCONNECT | NOHELO | NOMAIL | NORCPT | NODATA | NOHDRS | NOEOH | NOBODY,
            eob: vec![insert(0, "DKIM-Signature", SIGNATURE), (b'c', vec![])],
            ..Fake::default()
        };
        let (addr, server) = tcp_fake(fake);
        let done = send(&addr, "body\r\n").unwrap();
        assert_eq!(done.verdict, 'c');
        assert_eq!(done.inserted.len(), 1);
        assert_eq!(codes(&server.join().unwrap()), "ODEQ");
    }

    #[test]
    fn a_verdict_before_end_of_body_ends_the_session() {
        let fake = Fake {
            protocol: 0x100702,
            answers: HashMap::from([(MAIL, vec![(b'y', b"451 4.7.1 try later\0".to_vec())])]),
            ..Fake::default()
        };
        let (addr, server) = tcp_fake(fake);
        let done = send(&addr, "body\r\n").unwrap();
        assert_eq!(done.verdict, 'y');
        assert_eq!(done.reply.as_deref(), Some("451 4.7.1 try later"));
        assert_eq!(done.at, "mail from");
        assert_eq!(codes(&server.join().unwrap()), "ODCDMQ");
    }

    #[test]
    fn a_long_body_goes_in_chunks_and_skip_stops_it() {
        let body = "x".repeat(70_000) + "\r\n" + &"y".repeat(70_000) + "\r\n";
        let (addr, server) = tcp_fake(Fake {
            protocol: 0x100702,
            eob: vec![(b'a', vec![])],
            ..Fake::default()
        });
        send(&addr, &body).unwrap();
        let seen = server.join().unwrap();
        let chunks: Vec<&[u8]> = seen
            .iter()
            .filter(|f| f.0 == BODY)
            .map(|f| &f.1[..])
            .collect();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK));
        assert_eq!(chunks.concat(), body.as_bytes());

        let (addr, server) = tcp_fake(Fake {
            protocol: 0x100702,
            answers: HashMap::from([(BODY, vec![(b's', vec![])])]),
            eob: vec![(b'a', vec![])],
            ..Fake::default()
        });
        send(&addr, &body).unwrap();
        let seen = server.join().unwrap();
        assert_eq!(seen.iter().filter(|f| f.0 == BODY).count(), 1);
        assert!(codes(&seen).ends_with("BDEQ"));
    }

    #[test]
    fn unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opendkim.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let fake = Fake {
            protocol: 0x100702,
            eob: vec![insert(0, "DKIM-Signature", SIGNATURE), (b'a', vec![])],
            ..Fake::default()
        };
        let server = thread::spawn(move || serve(listener.accept().unwrap().0, fake));
        let done = send(&Address::Unix(path), "body\r\n").unwrap();
        assert_eq!(done.inserted[0].0, "DKIM-Signature");
        assert_eq!(done.verdict, 'a');
        assert_eq!(codes(&server.join().unwrap()), "ODCDMRLLLNBDEQ");
    }

    #[test]
    fn errors_name_the_address_and_the_step() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let sock = listener.local_addr().unwrap();
        drop(listener);
        let err = send(&Address::Tcp(sock), "").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with(&format!("cannot connect to opendkim at '{sock}': ")),
            "{text}"
        );

        let err = send(&Address::Unix("/nonexistent/opendkim.sock".into()), "").unwrap_err();
        let text = format!("{err:#}");
        let want = "cannot connect to opendkim at '/nonexistent/opendkim.sock': ";
        assert!(text.starts_with(want), "{text}");

        let (addr, server) = tcp_fake(Fake {
            protocol: 0x100702,
            answers: HashMap::from([(CONNECT, vec![(b'x', vec![])])]),
            ..Fake::default()
        });
        let text = format!("{:#}", send(&addr, "").unwrap_err());
        assert_eq!(
            text,
            format!("opendkim at '{addr}' answered connect with an unexpected reply 'x'")
        );
        server.join().unwrap();

        let (addr, server) = tcp_fake(Fake {
            silent: true,
            ..Fake::default()
        });
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let timeout = Duration::from_millis(100);
        let err = submit(&addr, timeout, localhost, "a", "b", &[], "").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "no answer to option negotiation from opendkim at '{addr}': timed out after 100ms"
            )
        );
        server.join().unwrap();
    }
}
