//! `dkim-setup wizard`: validate the answers, plan, show or apply, report.
//!
//! Every answer is checked before anything is read from the machine beyond
//! os-release, so bad input never leaves a trace. A dry run prints the plan
//! and stops; a real run installs missing packages, plans the files against
//! what is now on disk, applies, and prints the DNS records to publish.

use crate::apply::{Applier, Progress};
use crate::cli::{Global, WizardArgs};
use crate::error::{BadInput, bad_hint};
use crate::plan::{Plan, Step};
use crate::progress::{Bars, Lines};
use crate::setup::{self, Answers, Ctx};
use crate::system::runner;
use crate::validate;
use crate::{answers_file, ask, distro, packages};
use anyhow::Result;
use std::io::IsTerminal;

/// Where opendkim listens unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "inet:8891@127.0.0.1";

/// Check every value a flag gave, before any question is asked.
fn check_given(args: &WizardArgs) -> Result<()> {
    let mut probe = args.clone();
    if probe.domains.is_empty() {
        probe.domains.push("example.com".into());
    }
    answers(&probe).map(|_| ())
}

/// Check every answer; the first bad one is refused with exit 2.
pub fn answers(args: &WizardArgs) -> Result<Answers> {
    let mut domains = Vec::new();
    for d in &args.domains {
        let d = validate::domain(d)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if domains.is_empty() {
        return Err(match &args.from_file {
            Some(origin) => bad_hint(
                format!(
                    "missing answer: no domain to sign for (--domain, or domains in '{}')",
                    origin.path
                ),
                format!(
                    "pass --domain example.com, or add domains = [\"example.com\"] to '{}'",
                    origin.path
                ),
            ),
            None => bad_hint(
                "missing answer: no domain to sign for (--domain)",
                "pass --domain example.com (repeat it for more domains)",
            ),
        });
    }
    let selector = args
        .selector
        .as_deref()
        .map(validate::selector)
        .transpose()?;
    for d in &domains {
        validate::record_name(selector.as_deref().unwrap_or(setup::DEFAULT_SELECTOR), d)?;
    }
    let cname = args.rotation == Some(crate::cli::Rotation::Cname);
    let name = |key, flag, in_file| answers_file::named(args, key, flag, in_file);
    let slot_host = match (&args.slot_host, cname) {
        (Some(h), true) => {
            let host = validate::domain(h).map_err(|_| {
                bad_hint(
                    format!("invalid slot host '{}'", validate::shown(h)),
                    "give the host name under which dkim_a and dkim_b are published, e.g. \
                     mail.example.net",
                )
            })?;
            validate::record_name("dkim_a", &host)?;
            Some(host)
        }
        (None, true) => {
            return Err(bad_hint(
                format!(
                    "missing answer: {} needs --slot-host",
                    name("rotation", "--rotation cname", "rotation = \"cname\"")
                ),
                "pass --slot-host mail.example.net (where dkim_a and dkim_b are published)",
            ));
        }
        (Some(_), false) => {
            return Err(bad_hint(
                format!(
                    "{} goes with --rotation cname",
                    name("slot_host", "--slot-host", "slot_host")
                ),
                "add --rotation cname, or leave --slot-host out",
            ));
        }
        (None, false) => None,
    };
    let rotation = || name("rotation", "--rotation cname", "rotation = \"cname\"");
    if slot_host.is_some() && selector.is_some() {
        return Err(bad_hint(
            format!(
                "{} cannot be chosen with {}",
                name("selector", "--selector", "selector"),
                rotation()
            ),
            "the two slots always use the selectors key and key1; leave the selector out",
        ));
    }
    if args.selector_from_hostname && selector.is_some() {
        return Err(bad_hint(
            "--selector-from-hostname cannot be used with --selector",
            "leave out one of them",
        ));
    }
    if args.selector_from_hostname && cname {
        return Err(bad_hint(
            format!(
                "{} cannot be used with {}",
                name(
                    "selector_from_hostname",
                    "--selector-from-hostname",
                    "selector_from_hostname"
                ),
                rotation()
            ),
            "the two slots always use the selectors key and key1; leave the selector from \
             the host name out",
        ));
    }
    let bits = args.bits.unwrap_or(2048);
    let origin = args.from_file.as_ref();
    if bits == 4096 && !args.allow_long_key && origin.is_some_and(|o| o.gave("bits")) {
        let path = origin.map(|o| o.path.as_str()).unwrap_or_default();
        return Err(bad_hint(
            format!(
                "bits = 4096 in '{path}' makes a 750-character DNS record that many DNS \
                 providers truncate or reject"
            ),
            format!(
                "use bits = 2048, or add allow_long_key = true to '{path}' (or pass \
                 --allow-long-key) if your provider takes long records"
            ),
        ));
    }
    Ok(Answers {
        domains,
        selector,
        selector_for_new_only: origin.is_some_and(|o| o.keep_configured_selectors),
        bits: validate::bits(bits, args.allow_long_key)?,
        socket: validate::socket(args.socket.as_deref().unwrap_or(DEFAULT_SOCKET))?,
        trusted_hosts: args
            .trusted_hosts
            .iter()
            .map(|h| validate::trusted_host(h))
            .collect::<Result<_>>()?,
        report_address: args
            .report_address
            .as_deref()
            .map(setup::report_address)
            .transpose()?,
        no_install: args.no_install,
        no_restart: args.no_restart,
        slot_host,
    })
}

/// Prompts only with a terminal on both ends and no `-y`, `--json` or
/// `--answers` (a replay is unattended).
fn interactive(global: &Global, args: &WizardArgs) -> bool {
    !args.non_interactive
        && args.answers.is_none()
        && !global.json
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

pub fn run(global: &Global, args: &WizardArgs) -> Result<u8> {
    let mut args = args.clone();
    if let Some(path) = args.answers.clone() {
        let file = answers_file::read(&path)?;
        args = answers_file::merge(&args, &path, file);
    }
    if let Some(path) = &args.save_answers {
        answers_file::check_target(path)?;
    }
    let interactive = interactive(global, &args);
    if interactive {
        check_given(&args)?;
    } else {
        answers(&args)?;
    }
    let (root, distro) = crate::changing_root(global)?;
    let profile = distro.profile();
    let main_cf = format!("{}/main.cf", profile.postfix_dir);
    if !root.exists(&main_cf) {
        return Err(bad_hint(
            format!("Postfix is not installed: '{main_cf}' not found"),
            "install and configure Postfix first (apt-get install postfix), then run dkim-setup \
             again",
        ));
    }
    let host_selector = if args.selector_from_hostname {
        Some(host_selector(&root, profile)?)
    } else {
        None
    };
    // The two-slot scheme set up by an earlier run, under its slot host.
    let slot_host = crate::rotate::read_state(&root)
        .ok()
        .and_then(|(_, s)| s.slots.map(|slots| slots.host));
    if host_selector.is_some() && slot_host.is_some() {
        return Err(bad_hint(
            "--selector-from-hostname cannot be used on this system: it signs with the \
             two-slot CNAME scheme, whose selectors are always key and key1",
            "leave --selector-from-hostname out",
        ));
    }
    let runner = runner::from_env();
    let ctx = Ctx {
        root,
        runner: runner.as_ref(),
        dry_run: global.dry_run,
    };
    crate::interrupt::install();
    let lock = crate::revert::undo_interrupted_first(&ctx, profile)?;

    let mut asked = ask::Asked::default();
    if interactive {
        let found = ask::detect(&ctx, &distro)?;
        let mut summary = ask::summary(&found);
        if let Some(h) = &host_selector {
            summary.push_str(&format!(
                "  {:<9} {}, the first label of {} ({})\n",
                "Selector", h.selector, h.host, h.source
            ));
        }
        errln!("{summary}");
        asked = ask::missing_answers(&mut args, &found)?;
    }
    let mut answers = answers(&args)?;
    answers.selector_for_new_only |= asked.selector_for_new_only;
    if let Some(h) = &host_selector {
        for d in &answers.domains {
            validate::record_name(&h.selector, d)?;
        }
        answers.selector = Some(h.selector.clone());
        if !interactive && !global.quiet {
            errln!(
                "note: selector '{}', the first label of the host name '{}' ({})",
                h.selector,
                h.host,
                h.source
            );
        }
    }
    let saved = args.save_answers.as_deref().map(|path| {
        (
            path,
            answers_file::render(&args, &answers, slot_host.as_deref()),
        )
    });
    if answers.bits == 1024 {
        errln!(
            "warning: 1024-bit keys are weak; receivers such as Gmail may treat them as unsigned"
        );
    }
    let mut missing = packages::missing(&ctx, profile)?;
    if distro.family == distro::Family::Rhel
        && crate::selinux::needs_semanage(&ctx, &answers.socket)
    {
        missing.push(crate::selinux::SEMANAGE_PACKAGE);
    }
    if !missing.is_empty() && answers.no_install {
        return Err(BadInput::new(format!(
            "{} not installed, and --no-install was given",
            missing.join(" and ")
        ))
        .hint(format!(
            "install them ({}), or run without --no-install",
            packages::install_argv(&ctx, &distro, &missing).join(" ")
        ))
        .into());
    }

    let mut notes_shown = false;
    if !ctx.dry_run && (interactive || !missing.is_empty()) {
        // Planned before anything is installed, so that a configuration the
        // tool must refuse is refused before the package manager runs.
        let preview_ctx = Ctx {
            root: ctx.root.clone(),
            runner: ctx.runner,
            dry_run: true,
        };
        let preview = setup::plan(&preview_ctx, &distro, &answers, &missing)?;
        if interactive && !preview.changed() {
            errln!("\nNothing to change: every file is already as planned.");
        } else if interactive {
            notes_shown = true;
            if ask::confirm(&preview)? == ask::Decision::Cancel {
                errln!("Nothing was changed.");
                return Ok(0);
            }
        }
    }

    let bars = Bars::default();
    let lines = Lines {
        quiet: global.quiet,
    };
    // indicatif draws nothing on a dumb terminal: plain lines there.
    let dumb = std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb");
    let progress: &dyn Progress = if interactive && !global.quiet && !dumb {
        &bars
    } else {
        &lines
    };
    crate::interrupt::applying();
    let run = Run {
        ctx: &ctx,
        distro: &distro,
        answers: &answers,
        progress,
        notes_shown,
        save: saved.as_ref().map(|(p, t)| (*p, t.as_str())),
    };
    execute(global, run, missing, lock)
}

/// The selector `--selector-from-hostname` gives, and where it came from.
struct HostSelector {
    selector: String,
    host: String,
    /// Where the host name was read, for messages.
    source: String,
}

/// The first label of Postfix's `myhostname` (main.cf under the root), else
/// of `/etc/hostname`, checked as a selector.
fn host_selector(root: &crate::system::Root, profile: &distro::Profile) -> Result<HostSelector> {
    let main_cf = format!("{}/main.cf", profile.postfix_dir);
    let named = |text: Option<String>| {
        text.and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|h| !h.is_empty())
    };
    let main = root.read_opt(&main_cf)?.unwrap_or_default();
    let (host, source) = match named(crate::edit::main_cf::get(&main, "myhostname")) {
        Some(h) => (h, format!("myhostname in {main_cf}")),
        None => match named(root.read_opt("/etc/hostname")?) {
            Some(h) => (h, "/etc/hostname".to_string()),
            None => {
                return Err(bad_hint(
                    format!(
                        "--selector-from-hostname found no host name: myhostname is not set in \
                         {main_cf} and /etc/hostname is missing or empty"
                    ),
                    format!("set myhostname in {main_cf}, or pass --selector NAME instead"),
                ));
            }
        },
    };
    let refuse = |why: String| {
        bad_hint(
            format!(
                "cannot derive a selector from the host name '{}' ({source}): {why}",
                validate::shown(&host)
            ),
            format!(
                "set myhostname in {main_cf} to this server's own name (e.g. \
                 mx1.example.com), or pass --selector NAME instead"
            ),
        )
    };
    let label = host.split('.').next().unwrap_or_default();
    if label.eq_ignore_ascii_case("localhost") {
        return Err(refuse(
            "every server without a name is called that, so the servers of a fleet would \
             share one selector"
                .into(),
        ));
    }
    let selector = validate::selector(label).map_err(|e| refuse(e.to_string()))?;
    Ok(HostSelector {
        selector,
        host: host.clone(),
        source: source.clone(),
    })
}

/// What one wizard run works with once the answers are known.
#[derive(Clone, Copy)]
struct Run<'a> {
    ctx: &'a Ctx<'a>,
    distro: &'a distro::Distro,
    answers: &'a Answers,
    progress: &'a dyn Progress,
    /// The plan screen already showed the notes.
    notes_shown: bool,
    /// `--save-answers`: the file and its text, written once the plan is made.
    save: Option<(&'a std::path::Path, &'a str)>,
}

