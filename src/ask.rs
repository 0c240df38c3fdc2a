//! The interactive side of `wizard`: what the tool found, the questions it
//! must ask, and the plan screen.
//!
//! 1. Detect what can be known without asking: the system, the init
//!    system, Postfix and its names, whether OpenDKIM is installed, the
//!    domains already signed, the milters already wired.
//! 2. Ask only for answers no flag gave: domains (default: Postfix's
//!    `mydomain`), selector, key size, extra trusted hosts. Each answer is
//!    checked as it is typed, by the same validators the flags go through,
//!    and asked again with the reason when it is refused.
//! 3. Show the plan, one line per change, with the full diffs on request,
//!    and ask to proceed; Enter proceeds.
//!
//! Prompts use dialoguer on stderr. Nothing here writes to the machine.

use crate::cli::WizardArgs;
use crate::distro::Distro;
use crate::edit::{main_cf, opendkim_conf, tables};
use crate::plan::Plan;
use crate::services::{self, Init};
use crate::setup::{self, Ctx};
use crate::validate;
use anyhow::Result;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Select};

/// What the tool found before asking anything.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub system: String,
    pub init: String,
    pub myhostname: Option<String>,
    pub mydomain: Option<String>,
    /// `/etc/mailname` (Debian: the mail domain, or the host's mail name).
    pub mailname: Option<String>,
    pub postfix: bool,
    pub opendkim_installed: bool,
    /// (domain, selector) already in the SigningTable.
    pub signed: Vec<(String, String)>,
    pub milters: Vec<String>,
    /// The two-slot CNAME scheme is set up (its selectors are fixed).
    pub slots: bool,
}

/// Look around without changing anything.
pub fn detect(ctx: &Ctx, distro: &Distro) -> Result<Found> {
    let profile = distro.profile();
    let mut found = Found {
        system: if distro.pretty.is_empty() {
            format!("{} {}", distro.id, distro.version)
        } else {
            distro.pretty.clone()
        },
        init: match services::init_system(&ctx.root) {
            Init::Systemd => "systemd".into(),
            Init::SysV => "init scripts (no systemd running)".into(),
        },
        slots: crate::rotate::read_state(&ctx.root)
            .map(|(_, s)| s.slots.is_some())
            .unwrap_or(false),
        ..Found::default()
    };

    if let Some(main) = ctx
        .root
        .read_opt(&format!("{}/main.cf", profile.postfix_dir))?
    {
        found.postfix = true;
        found.myhostname = main_cf::get(&main, "myhostname")
            .or_else(|| ctx.root.read_opt("/etc/hostname").ok().flatten())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        found.mailname = ctx
            .root
            .read_opt("/etc/mailname")
            .ok()
            .flatten()
            .map(|m| m.trim().into());
        // As Postfix derives it: the host name without its first label, or
        // "localdomain" for a host name without a dot.
        found.mydomain = main_cf::get(&main, "mydomain").or_else(|| {
            let host = found.myhostname.as_deref()?;
            Some(
                host.split_once('.')
                    .map_or("localdomain".into(), |(_, d)| d.to_string()),
            )
        });
        found.milters = main_cf::effective_milters(&main, "smtpd_milters");
    }
    found.opendkim_installed = crate::packages::missing(ctx, profile)?.is_empty();

    let conf = ctx
        .root
        .read_opt(profile.opendkim_conf)?
        .unwrap_or_default();
    let table = |key: &str| {
        opendkim_conf::get(&conf, key).map(|v| {
            v.trim_start_matches("refile:")
                .trim_start_matches("file:")
                .to_string()
        })
    };
    if let (Some(kt), Some(st)) = (table("KeyTable"), table("SigningTable")) {
        let keys = ctx.root.read_opt(&kt)?.unwrap_or_default();
        let signing = ctx.root.read_opt(&st)?.unwrap_or_default();
        let keys = tables::parse_key_table(&keys.replace('\r', "")).unwrap_or_default();
        for entry in tables::parse_signing_table(&signing.replace('\r', "")).unwrap_or_default() {
            if let Some(k) = keys.iter().find(|k| k.name == entry.key_name) {
                found.signed.push((k.domain.clone(), k.selector.clone()));
            }
        }
    }
    Ok(found)
}

/// The domain a host name lives in: the name without its first label,
/// when that leaves at least two labels.
fn parent_domain(host: &str) -> Option<String> {
    let (_, rest) = host.split_once('.')?;
    rest.contains('.').then(|| rest.to_string())
}

