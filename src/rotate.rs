//! `dkim-setup rotate` and `dkim-setup status`: replacing a domain's key
//! without a moment in which mail is signed with a key the world cannot see.
//!
//! A rotation has three steps, each a run of its own with the plan, journal
//! and rollback of a setup run:
//!
//! 1. `rotate --domain D`: a new key under a new selector (by default the
//!    other of `key` and `key1`) is generated and added to the KeyTable;
//!    the SigningTable still names the old one, so signing does not change.
//!    The record to publish is printed; the rotation is pending.
//! 2. `rotate --domain D --activate`: only once DNS serves the new record
//!    with the new key (the same comparison `check` makes), the SigningTable
//!    is switched to the new selector and opendkim reloaded (SIGUSR1: no
//!    restart, no gap). The old key stays in the KeyTable and in DNS, so mail
//!    signed a moment ago still verifies.
//! 3. `rotate --domain D --retire`: after the retention period (7 days after
//!    the activation by default), the old key's files and KeyTable line are
//!    removed, and the old record may be deleted from DNS.
//!
//! What the tables cannot say (when a key was made, what is pending, when a
//! rotation was activated) is kept in `/var/lib/dkim-setup/rotation.json`,
//! written through the same plan as every other file.

use crate::cli::{Global, RotateArgs, StatusArgs};
use crate::distro::{self, Profile};
use crate::dns_lookup;
use crate::edit::{opendkim_conf, tables};
use crate::error::bad_hint;
use crate::keys;
use crate::plan::{Action, DnsRecord, Owner, Plan, Purpose, ServiceAction, Status, Step};
use crate::progress::Lines;
use crate::services;
use crate::setup::Ctx;
use crate::system::Root;
use crate::system::runner;
use crate::validate;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the rotation state lives on the target.
pub const STATE: &str = "/var/lib/dkim-setup/rotation.json";
const DAY: u64 = 86_400;

/// What the tables cannot say about the keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub domains: BTreeMap<String, DomainState>,
    /// The two-slot CNAME scheme, when it was chosen at setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Slots>,
}

/// The two-slot scheme: keys `a` and `b` shared by every domain, published
/// once as TXT records at `dkim_a.HOST` and `dkim_b.HOST`; each domain points
/// `key._domainkey.D` and `key1._domainkey.D` at them with CNAMEs, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    pub host: String,
    /// The directory of the slot keys (`a.private`, `b.private`).
    pub dir: String,
    /// The slot that signs: `a` or `b`.
    pub active: String,
    /// The slots' keys, pending and retiring slot, as a domain's are kept
    /// (by slot name, `a` or `b`, where a domain has selectors).
    #[serde(flatten)]
    pub keys: DomainState,
}

/// The selector each domain uses for a slot.
pub fn slot_selector(slot: &str) -> &'static str {
    if slot == "a" { "key" } else { "key1" }
}

/// The other slot.
pub fn other_slot(slot: &str) -> &'static str {
    if slot == "a" { "b" } else { "a" }
}

/// Where a slot's TXT record lives.
pub fn slot_record_name(host: &str, slot: &str) -> String {
    format!("dkim_{slot}.{host}")
}

/// The key file of a slot.
pub fn slot_key_path(dir: &str, slot: &str) -> String {
    format!("{dir}/{slot}.private")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    /// When each selector's key was generated (seconds since the epoch).
    #[serde(default)]
    pub created: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Retiring>,
}

/// The three steps of a rotation, the same for a domain's selectors and
/// for the two slots.
impl DomainState {
    /// A new key under `selector`, made `now`, waits for DNS.
    fn start(&mut self, selector: &str, now: u64) {
        self.created.insert(selector.to_string(), now);
        self.pending = Some(Pending {
            selector: selector.to_string(),
            since: now,
        });
    }

    /// The pending key signs from `now`; `old` is kept until retired.
    fn activate(&mut self, old: &str, now: u64) {
        self.pending = None;
        self.retiring = Some(Retiring {
            selector: old.to_string(),
            activated: now,
        });
    }

    /// The old key `selector` is gone.
    fn retire(&mut self, selector: &str) {
        self.retiring = None;
        self.created.remove(selector);
    }
}

/// A new key generated and waiting for its DNS record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub selector: String,
    pub since: u64,
}

/// The old key of an activated rotation, kept for the retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retiring {
    pub selector: String,
    pub activated: u64,
}