/// Install what is missing, plan against the files now on disk, apply (or
/// print the plan for a dry run), and report.
fn execute(
    global: &Global,
    run: Run,
    mut missing: Vec<&'static str>,
    mut lock: Option<crate::journal::Lock>,
) -> Result<u8> {
    let Run {
        ctx,
        distro,
        answers,
        progress,
        ..
    } = run;
    let mut applier = Applier::new(ctx, progress, &command_line());
    let mut installed = Vec::new();
    if !missing.is_empty() && !ctx.dry_run {
        lock.get_or_insert(crate::journal::lock(&ctx.root)?);
        for step in packages::install_steps(ctx, distro, &missing)? {
            if let Err(e) = applier.run_command(&step) {
                if crate::interrupt::requested() {
                    return Err(crate::error::Interrupted(
                        "the package install was stopped before any file was changed; if \
                         the package manager reports a broken state, finish it by hand"
                            .into(),
                    )
                    .into());
                }
                return Err(e);
            }
            installed.push(step);
        }
        missing.clear();
    }

    let mut plan = setup::plan(ctx, distro, answers, &missing)?;
    plan.steps.splice(0..0, installed);
    // The answers are saved once they are known to make a plan, before
    // anything is applied: a run that then fails keeps them for a replay.
    // A dry run saves them too (the file is not part of the system).
    if let Some((path, text)) = run.save {
        answers_file::write(path, text)?;
        if !global.quiet {
            errln!(
                "note: answers saved to '{0}'; replay them with 'dkim-setup wizard --answers {0}'",
                path.display()
            );
        }
    }
    if ctx.dry_run {
        plan.dns_records = known_records(ctx, &plan);
        report(global, &run, &plan, None, None);
        return Ok(0);
    }
    // Taken only now, so that input refused while planning leaves nothing
    // behind; a plan made stale meanwhile by another run is caught by the
    // applier, which writes a file only while it is as planned.
    if plan.changed() && lock.is_none() {
        lock = Some(crate::journal::lock(&ctx.root)?);
    }
    let result = applier.apply(&mut plan, &answers.socket);
    drop(lock);
    let slots = crate::rotate::read_state(&ctx.root)
        .map(|(_, s)| s.slots.is_some())
        .unwrap_or(false);
    if result.is_ok() && slots {
        // The shared slot key is published once; each domain adds CNAMEs.
        let conf = distro.profile().opendkim_conf;
        if let Ok(found) = crate::dns::configured_records(&ctx.root, conf, &answers.domains) {
            plan.dns_records = found.records;
        }
    }
    let run_id = applier.run_id().map(str::to_string);
    report(
        global,
        &run,
        &plan,
        result.as_ref().err(),
        run_id.as_deref(),
    );
    match result {
        Ok(()) => Ok(0),
        Err(e) if global.json => Err(crate::error::Reported(e).into()),
        Err(e) => Err(e),
    }
}