impl Found {
    /// The domain offered at the first question: one already signed, else
    /// Postfix's `mydomain` when it is a real domain, else the mail name
    /// (itself when it is a bare domain, else its parent).
    pub fn suggested_domain(&self) -> Option<String> {
        let real = |d: &String| validate::domain(d).is_ok() && d.as_str() != "localdomain";
        if let Some((d, _)) = self.signed.first() {
            return Some(d.clone());
        }
        if let Some(d) = self.mydomain.clone().filter(|d| real(d) && d.contains('.')) {
            return Some(d);
        }
        let mailname = self.mailname.as_deref()?;
        let domain = if mailname.matches('.').count() == 1 {
            Some(mailname.to_string())
        } else {
            parent_domain(mailname)
        };
        domain.filter(real)
    }
}

/// The short summary shown before the first question.
pub fn summary(found: &Found) -> String {
    let mut out = String::from("dkim-setup: DKIM signing for Postfix with OpenDKIM\n\n");
    let line = |out: &mut String, what: &str, text: String| {
        out.push_str(&format!("  {what:<9} {text}\n"));
    };
    line(
        &mut out,
        "System",
        format!("{}, {}", found.system, found.init),
    );
    let postfix = match (found.postfix, &found.myhostname, &found.mydomain) {
        (false, _, _) => "not installed".to_string(),
        (true, h, d) => format!(
            "installed; myhostname {}, mydomain {}",
            h.as_deref().unwrap_or("(unset)"),
            d.as_deref().unwrap_or("(unset)")
        ),
    };
    line(&mut out, "Postfix", postfix);
    let opendkim = if found.opendkim_installed {
        "installed"
    } else {
        "not installed yet"
    };
    line(&mut out, "OpenDKIM", opendkim.to_string());
    let signed = if found.signed.is_empty() {
        "no domain yet".to_string()
    } else {
        let list: Vec<String> = found
            .signed
            .iter()
            .map(|(d, s)| format!("{d} (selector {s})"))
            .collect();
        list.join(", ")
    };
    line(&mut out, "Signing", signed);
    let milters = if found.milters.is_empty() {
        "none".to_string()
    } else {
        found.milters.join(", ")
    };
    line(&mut out, "Milters", milters);
    out
}

fn theme() -> ColorfulTheme {
    ColorfulTheme::default()
}

/// What the questions decided beyond the flags' own values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// The selector answer is for new domains; configured ones keep theirs.
    pub selector_for_new_only: bool,
}