/// Seconds since the epoch; `DKIM_SETUP_TEST_NOW` stands in for the clock
/// in tests of the retention period and of key ages.
pub fn now() -> u64 {
    if let Some(t) = std::env::var("DKIM_SETUP_TEST_NOW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return t;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD` of a time.
fn date(secs: u64) -> String {
    let (y, m, d) = crate::apply::civil_from_days((secs / DAY) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The tables as configured, read once.
struct Tables {
    key_path: String,
    signing_path: String,
    key_text: Option<String>,
    signing_text: Option<String>,
    keys: Vec<tables::KeyEntry>,
    signing: Vec<tables::SigningEntry>,
}

fn strip_dataset(value: &str) -> String {
    value
        .trim_start_matches("refile:")
        .trim_start_matches("file:")
        .to_string()
}

fn read_tables(root: &Root, profile: &Profile) -> Result<Tables> {
    let conf_path = profile.opendkim_conf;
    let conf = root.read_opt(conf_path)?.ok_or_else(|| {
        anyhow!("'{conf_path}' not found: set up signing first with 'dkim-setup wizard'")
    })?;
    let get = |key: &str| {
        opendkim_conf::get(&conf, key)
            .map(|v| strip_dataset(&v))
            .ok_or_else(|| {
                anyhow!("'{conf_path}' has no {key}: set up signing first with 'dkim-setup wizard'")
            })
    };
    let key_path = get("KeyTable")?;
    let signing_path = get("SigningTable")?;
    let key_text = root.read_opt(&key_path)?;
    let signing_text = root.read_opt(&signing_path)?;
    let keys = tables::parse_key_table(&key_text.as_deref().unwrap_or("").replace('\r', ""))
        .map_err(|e| anyhow!("'{key_path}' {e}"))?;
    let signing =
        tables::parse_signing_table(&signing_text.as_deref().unwrap_or("").replace('\r', ""))
            .map_err(|e| anyhow!("'{signing_path}' {e}"))?;
    Ok(Tables {
        key_path,
        signing_path,
        key_text,
        signing_text,
        keys,
        signing,
    })
}

impl Tables {
    /// The KeyTable entry that signs `*@domain`.
    fn active(&self, domain: &str) -> Option<&tables::KeyEntry> {
        let pattern = format!("*@{domain}");
        let name = &self.signing.iter().find(|e| e.pattern == pattern)?.key_name;
        self.keys.iter().find(|k| k.name.eq_ignore_ascii_case(name))
    }

    /// The KeyTable entry of a domain's selector, whatever its key name.
    fn entry(&self, domain: &str, selector: &str) -> Option<&tables::KeyEntry> {
        let name = format!("{selector}._domainkey.{domain}");
        self.keys
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(&name))
            .or_else(|| {
                self.keys.iter().find(|k| {
                    k.domain.eq_ignore_ascii_case(domain)
                        && k.selector.eq_ignore_ascii_case(selector)
                })
            })
    }

    /// The domains whose keys live in the slot directory, in table order.
    fn slot_domains(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        let mut out: Vec<String> = Vec::new();
        for k in &self.keys {
            if k.key_path.starts_with(&prefix) && !out.contains(&k.domain) {
                out.push(k.domain.clone());
            }
        }
        out
    }

    /// Every domain with a `*@DOMAIN` SigningTable line, in table order.
    fn domains(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.signing {
            if let Some(d) = e.pattern.strip_prefix("*@")
                && self.active(d).is_some()
                && !out.iter().any(|o| o == d)
            {
                out.push(d.to_string());
            }
        }
        out
    }
}

/// The rotation state and its text as on disk (`None`: no file yet).
pub fn read_state(root: &Root) -> Result<(Option<String>, State)> {
    let text = root.read_opt(STATE)?;
    let state = match &text {
        Some(t) => serde_json::from_str(t).with_context(|| {
            format!("'{STATE}' is damaged; restore it from a backup or remove it")
        })?,
        None => State::default(),
    };
    Ok((text, state))
}

pub fn state_text(state: &State) -> String {
    let mut text = serde_json::to_string_pretty(state).unwrap_or_default();
    text.push('\n');
    text
}

/// Bring the state in line with what the tables say: a pending selector
/// that already signs (the wizard was given it), or an old one that signs
/// again, is no rotation any more.
fn reconcile(tables: &Tables, state: &mut State) {
    for (domain, ds) in state.domains.iter_mut() {
        let Some(active) = tables.active(domain) else {
            continue;
        };
        let signs = |sel: &str| active.selector.eq_ignore_ascii_case(sel);
        if ds.pending.as_ref().is_some_and(|p| signs(&p.selector)) {
            ds.pending = None;
        }
        if ds.retiring.as_ref().is_some_and(|r| signs(&r.selector)) {
            ds.retiring = None;
        }
    }
}

/// The other of the two customary selectors.
fn alternate(active: &str) -> &'static str {
    if active == "key" { "key1" } else { "key" }
}

/// One rotation step's work, collected over the domains it covers.
struct Work<'a> {
    ctx: &'a Ctx<'a>,
    profile: &'static Profile,
    tables: Tables,
    key_text: String,
    signing_text: String,
    state_old: Option<String>,
    state: State,
    steps: Vec<Step>,
    removes: Vec<Step>,
    reload: bool,
    /// For the user, after the run.
    said: Vec<String>,
    /// The records to publish (start) or that may go (retire).
    records: Vec<DnsRecord>,
    /// `--all`: the domains switch together, or none does.
    all: bool,
}

pub fn run(global: &Global, args: &RotateArgs) -> Result<u8> {
    if args.domains.is_empty() && !args.all {
        return Err(bad_hint(
            "rotate needs the domains to rotate",
            "give --domain DOMAIN (repeatable), or --all for every configured domain",
        ));
    }
    if args.activate && args.retire {
        return Err(bad_hint(
            "--activate and --retire are two separate steps",
            "activate first; retire after the retention period",
        ));
    }
    if args.after.is_some() && !args.retire {
        return Err(bad_hint("--after goes with --retire", "add --retire"));
    }
    if args.new_selector.is_some() && (args.activate || args.retire) {
        return Err(bad_hint(
            "--new-selector names the key of a new rotation",
            "leave it out with --activate and --retire: they act on the pending rotation",
        ));
    }
    if let Some(days) = args.after
        && days > 3650
    {
        return Err(bad_hint(
            format!("invalid retention '--after {days}': at most 3650 days"),
            "give the days to keep the old key after the activation, e.g. --after 7",
        ));
    }
    let mut domains = Vec::new();
    for d in &args.domains {
        domains.push(validate::domain(d)?);
    }
    let new_selector = args
        .new_selector
        .as_deref()
        .map(validate::selector)
        .transpose()?;
    let bits = args
        .bits
        .map(|b| validate::bits(b, args.allow_long_key))
        .transpose()?;
    if bits == Some(1024) {
        errln!(
            "warning: 1024-bit keys are weak; receivers such as Gmail may treat them as unsigned"
        );
    }
    let server = match &args.nameserver {
        Some(ns) => dns_lookup::Server::At(dns_lookup::parse_nameserver(ns)?),
        None => dns_lookup::Server::System,
    };

    let (root, distro) = crate::changing_root(global)?;
    let profile = distro.profile();
    let runner = runner::from_env();
    let ctx = Ctx {
        root,
        runner: runner.as_ref(),
        dry_run: global.dry_run,
    };
    // A run killed midway is undone first, as every run does.
    let mut lock = crate::revert::undo_interrupted_first(&ctx, profile)?;
    let tables = read_tables(&ctx.root, profile)?;
    if args.all {
        domains = tables.domains();
        if domains.is_empty() {
            return Err(bad_hint(
                "no domain is configured for signing",
                "set one up first: dkim-setup wizard --domain DOMAIN",
            ));
        }
    }
    for d in &domains {
        if tables.active(d).is_none() {
            return Err(bad_hint(
                format!("'{d}' is not configured for signing: no '*@{d}' line in the SigningTable"),
                format!("set it up first: dkim-setup wizard --domain {d}"),
            ));
        }
    }
    let (state_old, mut state) = read_state(&ctx.root)?;
    reconcile(&tables, &mut state);
    // The tables as opendkim must read them: LF only, no trailing blanks
    // (a CRLF SigningTable never matches; field case B03).
    let key_text = tables::merge_key_table(tables.key_text.as_deref().unwrap_or(""), &[])
        .map_err(|e| anyhow!("'{}' {e}", tables.key_path))?
        .text;
    let signing_text =
        tables::merge_signing_table(tables.signing_text.as_deref().unwrap_or(""), &[])
            .map_err(|e| anyhow!("'{}' {e}", tables.signing_path))?
            .text;
    let mut work = Work {
        ctx: &ctx,
        profile,
        key_text,
        signing_text,
        tables,
        state_old,
        state,
        steps: Vec::new(),
        removes: Vec::new(),
        reload: false,
        said: Vec::new(),
        records: Vec::new(),
        all: args.all || domains.len() > 1,
    };
    let now = now();
    if let Some(slots) = work.state.slots.clone() {
        let shared = work.tables.slot_domains(&slots.dir);
        if args.all {
            if args.new_selector.is_some() {
                return Err(bad_hint(
                    "--new-selector does not apply to the two-slot scheme",
                    "the slots always use the selectors key and key1; leave it out",
                ));
            }
            if args.activate {
                work.slot_activate(&slots, &shared, &server, args.force, now)?;
            } else if args.retire {
                work.slot_retire(&slots, &shared, args.after.unwrap_or(7), args.force, now)?;
            } else {
                work.slot_start(&slots, &shared, bits, now)?;
            }
            domains.retain(|d| !shared.contains(d));
        } else if let Some(d) = domains.iter().find(|d| shared.contains(d)) {
            return Err(bad_hint(
                format!("{d} signs with a key slot shared by every domain of the CNAME scheme"),
                "rotate the slots for all of them at once: dkim-setup rotate --all",
            ));
        }
    }
    for d in &domains {
        if args.activate {
            work.activate(d, &server, args.force, now)?;
        } else if args.retire {
            work.retire(d, args.after.unwrap_or(7), args.force, now)?;
        } else {
            work.start(d, new_selector.as_deref(), bits, now)?;
        }
    }

    let mut plan = work.plan(&distro)?;
    let step = if args.activate {
        "activate"
    } else if args.retire {
        "retire"
    } else {
        "start"
    };
    if ctx.dry_run {
        report(global, &plan, &work, step, None, None);
        return Ok(0);
    }
    if plan.changed() && lock.is_none() {
        lock = Some(crate::journal::lock(&ctx.root)?);
    }
    let lines = Lines {
        quiet: global.quiet || global.json,
    };
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    crate::interrupt::install();
    crate::interrupt::applying();
    let mut applier = crate::apply::Applier::new(&ctx, &lines, &command);
    let socket = current_socket(&ctx.root, profile);
    let result = applier.apply(&mut plan, &socket);
    if step == "start" {
        // The new keys' records, as the applier derived them.
        work.records.extend(plan.dns_records.iter().cloned());
    }
    drop(lock);
    let run_id = applier.run_id().map(str::to_string);
    report(
        global,
        &plan,
        &work,
        step,
        run_id.as_deref(),
        result.as_ref().err(),
    );
    match result {
        Ok(()) => Ok(0),
        Err(e) if global.json => Err(crate::error::Reported(e).into()),
        Err(e) => Err(e),
    }
}

fn current_socket(root: &Root, profile: &Profile) -> validate::Socket {
    root.read_opt(profile.opendkim_conf)
        .ok()
        .flatten()
        .and_then(|t| opendkim_conf::get(&t, "Socket"))
        .and_then(|s| validate::socket(&s).ok())
        .unwrap_or(validate::Socket::Inet {
            port: 8891,
            addr: std::net::IpAddr::from([127, 0, 0, 1]),
        })
}

impl Work<'_> {
    fn root(&self) -> &Root {
        &self.ctx.root
    }

    fn domain_state(&mut self, domain: &str) -> &mut DomainState {
        self.state.domains.entry(domain.to_string()).or_default()
    }

    /// Step 1: a new key under a new selector; signing unchanged.
    fn start(
        &mut self,
        domain: &str,
        wanted: Option<&str>,
        bits: Option<u32>,
        now: u64,
    ) -> Result<()> {
        let active = self.tables.active(domain).expect("checked").clone();
        let ds = self.state.domains.get(domain).cloned().unwrap_or_default();
        if let Some(p) = &ds.pending {
            if wanted.is_some_and(|w| w != p.selector) {
                return Err(bad_hint(
                    format!(
                        "a rotation of {domain} to selector '{}' is already pending (since {})",
                        p.selector,
                        date(p.since)
                    ),
                    format!(
                        "activate it (dkim-setup rotate --domain {domain} --activate) before \
                         starting another"
                    ),
                ));
            }
            self.said.push(format!(
                "a rotation of {domain} to selector '{}' is already pending since {}: nothing \
                 to do; publish its record, then run 'dkim-setup rotate --domain {domain} \
                 --activate'",
                p.selector,
                date(p.since)
            ));
            if let Some(entry) = self.tables.entry(domain, &p.selector)
                && let Ok(value) = record_of(self.root(), &entry.key_path)
            {
                self.records.push(txt(&entry.name, value));
            }
            return Ok(());
        }
        if let Some(r) = &ds.retiring {
            bail!(
                "the old key of {domain}'s last rotation (selector '{}') is not retired yet\n\
                 hint: retire it first: dkim-setup rotate --domain {domain} --retire (after {})",
                r.selector,
                date(r.activated + 7 * DAY)
            );
        }
        let selector = match wanted {
            Some(s) => s.to_string(),
            None => alternate(&active.selector).to_string(),
        };
        if selector.eq_ignore_ascii_case(&active.selector) {
            return Err(bad_hint(
                format!("the new selector '{selector}' is the one {domain} signs with now"),
                "choose another with --new-selector, or leave it out for the customary \
                 key/key1 alternation",
            ));
        }
        let key_path = format!("{}/{domain}/{selector}.private", self.profile.keys_dir);
        if self.tables.entry(domain, &selector).is_some() || self.root().exists(&key_path) {
            return Err(bad_hint(
                format!("the selector '{selector}' of {domain} is already in use"),
                format!(
                    "choose another with --new-selector, or remove the old key '{key_path}' and \
                     its KeyTable line if it is no longer published"
                ),
            ));
        }
        let bits = match bits {
            Some(b) => b,
            None => record_bits(self.root(), &active.key_path).unwrap_or(2048),
        };

        let owner = Owner::new(self.profile.user, self.profile.group);
        let dir = format!("{}/{domain}", self.profile.keys_dir);
        if !self.root().exists(&dir) {
            self.steps.push(Step::Dir {
                path: dir,
                action: Action::Create,
                mode: 0o700,
                owner: owner.clone(),
            });
        }
        self.steps.push(Step::Key {
            path: key_path.clone(),
            action: Action::Create,
            bits,
            domain: domain.to_string(),
            selector: selector.clone(),
            owner,
            record: None,
        });
        let entry = tables::KeyEntry {
            name: format!("{selector}._domainkey.{domain}"),
            domain: domain.to_string(),
            selector: selector.clone(),
            key_path,
        };
        self.key_text = tables::merge_key_table(&self.key_text, &[entry])
            .map_err(|e| anyhow!("'{}' {e}", self.tables.key_path))?
            .text;
        self.domain_state(domain).start(&selector, now);
        self.said.push(format!(
            "a new {bits}-bit key for {domain} under selector '{selector}'; {domain} is still \
             signed with '{}'. Publish the record below, wait until DNS serves it, then run:\n\n  \
             dkim-setup rotate --domain {domain} --activate\n",
            active.selector
        ));
        Ok(())
    }

    /// Step 2: switch signing to the pending key once DNS serves it.
    fn activate(
        &mut self,
        domain: &str,
        server: &dns_lookup::Server,
        force: bool,
        now: u64,
    ) -> Result<()> {
        let active = self.tables.active(domain).expect("checked").clone();
        let ds = self.state.domains.get(domain).cloned().unwrap_or_default();
        let Some(pending) = ds.pending.clone() else {
            bail!(
                "no rotation of {domain} is pending: nothing to activate\nhint: start one with \
                 'dkim-setup rotate --domain {domain}'"
            );
        };
        let entry = self
            .tables
            .entry(domain, &pending.selector)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "the pending key '{}._domainkey.{domain}' is not in '{}' any more\nhint: \
                     start the rotation again: dkim-setup rotate --domain {domain}",
                    pending.selector,
                    self.tables.key_path
                )
            })?;
        let expected = record_of(self.root(), &entry.key_path)?;

        let name = entry.name.clone();
        let gate = dns_gate(server, &name, &expected);
        match (gate, force) {
            (Ok(()), _) => self.said.push(format!("DNS serves the new key at {name}")),
            (Err(why), true) => self.said.push(format!(
                "warning: {why}; activating anyway (--force): receivers that cannot find the key \
                 treat {domain}'s mail as unsigned until DNS serves it"
            )),
            (Err(why), false) => bail!(
                "{why}; signing for {domain} was not switched{}\nhint: publish the record \
                 ('dkim-setup dns --domain {domain}'), wait until DNS serves it (ask the \
                 zone's own server with --nameserver to skip caches), then run again; \
                 --force skips this check",
                if self.all {
                    ", nor for any other domain (all switch together)"
                } else {
                    ""
                }
            ),
        }

        let signing = tables::SigningEntry {
            pattern: format!("*@{domain}"),
            key_name: entry.name.clone(),
        };
        self.signing_text = tables::merge_signing_table(&self.signing_text, &[signing])
            .map_err(|e| anyhow!("'{}' {e}", self.tables.signing_path))?
            .text;
        self.reload = true;
        self.domain_state(domain).activate(&active.selector, now);
        self.said.push(format!(
            "{domain} is now signed with selector '{}'. Keep the old record {}._domainkey.{domain} \
             published: mail signed before this moment still needs it. After {} run:\n\n  \
             dkim-setup rotate --domain {domain} --retire\n",
            pending.selector,
            active.selector,
            date(now + 7 * DAY)
        ));
        Ok(())
    }

    /// Step 3: remove the old key after the retention period.
    fn retire(&mut self, domain: &str, after_days: u64, force: bool, now: u64) -> Result<()> {
        let ds = self.state.domains.get(domain).cloned().unwrap_or_default();
        let Some(retiring) = ds.retiring.clone() else {
            if let Some(p) = ds.pending {
                bail!(
                    "the rotation of {domain} to selector '{}' is not activated yet: the old key \
                     still signs\nhint: activate it first: dkim-setup rotate --domain {domain} \
                     --activate",
                    p.selector
                );
            }
            bail!(
                "no old key of {domain} waits to be retired\nhint: 'dkim-setup status' shows \
                 each domain's keys"
            );
        };
        let until = retiring
            .activated
            .saturating_add(after_days.saturating_mul(DAY));
        if now < until && !force {
            bail!(
                "the old key '{}' of {domain} was replaced on {} and may still be needed to \
                 verify mail signed before then: it is kept until {} ({after_days} days)\nhint: \
                 run this again after {}, or choose a shorter retention with --after DAYS; \
                 --force retires it now",
                retiring.selector,
                date(retiring.activated),
                date(until),
                date(until)
            );
        }
        if now < until {
            self.said.push(format!(
                "warning: retiring the old key '{}' of {domain} before the retention period \
                 ends ({}) (--force): mail signed with it may fail verification",
                retiring.selector,
                date(until)
            ));
        }
        let active = self.tables.active(domain).expect("checked").clone();
        if let Some(old) = self.tables.entry(domain, &retiring.selector).cloned() {
            if old.name.eq_ignore_ascii_case(&active.name) {
                bail!("'{}' still signs {domain}: refusing to retire it", old.name);
            }
            self.key_text =
                tables::remove_key_entries(&self.key_text, std::slice::from_ref(&old.name))
                    .map_err(|e| anyhow!("'{}' {e}", self.tables.key_path))?
                    .text;
            let shared = self
                .tables
                .keys
                .iter()
                .any(|k| k.key_path == old.key_path && k.name != old.name);
            if !shared {
                let txt = old
                    .key_path
                    .strip_suffix(".private")
                    .map(|p| format!("{p}.txt"));
                for path in std::iter::once(old.key_path.clone()).chain(txt) {
                    if self.root().exists(&path) {
                        self.removes.push(Step::Remove {
                            path,
                            why: format!("retired key of {domain}"),
                        });
                    }
                }
            }
            self.reload = true;
            if let Ok(value) = record_of(self.root(), &old.key_path) {
                self.records.push(txt(&old.name, value));
            }
        }
        self.domain_state(domain).retire(&retiring.selector);
        self.said.push(format!(
            "the old key '{}' of {domain} is retired: the DNS record {}._domainkey.{domain} may \
             now be deleted",
            retiring.selector, retiring.selector
        ));
        Ok(())
    }

    /// Two-slot step 1: a new key in the idle slot for every domain; one
    /// TXT record to publish, the CNAMEs already point at it.
    fn slot_start(
        &mut self,
        slots: &Slots,
        domains: &[String],
        bits: Option<u32>,
        now: u64,
    ) -> Result<()> {
        if let Some(p) = &slots.keys.pending {
            let name = slot_record_name(&slots.host, &p.selector);
            self.said.push(format!(
                "a new key in slot {} is already pending since {}: nothing to do; publish \
                 {name}, then run 'dkim-setup rotate --all --activate'",
                p.selector,
                date(p.since)
            ));
            if let Ok(value) = record_of(self.root(), &slot_key_path(&slots.dir, &p.selector)) {
                self.records.push(txt(&name, value));
            }
            return Ok(());
        }
        if let Some(r) = &slots.keys.retiring {
            bail!(
                "the old key of slot {} is not retired yet\nhint: retire it first: dkim-setup \
                 rotate --all --retire (after {})",
                r.selector,
                date(r.activated + 7 * DAY)
            );
        }
        let idle = other_slot(&slots.active);
        let key_path = slot_key_path(&slots.dir, idle);
        if self.root().exists(&key_path) {
            return Err(bad_hint(
                format!("the idle slot {idle} still holds a key: '{key_path}'"),
                "remove it (and its KeyTable lines) if no domain signs with it, then run again",
            ));
        }
        let active_path = slot_key_path(&slots.dir, &slots.active);
        let bits = bits
            .or_else(|| record_bits(self.root(), &active_path))
            .unwrap_or(2048);
        let selector = slot_selector(idle);
        let record = slot_record_name(&slots.host, idle);
        self.steps.push(Step::Key {
            path: key_path.clone(),
            action: Action::Create,
            bits,
            domain: slots.host.clone(),
            selector: selector.to_string(),
            owner: Owner::new(self.profile.user, self.profile.group),
            record: Some(record.clone()),
        });
        let entries: Vec<tables::KeyEntry> = domains
            .iter()
            .map(|d| tables::KeyEntry {
                name: format!("{selector}._domainkey.{d}"),
                domain: d.clone(),
                selector: selector.to_string(),
                key_path: key_path.clone(),
            })
            .collect();
        self.key_text = tables::merge_key_table(&self.key_text, &entries)
            .map_err(|e| anyhow!("'{}' {e}", self.tables.key_path))?
            .text;
        let s = self.state.slots.as_mut().expect("slot scheme");
        s.keys.start(idle, now);
        self.said.push(format!(
            "a new {bits}-bit key in slot {idle} for {}; they still sign with slot {}. Publish \
             the one TXT record below at {record} (each domain's {selector}._domainkey CNAME \
             already points there), wait until DNS serves it, then run:\n\n  dkim-setup rotate \
             --all --activate\n",
            domains.join(", "),
            slots.active
        ));
        Ok(())
    }

    /// Two-slot step 2: every domain's idle selector must resolve, through
    /// its CNAME, to the new key; then all switch at once.
    fn slot_activate(
        &mut self,
        slots: &Slots,
        domains: &[String],
        server: &dns_lookup::Server,
        force: bool,
        now: u64,
    ) -> Result<()> {
        let Some(pending) = slots.keys.pending.clone() else {
            bail!(
                "no new slot key is pending: nothing to activate\nhint: start a rotation with \
                 'dkim-setup rotate --all'"
            );
        };
        let expected = record_of(self.root(), &slot_key_path(&slots.dir, &pending.selector))?;
        let selector = slot_selector(&pending.selector);
        let mut lagging = Vec::new();
        for d in domains {
            if let Err(why) = dns_gate(server, &format!("{selector}._domainkey.{d}"), &expected) {
                lagging.push(why);
            }
        }
        match (lagging.is_empty(), force) {
            (true, _) => self.said.push(format!(
                "DNS serves the new key for every domain ({selector}._domainkey → {})",
                slot_record_name(&slots.host, &pending.selector)
            )),
            (false, true) => self.said.push(format!(
                "warning: {}; activating anyway (--force)",
                lagging.join("; ")
            )),
            (false, false) => bail!(
                "{}; no domain was switched\nhint: publish {} (and each domain's CNAME), wait \
                 until DNS serves it, then run again; --force skips this check",
                lagging.join("; "),
                slot_record_name(&slots.host, &pending.selector)
            ),
        }
        let entries: Vec<tables::SigningEntry> = domains
            .iter()
            .map(|d| tables::SigningEntry {
                pattern: format!("*@{d}"),
                key_name: format!("{selector}._domainkey.{d}"),
            })
            .collect();
        self.signing_text = tables::merge_signing_table(&self.signing_text, &entries)
            .map_err(|e| anyhow!("'{}' {e}", self.tables.signing_path))?
            .text;
        self.reload = true;
        let s = self.state.slots.as_mut().expect("slot scheme");
        let old = std::mem::replace(&mut s.active, pending.selector.clone());
        s.keys.activate(&old, now);
        self.said.push(format!(
            "{} now sign with slot {} (selector {selector}). Keep {} published: mail signed \
             before this moment still needs it. After {} run:\n\n  dkim-setup rotate --all \
             --retire\n",
            domains.join(", "),
            pending.selector,
            slot_record_name(&slots.host, &old),
            date(now + 7 * DAY)
        ));
        Ok(())
    }

    /// Two-slot step 3: empty the old slot after the retention period.
    fn slot_retire(
        &mut self,
        slots: &Slots,
        domains: &[String],
        after_days: u64,
        force: bool,
        now: u64,
    ) -> Result<()> {
        let Some(retiring) = slots.keys.retiring.clone() else {
            if let Some(p) = &slots.keys.pending {
                bail!(
                    "the new key in slot {} is not activated yet: the old one still signs\n\
                     hint: activate it first: dkim-setup rotate --all --activate",
                    p.selector
                );
            }
            bail!("no old slot key waits to be retired\nhint: 'dkim-setup status' shows the keys");
        };
        let until = retiring
            .activated
            .saturating_add(after_days.saturating_mul(DAY));
        if now < until && !force {
            bail!(
                "the old key of slot {} was replaced on {} and may still be needed to verify \
                 mail signed before then: it is kept until {} ({after_days} days)\nhint: run \
                 this again after {}, or choose a shorter retention with --after DAYS; --force \
                 retires it now",
                retiring.selector,
                date(retiring.activated),
                date(until),
                date(until)
            );
        }
        let selector = slot_selector(&retiring.selector);
        let names: Vec<String> = domains
            .iter()
            .map(|d| format!("{selector}._domainkey.{d}"))
            .collect();
        self.key_text = tables::remove_key_entries(&self.key_text, &names)
            .map_err(|e| anyhow!("'{}' {e}", self.tables.key_path))?
            .text;
        let key_path = slot_key_path(&slots.dir, &retiring.selector);
        let record = slot_record_name(&slots.host, &retiring.selector);
        if let Ok(value) = record_of(self.root(), &key_path) {
            self.records.push(txt(&record, value));
        }
        let txt_path = format!("{}/{}.txt", slots.dir, retiring.selector);
        for path in [key_path, txt_path] {
            if self.root().exists(&path) {
                self.removes.push(Step::Remove {
                    path,
                    why: format!("retired key of slot {}", retiring.selector),
                });
            }
        }
        self.reload = true;
        let s = self.state.slots.as_mut().expect("slot scheme");
        s.keys.retire(&retiring.selector);
        self.said.push(format!(
            "the old key of slot {} is retired: the TXT record {record} may now be deleted; \
             keep every domain's CNAMEs, the next rotation puts a new key in slot {} again",
            retiring.selector, retiring.selector
        ));
        Ok(())
    }

    /// The plan: new keys, the tables, the state, removed files, then the
    /// validation, `opendkim -n` and a reload (never a restart).
    fn plan(&mut self, distro: &distro::Distro) -> Result<Plan> {
        let mut steps = std::mem::take(&mut self.steps);
        let root_owner = Some(Owner::new("root", "root"));
        let file = |path: &str, old: Option<String>, new: String, mode: u32| Step::File {
            path: path.to_string(),
            action: match &old {
                None => Action::Create,
                Some(o) if *o == new => Action::Unchanged,
                Some(_) => Action::Modify,
            },
            old,
            new,
            mode,
            owner: root_owner.clone(),
        };
        steps.push(file(
            &self.tables.key_path,
            self.tables.key_text.clone(),
            self.key_text.clone(),
            0o644,
        ));
        steps.push(file(
            &self.tables.signing_path,
            self.tables.signing_text.clone(),
            self.signing_text.clone(),
            0o644,
        ));
        let new_state = state_text(&self.state);
        let state_changed = self.state_old.as_deref() != Some(new_state.as_str());
        if state_changed {
            // Its directory is the journal's, made before the first change.
            steps.push(file(STATE, self.state_old.clone(), new_state, 0o644));
        }
        steps.append(&mut self.removes);
        let opendkim_reads = steps
            .iter()
            .any(|s| s.changes() && !matches!(s, Step::File { path, .. } if path == STATE));

        let status = if !opendkim_reads {
            Status::Skipped
        } else if self.ctx.dry_run {
            Status::Planned
        } else {
            Status::Done
        };
        let reason = (!opendkim_reads).then(|| "nothing opendkim reads changed".to_string());
        steps.push(Step::Verify {
            scope: crate::check::Scope::Opendkim,
            status,
            reason: reason.clone(),
        });
        let has_opendkim = self.root().is_live() || self.root().exists("/usr/sbin/opendkim");
        if has_opendkim {
            steps.push(Step::Command {
                argv: self
                    .ctx
                    .target_argv(&["opendkim", "-n", "-x", self.profile.opendkim_conf]),
                purpose: Purpose::Check,
                status,
                reason,
            });
        }
        if self.reload {
            let name = self.profile.opendkim_service;
            let init = services::init_system(self.root());
            let argv = services::argv(init, name, ServiceAction::Reload);
            let (status, reason) = if !self.ctx.services_live() {
                (Status::Skipped, Some("offline tree (--root)".to_string()))
            } else if services::opendkim_pids().is_empty() {
                (
                    Status::Skipped,
                    Some("opendkim is not running; it reads the tables when it starts".into()),
                )
            } else if self.ctx.dry_run {
                (Status::Planned, None)
            } else {
                (Status::Done, None)
            };
            steps.push(Step::Service {
                name: name.to_string(),
                action: ServiceAction::Reload,
                argv,
                status,
                reason,
            });
        }
        Ok(Plan {
            distro: distro.clone(),
            steps,
            notes: Vec::new(),
            warnings: Vec::new(),
            dns_records: Vec::new(),
        })
    }
}

