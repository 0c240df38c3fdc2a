//! Packages: which are missing, and the commands that install them.
//!
//! Debian and Ubuntu ship opendkim in their main archive: one
//! `apt-get install`. On RHEL and its rebuilds opendkim comes from EPEL, and
//! EPEL packages may need the CodeReady Builder repository (`crb` on EL9,
//! `powertools` on EL8, Oracle's `olN_codeready_builder`), so those are
//! enabled first when a repository file does not already enable them.
//! Fedora carries opendkim itself. opendkim does not pull in
//! opendkim-tools, so both are named. Installed packages are never
//! reinstalled; nothing here runs a changing command, it only plans them.

use crate::distro::{Distro, Family, PackageDb, Profile};
use crate::plan::{Purpose, Status, Step};
use crate::setup::Ctx;
use crate::system::runner::argv;
use anyhow::Result;

/// Which of the profile's packages are missing from the tree.
pub fn missing(ctx: &Ctx, profile: &Profile) -> Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    for pkg in profile.packages {
        if !installed(ctx, profile, pkg)? {
            missing.push(*pkg);
        }
    }
    Ok(missing)
}

/// True when `pkg` is installed in the tree.
pub fn installed(ctx: &Ctx, profile: &Profile, pkg: &str) -> Result<bool> {
    Ok(match profile.package_db {
        PackageDb::Dpkg => {
            let status = ctx
                .root
                .read_opt("/var/lib/dpkg/status")?
                .unwrap_or_default();
            dpkg_installed(&status, pkg)
        }
        PackageDb::Rpm => {
            let base = ctx.root.base().display().to_string();
            let mut words = vec!["rpm"];
            if !ctx.root.is_live() {
                words.extend(["--root", base.as_str()]);
            }
            words.extend(["-q", pkg]);
            ctx.runner.run(&argv(&words))?.success()
        }
    })
}

/// True when dpkg's status file says `pkg` is installed.
pub fn dpkg_installed(status: &str, pkg: &str) -> bool {
    status.split("\n\n").any(|para| {
        let mut name = false;
        let mut installed = false;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = v.trim() == pkg;
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            }
        }
        name && installed
    })
}

/// The package manager command: dnf, or yum where the tree has no dnf.
fn rpm_installer(ctx: &Ctx) -> &'static str {
    if ctx.root.exists("/usr/bin/dnf") || !ctx.root.exists("/usr/bin/yum") {
        "dnf"
    } else {
        "yum"
    }
}

/// The argv that installs `packages` on this family.
pub fn install_argv(ctx: &Ctx, distro: &Distro, packages: &[&str]) -> Vec<String> {
    let mut words: Vec<&str> = match distro.family {
        Family::Debian => vec!["apt-get", "install", "-y"],
        Family::Rhel => vec![rpm_installer(ctx), "install", "-y"],
    };
    words.extend(packages);
    ctx.target_argv(&words)
}

/// Every command that installs the missing packages, repositories first.
pub fn install_steps(ctx: &Ctx, distro: &Distro, missing: &[&str]) -> Result<Vec<Step>> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let status = if ctx.dry_run {
        Status::Planned
    } else {
        Status::Done
    };
    let step = |argv: Vec<String>| Step::Command {
        argv,
        purpose: Purpose::Install,
        status,
        reason: None,
    };
    let mut steps = Vec::new();
    // Only opendkim's packages come from EPEL; semanage's is in the base.
    let from_epel = missing.iter().any(|p| p.starts_with("opendkim"));
    if distro.family == Family::Rhel && !distro.is_fedora_like() && from_epel {
        let repos = enabled_repos(ctx)?;
        let installer = rpm_installer(ctx);
        // RHEL's id carries the release and architecture:
        // codeready-builder-for-rhel-9-x86_64-rpms.
        if let Some(crb) = builder_repo(distro)
            && !repos
                .iter()
                .any(|r| r == crb || (crb == "codeready-builder" && r.starts_with(crb)))
        {
            if distro.id == "rhel" {
                let arch = nix::sys::utsname::uname()
                    .map(|u| u.machine().to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "x86_64".into());
                let repo = format!("codeready-builder-for-rhel-{}-{arch}-rpms", distro.major());
                steps.push(step(ctx.target_argv(&[
                    "subscription-manager",
                    "repos",
                    "--enable",
                    &repo,
                ])));
            } else {
                let profile = distro.profile();
                if installer == "dnf" && !installed(ctx, profile, "dnf-plugins-core")? {
                    steps.push(step(ctx.target_argv(&[
                        installer,
                        "install",
                        "-y",
                        "dnf-plugins-core",
                    ])));
                }
                let words = if installer == "dnf" {
                    vec!["dnf", "config-manager", "--set-enabled", crb]
                } else {
                    vec!["yum-config-manager", "--enable", crb]
                };
                steps.push(step(ctx.target_argv(&words)));
            }
        }
        if !repos
            .iter()
            .any(|r| r == "epel" || r.starts_with("ol") && r.ends_with("_developer_EPEL"))
        {
            let release = epel_release(distro)?;
            steps.push(step(
                ctx.target_argv(&[installer, "install", "-y", &release]),
            ));
        }
    }
    steps.push(step(install_argv(ctx, distro, missing)));
    Ok(steps)
}

