#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The man pages: each built page renders without a warning from man/groff
# and has the sections a reader looks for; every installed program has a
# page; and the pages cannot drift from the code: every command and option
# the programs' --help and option tables show, every spec key lib/spec.c
# accepts, every config key vmgrd and vmgr-netadm accept and every D-Bus
# member vmgrd's introspection data lists appears in its page, set in bold
# (*term* in scdoc) where it is explained. Each kind of check is first
# shown to fail on a page with one term taken out, so that it cannot pass
# by matching nothing.
set -euo pipefail

src=${VMGR_SOURCE_DIR:?}
build=${VMGR_BUILD_DIR:?}
mandir=${VMGR_MAN_DIR:?}
introspect=${VMGR_INTROSPECT:?}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
checks=0
fail() {
        echo "FAIL: $*" >&2
        failures=$((failures + 1))
}
pass() {
        checks=$((checks + 1))
}

# --- rendering ---------------------------------------------------------------

pages=("$src"/man/*.scd)
[ ${#pages[@]} -ge 10 ] || fail "expected at least 10 page sources in man/, found ${#pages[@]}"
for scd in "${pages[@]}"; do
        name=$(basename "$scd" .scd)
        page=$mandir/$name
        section=${name##*.}
        if [ ! -f "$page" ]; then
                fail "$name: not built ($page missing)"
                continue
        fi
        err=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >"$tmp/out") || {
                fail "$name: man failed: $err"
                continue
        }
        if [ -n "$err" ]; then
                fail "$name: man --warnings says: $err"
        else
                pass
        fi
        grep -q "^${name%.*}(${section})" "$scd" || fail "$name: the page's title is not ${name%.*}($section)"
        required=(NAME SYNOPSIS DESCRIPTION EXAMPLES FILES "SEE ALSO")
        case $section in
        1 | 8) required+=(OPTIONS "EXIT STATUS" ENVIRONMENT) ;;
        esac
        for s in "${required[@]}"; do
                if grep -q "^$s\$" "$tmp/out"; then
                        pass
                else
                        fail "$name: no $s section"
                fi
        done
        # Every vmgr page it refers to exists.
        for ref in $(grep -oE '\*(vmgr[a-z.-]*|org\.vmgr1)\*\([0-9]\)' "$scd" | tr -d '*' | sort -u); do
                target=${ref%(*}.${ref: -2:1}
                [ -f "$src/man/$target.scd" ] || fail "$name: refers to $ref, which has no page"
        done
done

# --- every installed program has a page --------------------------------------

programs=$(meson introspect "$build" --installed |
        python3 -c 'import json, sys, os
for dest in json.load(sys.stdin).values():
    if "/bin/" in dest or "/libexec/" in dest:
        print(os.path.basename(dest))')
[ -n "$programs" ] || fail "meson introspect --installed listed no program"
for p in $programs; do
        if ls "$src/man/$p".[18].scd >/dev/null 2>&1; then
                pass
        else
                fail "installed program $p has no page in man/"
        fi
done

# --- coverage ----------------------------------------------------------------

# missing_terms FILE TERM...: prints each TERM not set in bold (*TERM*) in FILE.
missing_terms() {
        local file=$1 t
        shift
        for t in "$@"; do
                grep -qF -- "*$t*" "$file" || printf '%s\n' "$t"
        done
}

# require LABEL PAGE TERM...: every TERM is in bold in man/PAGE.scd; and,
# once per LABEL, the check is seen to fail on a copy without the first TERM.
require() {
        local label=$1 page=$2 missing
        shift 2
        if [ $# -eq 0 ]; then
                fail "$label: found no terms to look for (the extraction from the code broke)"
                return
        fi
        missing=$(missing_terms "$src/man/$page.scd" "$@")
        if [ -n "$missing" ]; then
                fail "$label: not in $page: $(echo $missing)"
        else
                pass
        fi
        # Without the first term (every bold use of it), the check must see it.
        sed "s/\*$(printf '%s' "$1" | sed 's/[][\.*^$/]/\\&/g')\*/X/g" "$src/man/$page.scd" >"$tmp/cut.scd"
        missing=$(missing_terms "$tmp/cut.scd" "$@")
        if [ "$missing" = "$1" ]; then
                pass
        else
                fail "$label: the check did not notice '$1' taken out of $page (said: '$missing')"
        fi
}

# Options in help text on stdin: every --long and -x token.
help_options() {
        grep -oE '(^|[][ ,|])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b' | sed 's/^[][ ,|]//' | sort -u
}
# Long options in a C getopt table: { "name", ..._argument, ...
c_long_options() {
        grep -oE '\{ "[a-z][a-z0-9-]*", (no|required|optional)_argument' "$1" | sed 's/{ "\([^"]*\)".*/--\1/' | sort -u
}

vmgrctl=$build/client/vmgrctl
vmgrd=$build/daemon/vmgrd