/// The command line as typed, for the journal (flags only: no secrets are
/// ever given on it).
fn command_line() -> String {
    let words: Vec<String> = std::env::args().skip(1).collect();
    words.join(" ")
}

/// In a dry run, the records of keys that already exist.
fn known_records(ctx: &Ctx, plan: &Plan) -> Vec<crate::plan::DnsRecord> {
    let conf = plan.distro.profile().opendkim_conf;
    let domains: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Key {
                domain,
                action: crate::plan::Action::Unchanged,
                ..
            } => Some(domain.clone()),
            _ => None,
        })
        .collect();
    if domains.is_empty() {
        return Vec::new();
    }
    crate::dns::configured_records(&ctx.root, conf, &domains)
        .map(|found| found.records)
        .unwrap_or_default()
}

/// The end of a run: the JSON document, or the notes and the DNS screen.
/// Notes already shown on the plan screen are not repeated; warnings are.
fn report(
    global: &Global,
    run: &Run,
    plan: &Plan,
    error: Option<&anyhow::Error>,
    run_id: Option<&str>,
) {
    if global.json {
        let mut doc = plan.to_json(global.dry_run);
        if let Some(id) = run_id {
            doc["run"] = serde_json::json!(id);
        }
        if let Some(e) = error {
            doc["error"] = serde_json::json!(format!("{e:#}"));
        }
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    // After a failure the notes describe changes that were just undone.
    if !run.notes_shown && error.is_none() {
        for note in &plan.notes {
            errln!("note: {note}");
        }
    }
    for warning in &plan.warnings {
        errln!("warning: {warning}");
    }
    if let (Some(id), None) = (run_id, error)
        && !global.quiet
    {
        errln!("note: this run is journaled as {id}; 'dkim-setup revert' undoes it");
    }
    if global.json {
        return;
    }
    let answers = run.answers;
    if error.is_some() {
        return;
    }
    if global.dry_run {
        outln!("Plan (dry run, nothing was changed):\n");
        out!("{}", plan.render());
        return;
    }
    let domains = answers.domains.join(", ");
    let waiting: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Service {
                argv,
                reason: Some(r),
                ..
            } if r == "--no-restart" => Some(argv.join(" ")),
            _ => None,
        })
        .collect();
    if !waiting.is_empty() {
        outln!(
            "DKIM signing for {domains} is configured, but starts only once the services \
             read the new files (--no-restart). Run:\n\n  {}\n",
            waiting.join("\n  ")
        );
    } else if plan.changed() {
        outln!("DKIM signing is set up for {domains}.");
    } else {
        outln!("Nothing to change: DKIM signing for {domains} is already set up.");
    }
    outln!("\nPublish these DNS records:\n");
    for r in &plan.dns_records {
        outln!(
            "  name:  {}\n  type:  {}\n  value: {}\n",
            r.name,
            r.kind,
            r.value
        );
    }
    outln!("In a zone file:\n");
    out!(
        "{}",
        crate::dns::render(&plan.dns_records, crate::dns::Format::Bind)
    );
    outln!(
        "\nDNS changes can take from minutes up to the record's TTL (often an hour) to be seen."
    );
    let domains: Vec<String> = answers
        .domains
        .iter()
        .map(|d| format!("--domain {d}"))
        .collect();
    outln!(
        "Once it is published, prove signing and DNS with:\n\n  dkim-setup check {}",
        domains.join(" ")
    );
}