/// The DNS gate of an activation: DNS must serve exactly the new key.
fn dns_gate(server: &dns_lookup::Server, name: &str, expected: &str) -> Result<(), String> {
    match dns_lookup::lookup_txt(server, name, Duration::from_secs(5)) {
        Err(e) => Err(format!("DNS could not be asked for {name}: {e:#}")),
        Ok(answer) => {
            let findings = dns_lookup::analyse(&answer, expected);
            if dns_lookup::passed(&findings) {
                Ok(())
            } else {
                let what: Vec<String> = findings
                    .iter()
                    .filter(|f| f.severity == dns_lookup::Severity::Fail)
                    .map(|f| f.message.clone())
                    .collect();
                Err(format!(
                    "DNS does not serve the new key at {name} yet: {}{}",
                    what.join("; "),
                    served(&answer)
                ))
            }
        }
    }
}

/// What DNS returned, for a refusal: each TXT record, its key cut short
/// (`; DNS returned "v=DKIM1; k=rsa; p=MIIBIjANBgkq…"`), or nothing.
fn served(answer: &dns_lookup::Answer) -> String {
    const SHOWN: usize = 48;
    let records: Vec<String> = answer
        .txt
        .iter()
        .map(|strings| {
            let value = strings.concat();
            match value.char_indices().nth(SHOWN) {
                Some((cut, _)) => format!("\"{}…\"", &value[..cut]),
                None => format!("\"{value}\""),
            }
        })
        .collect();
    if records.is_empty() {
        return String::new();
    }
    format!("; DNS returned {}", records.join(", "))
}