# vmgrctl: its commands from the verb table and the help's command lines,
# each the head of its own entry ("*group create* ..."); its options.
mapfile -t verbs < <(
        grep -oE '^\s*\{ "[a-z]+", (NULL|"[a-z]+"),' "$src/client/vmgrctl.c" |
                sed -E 's/^\s*\{ "([a-z]+)", (NULL|"([a-z]+)"),/\1 \3/; s/ $//'
        "$vmgrctl" --help | sed -n '/^Options:/q; s/^  \([a-z][a-z]*\)\( [a-z][a-z]*\)\{0,1\}\( .*\)\{0,1\}$/\1\2/p' |
                grep -v '^\(addr\|enter\|exec\|forward\|unforward\|cp\|serve\) [a-z]' || true
)
mapfile -t verbs < <(printf '%s\n' "${verbs[@]}" | sort -u)
[ ${#verbs[@]} -ge 30 ] || fail "vmgrctl: found only ${#verbs[@]} commands (${verbs[*]})"
# A command is documented where its entry starts: a line "*VERB* ...".
missing=""
for v in "${verbs[@]}"; do
        grep -q "^\*$v\*" "$src/man/vmgrctl.1.scd" || missing+=" '$v'"
done
if [ -n "$missing" ]; then fail "vmgrctl commands without an entry in vmgrctl(1):$missing"; else pass; fi
grep -v '^\*group create\*' "$src/man/vmgrctl.1.scd" >"$tmp/cut.scd"
grep -q '^\*group create\*' "$tmp/cut.scd" && fail "the command check did not notice 'group create' taken out" || pass

mapfile -t opts < <({ "$vmgrctl" --help | help_options; c_long_options "$src/client/vmgrctl.c"; } | sort -u)
require "vmgrctl options" vmgrctl.1 "${opts[@]}"

mapfile -t opts < <({ "$vmgrd" --help | help_options; c_long_options "$src/daemon/vmgrd.c"; } | sort -u)
require "vmgrd options" vmgrd.8 "${opts[@]}"

mapfile -t opts < <({ "$build/netadm/vmgr-netadm" --help | help_options; c_long_options "$src/netadm/netadm.c"; } | sort -u)
require "vmgr-netadm options" vmgr-netadm.8 "${opts[@]}"

mapfile -t opts < <({ "$build/agent/vmgr-agent" --help | help_options; c_long_options "$src/agent/vmgr-agent.c"; } | sort -u)
require "vmgr-agent options" vmgr-agent.8 "${opts[@]}"

for script in vmgr-mkguest vmgr-mkimage; do
        # Options from the help, and every "--opt)" the script's parser handles.
        mapfile -t opts < <({
                bash "$build/guest/$script" --help | help_options
                grep -oE '^\s+(-h \| )?--[a-z][a-z-]*\)' "$src/guest/$script" | grep -oE -- '--[a-z][a-z-]*'
        } | sort -u)
        require "$script options" "$script.1" "${opts[@]}"
done

# Spec keys: every key lib/spec.c compares against, nested ones included.
mapfile -t keys < <(grep -oE 'streq\(key, "[a-z0-9_]+"\)' "$src/lib/spec.c" | sed 's/.*"\(.*\)".*/\1/' | sort -u)
[ ${#keys[@]} -ge 30 ] || fail "spec keys: found only ${#keys[@]} in lib/spec.c"
require "spec keys" vmgr-spec.5 "${keys[@]}"

# vmgrd's config keys (config_assign in daemon/manager.c).
mapfile -t keys < <(sed -n '/^static int config_assign(/,/^}/p' "$src/daemon/manager.c" |
        grep -oE 'streq\(key, "[a-z0-9_]+"\)' | sed 's/.*"\(.*\)".*/\1/' | sort -u)
[ ${#keys[@]} -ge 9 ] || fail "vmgrd config keys: found only ${#keys[@]} in daemon/manager.c"
require "vmgrd config keys" vmgrd.conf.5 "${keys[@]}"

# vmgr-netadm's policy keys (policy_assign in netadm/policy.c).
mapfile -t keys < <(sed -n '/^static int policy_assign(/,/^}/p' "$src/netadm/policy.c" |
        grep -oE 'streq\(key, "[a-z0-9_]+"\)' | sed 's/.*"\(.*\)".*/\1/' | sort -u)
[ ${#keys[@]} -ge 5 ] || fail "netadm policy keys: found only ${#keys[@]} in netadm/policy.c"
require "vmgr-netadm policy keys" vmgr-netadm.conf.5 "${keys[@]}"

# D-Bus: every method, property and signal of vmgrd's own tables.
for iface in Manager Group VM Process; do
        mapfile -t members < <("$introspect" "org.vmgr1.$iface" |
                grep -oE '<(method|property|signal) name="[A-Za-z0-9]+"' | sed 's/.*name="\(.*\)"/\1/' | sort -u)
        require "org.vmgr1.$iface members" org.vmgr1.5 "${members[@]}"
        grep -q "^# org.vmgr1.$iface\$" "$src/man/org.vmgr1.5.scd" || fail "org.vmgr1(5) has no section for $iface"
done

echo "$checks checks passed, $failures failed"
[ "$failures" -eq 0 ]