/// The CodeReady Builder repository id of an EL release.
fn builder_repo(distro: &Distro) -> Option<&'static str> {
    match (distro.id.as_str(), distro.major()) {
        ("ol", 8) => Some("ol8_codeready_builder"),
        ("ol", 9) => Some("ol9_codeready_builder"),
        ("rhel", _) => Some("codeready-builder"),
        (_, 8) => Some("powertools"),
        (_, m) if m >= 9 => Some("crb"),
        _ => None,
    }
}

/// The package that enables EPEL on an EL release.
fn epel_release(distro: &Distro) -> Result<String> {
    match distro.id.as_str() {
        "ol" => Ok(format!("oracle-epel-release-el{}", distro.major())),
        // RHEL has no epel-release in its own repositories: the package
        // comes from the EPEL project, as its install guide says.
        "rhel" => Ok(format!(
            "https://dl.fedoraproject.org/pub/epel/epel-release-latest-{}.noarch.rpm",
            distro.major()
        )),
        _ => Ok("epel-release".to_string()),
    }
}

/// Repository ids enabled by the tree's `/etc/yum.repos.d/*.repo` files.
pub fn enabled_repos(ctx: &Ctx) -> Result<Vec<String>> {
    let dir = ctx.root.path("/etc/yum.repos.d");
    let mut enabled = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(enabled);
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "repo"))
    {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        enabled.extend(repos_enabled_in(&text));
    }
    Ok(enabled)
}

/// The sections of a `.repo` file with `enabled=1` (dnf's default is 1).
pub fn repos_enabled_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some((id, true)) = current.take() {
                out.push(id);
            }
            current = Some((name.trim().to_string(), true));
        } else if let Some((key, value)) = line.split_once('=')
            && key.trim() == "enabled"
            && let Some((_, on)) = current.as_mut()
        {
            *on = matches!(value.trim(), "1" | "true" | "yes" | "True");
        }
    }
    if let Some((id, true)) = current {
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_is_read_per_package() {
        let status = "Package: opendkim\nStatus: install ok installed\nVersion: 2\n\n\
                      Package: opendkim-tools\nStatus: deinstall ok config-files\n";
        assert!(dpkg_installed(status, "opendkim"));
        assert!(!dpkg_installed(status, "opendkim-tools"));
        assert!(!dpkg_installed(status, "postfix"));
    }

    #[test]
    fn repo_files_are_read_per_section() {
        let text = "[baseos]\nname=BaseOS\nenabled=1\n\n[crb]\nname=CRB\nenabled=0\n\n\
                    [epel]\nname=EPEL\nbaseurl=x\n";
        assert_eq!(repos_enabled_in(text), vec!["baseos", "epel"]);
    }

    fn distro(id: &str, version: &str) -> Distro {
        crate::distro::detect_text(&format!(
            "ID={id}\nID_LIKE=\"rhel fedora\"\nVERSION_ID={version}\n"
        ))
        .unwrap()
    }

    #[test]
    fn builder_repositories_per_release() {
        assert_eq!(builder_repo(&distro("almalinux", "9.4")), Some("crb"));
        assert_eq!(builder_repo(&distro("rocky", "8.10")), Some("powertools"));
        assert_eq!(builder_repo(&distro("centos", "9")), Some("crb"));
        assert_eq!(
            builder_repo(&distro("ol", "9.4")),
            Some("ol9_codeready_builder")
        );
        assert_eq!(
            epel_release(&distro("ol", "9.4")).unwrap(),
            "oracle-epel-release-el9"
        );
        assert_eq!(
            epel_release(&distro("rhel", "9.4")).unwrap(),
            "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm"
        );
    }

    #[test]
    fn fedora_and_its_derivatives_need_no_epel_but_el_rebuilds_do() {
        let text = |id: &str, like: &str| format!("ID={id}\nID_LIKE=\"{like}\"\nVERSION_ID=40\n");
        let like = |id: &str, like: &str| crate::distro::detect_text(&text(id, like)).unwrap();
        assert!(like("fedora", "").is_fedora_like());
        assert!(like("nobara", "fedora").is_fedora_like());
        assert!(!like("almalinux", "rhel centos fedora").is_fedora_like());
        assert!(!like("rocky", "rhel centos fedora").is_fedora_like());
        assert!(!like("ol", "fedora").is_fedora_like());
        assert!(!like("rhel", "fedora").is_fedora_like());
        assert!(!like("centos", "rhel fedora").is_fedora_like());
    }
}
