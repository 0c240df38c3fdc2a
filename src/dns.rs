//! `dkim-setup dns`: the records to publish, read back from the keys.
//!
//! The records are derived from the private keys the KeyTable names, never
//! from the `.txt` files beside them, so what is printed is what opendkim
//! signs with. Three forms: `plain` (name, type and the unquoted value on one
//! line, for web control panels), `bind` (zone-file syntax with the value
//! split into quoted strings of at most 255 bytes) and `json`.

use crate::edit::{opendkim_conf, tables};
use crate::keys;
use crate::plan::DnsRecord;
use crate::system::Root;
use anyhow::{Context, Result, anyhow};
use serde_json::json;

/// The output forms of `dns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Plain,
    Bind,
    Json,
}

/// The records for the configured domains (all, or those in `only`). A key
/// that cannot be read is reported, and the others are still given.
pub fn configured_records(root: &Root, conf_path: &str, only: &[String]) -> Result<Records> {
    let conf = root
        .read_opt(conf_path)?
        .ok_or_else(|| anyhow!("'{conf_path}' not found: run 'dkim-setup wizard' first"))?;
    let key_table = opendkim_conf::get(&conf, "KeyTable")
        .ok_or_else(|| anyhow!("'{conf_path}' has no KeyTable: run 'dkim-setup wizard' first"))?;
    let key_table = key_table
        .trim_start_matches("file:")
        .trim_start_matches("refile:")
        .to_string();
    let text = root
        .read_opt(&key_table)?
        .ok_or_else(|| anyhow!("the KeyTable '{key_table}' does not exist"))?;
    let entries = tables::parse_key_table(&text.replace('\r', ""))
        .map_err(|e| anyhow!("'{key_table}' {e}"))?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let (_, state) = crate::rotate::read_state(root)?;
    let slots = state.slots.as_ref();
    let in_slot = |entry: &tables::KeyEntry| {
        slots.is_some_and(|s| entry.key_path.starts_with(&format!("{}/", s.dir)))
    };
    let mut slot_domains: Vec<String> = Vec::new();
    for entry in entries {
        if !only.is_empty() && !only.contains(&entry.domain) {
            continue;
        }
        if in_slot(&entry) {
            if !slot_domains.contains(&entry.domain) {
                slot_domains.push(entry.domain.clone());
            }
            continue;
        }
        match record_of(root, &entry) {
            Ok(value) => records.push(DnsRecord {
                name: format!("{}._domainkey.{}", entry.selector, entry.domain),
                kind: "TXT".into(),
                value,
            }),
            Err(e) => problems.push(format!("{e:#} (named in '{key_table}')")),
        }
    }
    if let Some(slots) = slots.filter(|_| !slot_domains.is_empty()) {
        // Each domain's two CNAMEs, published once; then the slots' keys.
        for d in &slot_domains {
            for slot in ["a", "b"] {
                records.push(DnsRecord {
                    name: format!("{}._domainkey.{d}", crate::rotate::slot_selector(slot)),
                    kind: "CNAME".into(),
                    value: crate::rotate::slot_record_name(&slots.host, slot),
                });
            }
        }
        for slot in ["a", "b"] {
            let path = crate::rotate::slot_key_path(&slots.dir, slot);
            if !root.exists(&path) {
                continue;
            }
            let entry = tables::KeyEntry {
                name: String::new(),
                domain: slots.host.clone(),
                selector: slot.into(),
                key_path: path,
            };
            match record_of(root, &entry) {
                Ok(value) => records.push(DnsRecord {
                    name: crate::rotate::slot_record_name(&slots.host, slot),
                    kind: "TXT".into(),
                    value,
                }),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
    }
    for d in only {
        let suffix = format!("._domainkey.{d}");
        let covered = records.iter().any(|r| r.name.ends_with(&suffix));
        if !covered && !problems.iter().any(|p| p.contains(d.as_str())) {
            problems.push(format!("no key is configured for '{d}'"));
        }
    }
    Ok(Records { records, problems })
}

/// The records that could be derived, and why the others could not.
pub struct Records {
    pub records: Vec<DnsRecord>,
    pub problems: Vec<String>,
}

fn record_of(root: &Root, entry: &tables::KeyEntry) -> Result<String> {
    let pem = root
        .read_opt(&entry.key_path)?
        .ok_or_else(|| anyhow!("the key '{}' does not exist", entry.key_path))?;
    let key = keys::parse_private(&pem)
        .with_context(|| format!("the key file '{}' cannot be used", entry.key_path))?;
    keys::record_for(&key)
}

/// Render records in one of the output forms.
pub fn render(records: &[DnsRecord], format: Format) -> String {
    match format {
        Format::Plain => records
            .iter()
            .map(|r| format!("{} {} {}\n", r.name, r.kind, r.value))
            .collect(),
        Format::Bind => records
            .iter()
            .map(|r| {
                if r.kind == "CNAME" {
                    return format!("{}. IN CNAME {}.\n", r.name, r.value);
                }
                let strings: Vec<String> = keys::split_strings(&r.value)
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect();
                format!("{}. IN {} ( {} )\n", r.name, r.kind, strings.join(" "))
            })
            .collect(),
        Format::Json => {
            let list: Vec<_> = records
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "type": r.kind,
                        "value": r.value,
                        "strings": keys::split_strings(&r.value),
                    })
                })
                .collect();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DnsRecord {
        DnsRecord {
            name: "key._domainkey.example.test".into(),
            kind: "TXT".into(),
            value: format!("v=DKIM1; k=rsa; p={}", "A".repeat(392)),
        }
    }

    #[test]
    fn bind_form_splits_into_255_byte_strings() {
        let text = render(&[record()], Format::Bind);
        assert!(text.starts_with("key._domainkey.example.test. IN TXT ( \""));
        let strings: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        assert_eq!(strings.len(), 2);
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(strings.concat(), record().value);
    }

    #[test]
    fn plain_form_is_one_unquoted_line() {
        let text = render(&[record()], Format::Plain);
        assert_eq!(text.lines().count(), 1);
        assert!(!text.contains('"'));
    }
}