/// Ask for every answer the flags did not give, filling them into `args`.
/// Domains already signed keep their selector and key, so the selector
/// and key size are asked only for domains that have none yet.
pub fn missing_answers(args: &mut WizardArgs, found: &Found) -> Result<Asked> {
    let theme = theme();
    let mut asked = Asked::default();
    if args.domains.is_empty() {
        let default = found.suggested_domain();
        let mut input = Input::<String>::with_theme(&theme)
            .with_prompt("Domains to sign for (comma-separated)")
            .allow_empty(true)
            .validate_with(|text: &String| -> Result<(), String> { domain_list(text).map(|_| ()) });
        if let Some(d) = default {
            input = input.default(d);
        }
        let text = input.interact_text()?;
        args.domains = domain_list(&text).map_err(anyhow::Error::msg)?;
    }
    let typed: Vec<String> = args
        .domains
        .iter()
        .filter_map(|d| validate::domain(d).ok())
        .collect();
    let configured = |d: &String| found.signed.iter().any(|(s, _)| s == d);
    let new_domains = typed.iter().filter(|d| !configured(d)).count();
    // The two-slot scheme fixes the selectors (key, key1), and
    // --selector-from-hostname derives it: nothing to ask.
    let slots = args.rotation == Some(crate::cli::Rotation::Cname) || found.slots;
    if args.selector.is_none() && !args.selector_from_hostname && new_domains > 0 && !slots {
        let prompt = if new_domains < typed.len() {
            asked.selector_for_new_only = true;
            "Selector for the new domains (the key's name in DNS)"
        } else {
            "Selector (the key's name in DNS)"
        };
        let selector = Input::<String>::with_theme(&theme)
            .with_prompt(prompt)
            .default(setup::DEFAULT_SELECTOR.to_string())
            .validate_with(|text: &String| -> Result<(), String> {
                validate::selector(text)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .interact_text()?;
        args.selector = Some(selector);
    }
    if args.bits.is_none() && new_domains > 0 {
        let sizes = [
            (2048, "2048 bits (recommended)"),
            (3072, "3072 bits"),
            (4096, "4096 bits (long DNS record; some providers cut it)"),
            (1024, "1024 bits (weak; some receivers ignore it)"),
        ];
        let choice = Select::with_theme(&theme)
            .with_prompt("Key size")
            .items(sizes.iter().map(|(_, label)| *label))
            .default(0)
            .interact()?;
        args.bits = Some(sizes[choice].0);
        if sizes[choice].0 == 4096 {
            args.allow_long_key = true;
        }
    }
    if args.trusted_hosts.is_empty() {
        let text = Input::<String>::with_theme(&theme)
            .with_prompt("Other hosts or networks sending via this server (Enter to skip)")
            .allow_empty(true)
            .validate_with(|text: &String| -> Result<(), String> { host_list(text).map(|_| ()) })
            .interact_text()?;
        args.trusted_hosts = host_list(&text).map_err(anyhow::Error::msg)?;
    }
    Ok(asked)
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Domains typed at the prompt, each validated; the error names the bad one.
pub fn domain_list(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = split(text).map(String::from).collect();
    if list.is_empty() {
        return Err("give at least one domain, e.g. example.com".into());
    }
    for d in &list {
        validate::domain(d).map_err(|e| e.to_string())?;
    }
    Ok(list)
}

/// Trusted hosts typed at the prompt, each validated.
pub fn host_list(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = split(text).map(String::from).collect();
    for h in &list {
        validate::trusted_host(h).map_err(|e| e.to_string())?;
    }
    Ok(list)
}

/// What the user chose at the plan screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply,
    Cancel,
}

/// Show the plan and ask whether to apply it; Enter applies.
pub fn confirm(plan: &Plan) -> Result<Decision> {
    errln!("\nThe plan:\n");
    for step in &plan.steps {
        errln!("  {}", step.summary());
    }
    for note in &plan.notes {
        errln!("note: {note}");
    }
    for warning in &plan.warnings {
        errln!("warning: {warning}");
    }
    errln!();
    let theme = theme();
    loop {
        let choice = Select::with_theme(&theme)
            .with_prompt("Apply these changes?")
            .items([
                "Yes, apply them",
                "Show the full diffs first",
                "No, change nothing",
            ])
            .default(0)
            .interact()?;
        match choice {
            0 => return Ok(Decision::Apply),
            1 => {
                for step in &plan.steps {
                    let diff = step.diff();
                    if !diff.is_empty() {
                        errln!("{diff}");
                    }
                }
            }
            _ => return Ok(Decision::Cancel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lists_are_split_and_checked() {
        assert_eq!(
            domain_list("a.example, b.example").unwrap(),
            vec!["a.example", "b.example"]
        );
        assert_eq!(domain_list("a.example b.example").unwrap().len(), 2);
        let err = domain_list("a.example, bad_domain").unwrap_err();
        assert!(err.contains("bad_domain"), "{err}");
        assert!(domain_list("  ").is_err());
        assert!(host_list("").unwrap().is_empty());
        assert!(host_list("0.0.0.0/0").is_err());
    }

    #[test]
    fn parent_domains() {
        assert_eq!(
            parent_domain("mail.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(parent_domain("example.com"), None);
        assert_eq!(parent_domain("vm"), None);
    }

    #[test]
    fn the_suggested_domain_follows_postfix_then_the_mail_name() {
        let found = |mydomain: Option<&str>, mailname: Option<&str>| Found {
            mydomain: mydomain.map(String::from),
            mailname: mailname.map(String::from),
            ..Found::default()
        };
        let suggest = |f: Found| f.suggested_domain();
        assert_eq!(
            suggest(found(Some("example.com"), None)).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            suggest(found(Some("localdomain"), Some("example.org"))).as_deref(),
            Some("example.org")
        );
        assert_eq!(
            suggest(found(Some("localdomain"), Some("mail.example.test"))).as_deref(),
            Some("example.test")
        );
        assert_eq!(suggest(found(Some("localdomain"), Some("vm"))), None);
        let mut signed = found(Some("example.com"), None);
        signed.signed.push(("example.net".into(), "key".into()));
        assert_eq!(suggest(signed).as_deref(), Some("example.net"));
    }

    #[test]
    fn summary_names_what_was_found() {
        let found = Found {
            system: "Debian GNU/Linux 12 (bookworm)".into(),
            init: "systemd".into(),
            myhostname: Some("mail.example.com".into()),
            mydomain: Some("example.com".into()),
            mailname: None,
            postfix: true,
            opendkim_installed: false,
            signed: vec![("example.org".into(), "key".into())],
            milters: vec!["inet:127.0.0.1:8893".into()],
            slots: false,
        };
        let text = summary(&found);
        assert!(text.contains("mydomain example.com"));
        assert!(text.contains("not installed yet"));
        assert!(text.contains("example.org (selector key)"));
        assert!(text.contains("inet:127.0.0.1:8893"));
    }
}
