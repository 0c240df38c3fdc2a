#!/bin/bash
# Runs inside the throwaway test system, once per part below, each part on a
# fresh tree (run.sh reads the e2e-parts line). The .deb that scripts/package
# built, the docs' Ansible playbook and the cloud-init example come in
# through E2E_INPUTS, as /root/e2e/inputs/{*.deb,ansible/,cloud-init.yaml}.
# The harness's own copy of the binary is removed first: every dkim-setup
# run here is the packaged /usr/bin/dkim-setup.
#
#   deb        dpkg -i: it depends on nothing beyond libc, `dkim-setup
#              --version` works, the man page and the bash, zsh and fish
#              completions are in place (each the binary's own output) and
#              bash loads its completion; dpkg -r leaves none of its files.
#   ansible    docs/ansible/dkim-setup.yml against this system (connection
#              local), twice: the first PLAY RECAP shows changed > 0 (copy,
#              apt, the wizard), the second changed=0; the records file on
#              the "controller" names key._domainkey.example.test, and mail
#              is signed and verified against it.
#   cloudinit  the runcmd lines of docs/cloud-init.yaml, as cloud-init runs
#              them (the .deb where the example says an image may hold it):
#              the wizard's JSON says changed, the records file names
#              key._domainkey.example.com, and mail is signed and verified.
#
# Both PLAY RECAP lines are printed on stdout. The last stdout line is the
# part's summary; artifacts go to $OUT.
# e2e-parts: deb ansible cloudinit
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS
PART=${E2E_PART:-}
INPUTS=$E2E/inputs
BIN=/usr/bin/dkim-setup