fn record_of(root: &Root, path: &str) -> Result<String> {
    let pem = root
        .read_opt(path)?
        .ok_or_else(|| anyhow!("the key '{path}' does not exist"))?;
    keys::record_for(
        &keys::parse_private(&pem)
            .with_context(|| format!("the key file '{path}' cannot be used"))?,
    )
}

fn record_bits(root: &Root, path: &str) -> Option<u32> {
    let pem = root.read_opt(path).ok()??;
    keys::parse_private(&pem).ok().map(|k| keys::bits_of(&k))
}

fn txt(name: &str, value: String) -> DnsRecord {
    DnsRecord {
        name: name.to_string(),
        kind: "TXT".into(),
        value,
    }
}

fn report(
    global: &Global,
    plan: &Plan,
    work: &Work,
    step: &str,
    run_id: Option<&str>,
    error: Option<&anyhow::Error>,
) {
    if global.json {
        let mut doc = plan.to_json(global.dry_run);
        doc["rotation"] = json!(step);
        if let Some(e) = error {
            // Everything was rolled back: nothing of what was planned holds.
            doc["changed"] = json!(false);
            doc["error"] = json!(format!("{e:#}"));
            doc["dns_records"] = json!([]);
        } else {
            doc["messages"] = json!(work.said);
            doc["dns_records"] = json!(work.records);
        }
        if let Some(id) = run_id {
            doc["run"] = json!(id);
        }
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    if error.is_some() {
        return;
    }
    if global.dry_run {
        outln!("Plan (dry run, nothing was changed):\n");
        out!("{}", plan.render());
        return;
    }
    for line in &work.said {
        outln!("{line}");
    }
    if work.records.is_empty() {
        return;
    }
    match step {
        "retire" => outln!("\nDNS records that may now be deleted:\n"),
        _ => outln!("\nPublish this DNS record (TXT), beside the current one:\n"),
    }
    for r in &work.records {
        outln!(
            "  name:  {}\n  type:  {}\n  value: {}\n",
            r.name,
            r.kind,
            r.value
        );
    }
    if step == "start" {
        outln!("In a zone file:\n");
        out!(
            "{}",
            crate::dns::render(&work.records, crate::dns::Format::Bind)
        );
    }
}

/// One line of `status`.
#[derive(Debug, Serialize)]
struct DomainStatus {
    domain: String,
    selector: String,
    key_type: String,
    bits: Option<u32>,
    created: Option<u64>,
    age_days: Option<u64>,
    scheme: &'static str,
    pending: Option<serde_json::Value>,
    retiring: Option<serde_json::Value>,
    rotation_due: bool,
}

pub fn status(global: &Global, args: &StatusArgs) -> Result<u8> {
    let server = match &args.nameserver {
        Some(ns) => Some(dns_lookup::Server::At(dns_lookup::parse_nameserver(ns)?)),
        None => None,
    };
    let root = crate::root_of(global)?;
    let distro = distro::detect(&root)?;
    let profile = distro.profile();
    let tables = match read_tables(&root, profile) {
        Ok(t) => t,
        Err(e)
            if root
                .read_opt(profile.opendkim_conf)
                .ok()
                .flatten()
                .is_none_or(|c| opendkim_conf::get(&c, "KeyTable").is_none()) =>
        {
            tracing::debug!("{e:#}");
            if global.json {
                outln!(
                    "{}",
                    json!({"max_age_days": args.max_age, "rotation_due": false, "domains": []})
                );
            } else {
                outln!("No domain is configured for signing yet: run 'dkim-setup wizard'.");
            }
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let (_, mut state) = read_state(&root)?;
    reconcile(&tables, &mut state);
    let now = now();
    let mut rows = Vec::new();
    let shared = state
        .slots
        .as_ref()
        .map(|s| tables.slot_domains(&s.dir))
        .unwrap_or_default();
    for domain in tables.domains() {
        let active = tables.active(&domain).expect("listed").clone();
        let mut ds = state.domains.get(&domain).cloned().unwrap_or_default();
        let in_slots = shared.contains(&domain);
        if let (true, Some(slots)) = (in_slots, &state.slots) {
            // The slots' state, told with the selectors the domain uses.
            let as_selector = |slot: &str| slot_selector(slot).to_string();
            ds.created = slots
                .keys
                .created
                .iter()
                .map(|(k, v)| (as_selector(k), *v))
                .collect();
            ds.pending = slots.keys.pending.as_ref().map(|p| Pending {
                selector: as_selector(&p.selector),
                since: p.since,
            });
            ds.retiring = slots.keys.retiring.as_ref().map(|r| Retiring {
                selector: as_selector(&r.selector),
                activated: r.activated,
            });
        }
        let bits = record_bits(&root, &active.key_path);
        let created = ds.created.get(&active.selector).copied().or_else(|| {
            std::fs::metadata(root.path(&active.key_path))
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        });
        let age_days = created.map(|c| now.saturating_sub(c) / DAY);
        let pending = ds.pending.as_ref().map(|p| {
            // Asked only with --nameserver: a status run from cron should
            // not wait on resolvers. What DNS said is kept for the report.
            let gate = server.as_ref().map(|s| {
                match tables.entry(&domain, &p.selector).and_then(|e| {
                    record_of(&root, &e.key_path)
                        .ok()
                        .map(|r| (e.name.clone(), r))
                }) {
                    Some((name, record)) => dns_gate(s, &name, &record),
                    None => Err(format!("no key is configured for '{}'", p.selector)),
                }
            });
            let seen = gate.as_ref().map(Result::is_ok);
            let dns = match &gate {
                None => "not asked: give --nameserver IP to ask".to_string(),
                Some(Ok(())) => "serves the new key".to_string(),
                Some(Err(e)) => e.clone(),
            };
            json!({"selector": p.selector, "since": p.since, "dns_seen": seen, "dns": dns})
        });
        let retiring = ds.retiring.as_ref().map(|r| {
            json!({"selector": r.selector, "activated": r.activated,
                "retire_after": r.activated + 7 * DAY})
        });
        rows.push(DomainStatus {
            domain: domain.clone(),
            selector: active.selector.clone(),
            key_type: "rsa".into(),
            bits,
            created,
            age_days,
            scheme: if in_slots { "cname" } else { "selector" },
            pending,
            retiring,
            rotation_due: age_days.is_some_and(|a| a >= args.max_age),
        });
    }
    let due = rows.iter().any(|r| r.rotation_due);

    if global.json {
        let doc = json!({"max_age_days": args.max_age, "rotation_due": due, "domains": rows});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if rows.is_empty() {
        outln!("No domain is configured for signing.");
    } else {
        outln!(
            "{:<24} {:<10} {:<9} {:>8}  {:<9} ROTATION",
            "DOMAIN",
            "SELECTOR",
            "KEY",
            "AGE",
            "SCHEME"
        );
        for r in &rows {
            let key = match r.bits {
                Some(b) => format!("rsa-{b}"),
                None => "unreadable".into(),
            };
            let age = r.age_days.map_or("?".to_string(), |a| format!("{a} d"));
            let mut rotation = Vec::new();
            if let Some(p) = &r.pending {
                let dns = p["dns"].as_str().unwrap_or("");
                let seen = match p["dns_seen"].as_bool() {
                    Some(true) => ", DNS serves it",
                    Some(false) if dns.contains("no TXT record") => ", not in DNS yet",
                    Some(false) if dns.contains("could not be asked") => ", DNS did not answer",
                    Some(false) => ", DNS serves another key",
                    None => ", DNS not asked (--nameserver)",
                };
                rotation.push(format!(
                    "pending: '{}' since {}{seen}",
                    p["selector"].as_str().unwrap_or(""),
                    date(p["since"].as_u64().unwrap_or(0))
                ));
            }
            if let Some(x) = &r.retiring {
                rotation.push(format!(
                    "old '{}' retires after {}",
                    x["selector"].as_str().unwrap_or(""),
                    date(x["retire_after"].as_u64().unwrap_or(0))
                ));
            }
            if r.rotation_due {
                rotation.push(format!("ROTATION DUE (older than {} days)", args.max_age));
            }
            if rotation.is_empty() {
                rotation.push("-".into());
            }
            outln!(
                "{:<24} {:<10} {:<9} {:>8}  {:<9} {}",
                r.domain,
                r.selector,
                key,
                age,
                r.scheme,
                rotation.join("; ")
            );
        }
    }
    if due && args.fail_if_due {
        let domains: Vec<&str> = rows
            .iter()
            .filter(|r| r.rotation_due)
            .map(|r| r.domain.as_str())
            .collect();
        let how = if rows.iter().any(|r| r.rotation_due && r.scheme == "cname") {
            "dkim-setup rotate --all"
        } else {
            "dkim-setup rotate --domain DOMAIN"
        };
        errln!(
            "rotation due for {} (key older than {} days): start one with '{how}'",
            domains.join(", "),
            args.max_age
        );
        return Ok(1);
    }
    Ok(0)
}