# The one .deb among the inputs.
the_deb() {
    local debs=("$INPUTS"/*.deb)
    [[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || die "expected one .deb in $INPUTS, found: ${debs[*]}"
    echo "${debs[0]}"
}
# Only the packaged binary may answer to `dkim-setup`.
drop_harness_binary() {
    rm -f "$DKIM_SETUP"
    hash -r
}
# send_and_verify DOMAIN DNS_JSON MARKER: one mail by sendmail, one by SMTP,
# both signed and verified by dkimpy against DNS_JSON (`dns --format json`).
send_and_verify() {
    local domain=$1 dns=$2 marker=$3
    python3 "$E2E/sender.py" --domain "$domain" --rcpt "$RCPT" once sendmail "$marker-sendmail" \
        || die "sendmail submission failed"
    python3 "$E2E/sender.py" --domain "$domain" --rcpt "$RCPT" once smtp "$marker-smtp" \
        || die "SMTP submission failed"
    python3 "$E2E/verify.py" --mbox "/var/mail/$RCPT" --dns "$dns" --domain "$domain" \
        --selector "$SELECTOR" --timeout 30 "$marker-sendmail" "$marker-smtp" \
        || die "mail for $domain is not signed and verified (see verify: lines above)"
}

# --- deb: what the package installs ------------------------------------------
PACKAGED=(
    /usr/bin/dkim-setup
    /usr/share/man/man1/dkim-setup.1.gz
    /usr/share/bash-completion/completions/dkim-setup
    /usr/share/zsh/vendor-completions/_dkim-setup
    /usr/share/fish/vendor_completions.d/dkim-setup.fish
    /usr/share/doc/dkim-setup/README.md
    /usr/share/doc/dkim-setup/usage.md
)
part_deb() {
    local deb depends version
    deb=$(the_deb)
    drop_harness_binary
    dpkg-deb --info "$deb" >"$OUT/deb-info.txt"
    depends=$(dpkg-deb --field "$deb" Depends)
    version=$(dpkg-deb --field "$deb" Version)
    # libc6 only (cargo-deb leaves out libgcc-s1, which libc6 depends on).
    python3 - "$depends" <<'EOF' || die "the package depends on more than libc: '$depends'"
import re, sys
deps = [d.strip() for d in sys.argv[1].split(",") if d.strip()]
sys.exit(0 if deps and all(re.fullmatch(r"libc6( \(>= [0-9.]+\))?", d) for d in deps) else 1)
EOF
    log "Depends: $depends; Recommends: $(dpkg-deb --field "$deb" Recommends)"

    dpkg -i "$deb" >"$OUT/dpkg-i.txt" 2>&1 || { cat "$OUT/dpkg-i.txt"; die "dpkg -i failed"; }
    [[ $(command -v dkim-setup) == "$BIN" ]] || die "dkim-setup is not $BIN but '$(command -v dkim-setup)'"
    local shown
    shown=$(dkim-setup --version) || die "dkim-setup --version failed"
    [[ $shown == "dkim-setup ${version%%-*}" ]] || die "--version says '$shown', the package is $version"
    log "installed: $shown"

    local f
    for f in "${PACKAGED[@]}"; do
        [[ -f $f ]] || die "$f is not installed"
    done
    dpkg -L dkim-setup >"$OUT/dpkg-L.txt"
    gzip -t /usr/share/man/man1/dkim-setup.1.gz || die "the man page is not gzip"
    zcat /usr/share/man/man1/dkim-setup.1.gz | grep -q '^\.TH DKIM-SETUP 1 ' \
        || die "the man page has no .TH DKIM-SETUP 1 line"
    zcat /usr/share/man/man1/dkim-setup.1.gz | grep -q '^\.SS "dkim-setup wizard"' \
        || die "the man page does not document the wizard"
    dkim-setup completions bash | cmp -s - /usr/share/bash-completion/completions/dkim-setup \
        || die "the packaged bash completion differs from 'dkim-setup completions bash'"
    dkim-setup completions zsh | cmp -s - /usr/share/zsh/vendor-completions/_dkim-setup \
        || die "the packaged zsh completion differs from 'dkim-setup completions zsh'"
    dkim-setup completions fish | cmp -s - /usr/share/fish/vendor_completions.d/dkim-setup.fish \
        || die "the packaged fish completion differs from 'dkim-setup completions fish'"
    bash --norc -c 'source /usr/share/bash-completion/completions/dkim-setup && complete -p dkim-setup' \
        >"$OUT/complete-p.txt" || die "bash does not load the packaged completion"
    log "man page and completions in place; bash: $(cat "$OUT/complete-p.txt")"

    dpkg -r dkim-setup >"$OUT/dpkg-r.txt" 2>&1 || { cat "$OUT/dpkg-r.txt"; die "dpkg -r failed"; }
    for f in "${PACKAGED[@]}"; do
        [[ ! -e $f ]] || die "$f is still there after dpkg -r"
    done
    echo "e2e package/deb: Depends '$depends', $shown, man page and 3 completions" \
         "installed, removed cleanly ($((SECONDS - T_START)) s)"
}

# --- ansible: the docs' playbook, twice ---------------------------------------
# recap N: the host's line of the PLAY RECAP of run N.
recap() {
    sed -n '/^PLAY RECAP/,$p' "$OUT/ansible-$1.txt" | grep -m1 '^localhost ' | tr -s ' '
}
recap_count() { # recap_count N FIELD
    recap "$1" | grep -o "$2=[0-9]*" | cut -d= -f2
}
part_ansible() {
    local deb
    deb=$(the_deb)
    drop_harness_binary
    start_services
    # The host of the play is this system itself: connection local, as root
    # already (no sudo in the tree, so no become), the inventory's variables
    # as docs/ansible/inventory.ini gives them.
    cat >"$OUT/inventory.ini" <<EOF
[mail]
localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3 ansible_become=false domain=$DOMAIN
EOF
    local records=$OUT/dkim-records.json n
    for n in 1 2; do
        local t=$SECONDS rc=0
        ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
            ansible-playbook -i "$OUT/inventory.ini" "$INPUTS/ansible/dkim-setup.yml" \
            -e "dkim_setup_deb=$deb" -e "dkim_records_file=$records" \
            >"$OUT/ansible-$n.txt" 2>&1 || rc=$?
        ((rc == 0)) || { tail -n 60 "$OUT/ansible-$n.txt"; die "ansible-playbook run $n exited $rc"; }
        log "ansible-playbook run $n: ok in $((SECONDS - t)) s"
        echo "PLAY RECAP (run $n): $(recap "$n")"
    done
    [[ -n $(recap 1) && -n $(recap 2) ]] || die "no PLAY RECAP line for localhost"
    (($(recap_count 1 changed) > 0)) || die "the first run changed nothing: $(recap 1)"
    (($(recap_count 2 changed) == 0)) || { cat "$OUT/ansible-2.txt"; die "the second run changed something: $(recap 2)"; }
    (($(recap_count 1 failed) == 0 && $(recap_count 2 failed) == 0)) || die "a task failed"

    [[ $(dpkg-query -W -f='${Status}' dkim-setup 2>/dev/null) == "install ok installed" ]] \
        || die "the playbook did not install the dkim-setup package"
    [[ $(command -v dkim-setup) == "$BIN" ]] || die "dkim-setup is not $BIN"
    grep -q "key._domainkey.$DOMAIN" "$records" || { cat "$records"; die "$records does not name key._domainkey.$DOMAIN"; }
    # The records file: host -> the records `dns --format json` printed there.
    python3 - "$records" "$OUT/dns.json" <<'EOF' || die "the records file is not {host: [records]}"
import json, sys
data = json.load(open(sys.argv[1]))
assert list(data) == ["localhost"], data
json.dump(data["localhost"], open(sys.argv[2], "w"))
EOF
    send_and_verify "$DOMAIN" "$OUT/dns.json" ansible
    echo "e2e package/ansible: first run $(recap 1 | grep -o 'changed=[0-9]*'), second run" \
         "$(recap 2 | grep -o 'changed=[0-9]*'), records collected, mail signed+verified" \
         "($((SECONDS - T_START)) s)"
}

# --- cloudinit: the example's runcmd ------------------------------------------
part_cloudinit() {
    local deb
    deb=$(the_deb)
    drop_harness_binary
    start_services
    # Where the example lets an image hold the package, so nothing is fetched.
    mkdir -p /var/cache/dkim-setup
    cp "$deb" /var/cache/dkim-setup/dkim-setup.deb
    # runcmd as cloud-init writes it out: a string item is a line as it is,
    # a list item is an argv, shell-quoted. Postfix, from the example's
    # `packages`, is in the tree already.
    python3 - "$INPUTS/cloud-init.yaml" "$OUT/runcmd.sh" <<'EOF' || die "docs/cloud-init.yaml is not as expected"
import shlex, sys, yaml
text = open(sys.argv[1]).read()
assert text.startswith("#cloud-config\n"), "no #cloud-config first line"
doc = yaml.safe_load(text)
assert "postfix" in doc.get("packages", []), "postfix is not under packages"
lines = [c if isinstance(c, str) else shlex.join(c) for c in doc["runcmd"]]
assert any("dkim-setup wizard" in l for l in lines), "no wizard in runcmd"
with open(sys.argv[2], "w") as f:
    f.write("#!/bin/sh\n" + "\n".join(lines) + "\n")
EOF
    local rc=0 t=$SECONDS
    sh -ex "$OUT/runcmd.sh" >"$OUT/runcmd.out" 2>&1 || rc=$?
    ((rc == 0)) || { tail -n 60 "$OUT/runcmd.out"; die "the runcmd lines exited $rc"; }
    log "runcmd: ok in $((SECONDS - t)) s"
    [[ $(command -v dkim-setup) == "$BIN" ]] || die "dkim-setup is not $BIN"

    local domain
    domain=$(sed -n 's/.*dkim-setup wizard .*--domain \([^ ]*\).*/\1/p' "$OUT/runcmd.sh" | head -n1)
    [[ -n $domain ]] || die "no --domain in the wizard line"
    cp /var/log/dkim-setup.json "$OUT/wizard.json"
    python3 - /var/log/dkim-setup.json "$domain" <<'EOF' || die "the wizard's JSON is not that of a run that set up signing"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["changed"] is True, "changed is not true"
assert not doc["dry_run"]
names = [r["name"] for r in doc["dns_records"]]
assert f"key._domainkey.{sys.argv[2]}" in names, names
EOF
    grep -q "key._domainkey.$domain" /root/dkim-records.txt || die "/root/dkim-records.txt does not name key._domainkey.$domain"
    [[ $(postconf -h smtpd_milters) == *inet:127.0.0.1:8891* ]] || die "smtpd_milters: $(postconf -h smtpd_milters)"
    grep -q "^\*@$domain " /etc/opendkim/SigningTable || die "the SigningTable has no line for $domain"
    [[ -n $(opendkim_pids) ]] || die "opendkim does not run"
    dkim-setup dns --format json >"$OUT/dns.json"
    send_and_verify "$domain" "$OUT/dns.json" cloudinit
    echo "e2e package/cloudinit: runcmd installed the .deb, wizard changed=true for $domain," \
         "mail signed+verified ($((SECONDS - T_START)) s)"
}

case $PART in
    deb) part_deb ;;
    ansible) part_ansible ;;
    cloudinit) part_cloudinit ;;
    *) die "unknown part '$PART' (run.sh sets E2E_PART)" ;;
esac
