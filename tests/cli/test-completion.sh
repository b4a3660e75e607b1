#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrctl's bash completion without vmgrd: it registers for vmgrctl; it
# offers every command, sub-command and option that vmgrctl's own verb
# table has (read from client/vmgrctl.c, so neither can drift), with and
# without bash-completion's helpers loaded; and on a bus where vmgrd is not
# running, but could be started by D-Bus activation, names complete to
# nothing, at once, silently, and nothing is activated.
# Usage: test-completion.sh COMPLETION_FILE (VMGR_SOURCE_DIR: the source tree)
set -euo pipefail

completion=$(realpath "${1:?usage: test-completion.sh COMPLETION_FILE}")
src=${VMGR_SOURCE_DIR:-$(dirname "$completion")/../..}
table=$src/client/vmgrctl.c
tmp=$(mktemp -d)
bus_pid=
cleanup() {
        [ -z "$bus_pid" ] || kill "$bus_pid" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
checks=0
fail() {
        echo "FAIL: $*" >&2
        failures=$((failures + 1))
}
pass() {
        checks=$((checks + 1))
}

# complete_words [WORD]...: what completing the last WORD of "vmgrctl WORD..."
# offers, one a line, in a fresh bash that sourced the completion file (and
# bash-completion's own functions first when WITH_BASH_COMPLETION=1).
complete_words() {
        bash --norc --noprofile -c '
                [ "${WITH_BASH_COMPLETION:-0}" = 1 ] && source /usr/share/bash-completion/bash_completion
                source "$0"
                COMP_WORDS=(vmgrctl "$@")
                COMP_CWORD=$#
                COMP_LINE="${COMP_WORDS[*]}"
                COMP_POINT=${#COMP_LINE}
                _vmgrctl
                [ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"
        ' "$completion" "$@"
}

# expect_all LABEL OFFERED WANTED...: every WANTED is among the OFFERED lines.
expect_all() {
        local label=$1 offered=$2 w missing=""
        shift 2
        for w in "$@"; do
                grep -qxF -- "$w" <<<"$offered" || missing+=" $w"
        done
        if [ -n "$missing" ]; then
                fail "$label: missing$missing (offered: $(echo $offered))"
        else
                pass
        fi
}

# --- registration ---------------------------------------------------------

out=$(bash --norc --noprofile -c 'source "$0" && complete -p vmgrctl' "$completion" 2>&1) || true
if [ "$out" = "complete -F _vmgrctl vmgrctl" ]; then pass; else fail "complete -p vmgrctl says: $out"; fi

# --- commands and options from vmgrctl's verb table -------------------------

# "family name|- flags" per table entry, e.g. "group create VERB_OPT_SPEC|VERB_OPT_VM|...".
mapfile -t entries < <(grep -E '^\s*\{ "[a-z]+", (NULL|"[a-z]+"), [0-9]+, [0-9A-Z_]+, ' "$table" |
        sed -E 's/^\s*\{ "([a-z]+)", (NULL|"([a-z]+)"), [0-9]+, [0-9A-Z_]+, ([^,]*),.*/\1 \3 \4/; s/  / - /; s/ //3g')
[ ${#entries[@]} -ge 30 ] || fail "found only ${#entries[@]} verbs in $table"
# VERB_OPT_X -> the option's name, from verb_option_names[].
declare -A option_name=()
while read -r flag name; do
        option_name[$flag]=$name
done < <(sed -n '/verb_option_names\[\] = {/,/^};/p' "$table" | sed -nE 's/.*\{ (VERB_OPT_[A-Z_]+), "([^"]+)" \}.*/\1 \2/p')
[ ${#option_name[@]} -ge 10 ] || fail "found only ${#option_name[@]} options in verb_option_names[]"

for with in 0 1; do
        export WITH_BASH_COMPLETION=$with
        label="(bash-completion loaded: $with)"
        families=$(printf '%s\n' "${entries[@]}" | cut -d' ' -f1 | sort -u)
        offered=$(complete_words '')
        expect_all "commands $label" "$offered" $families
        expect_all "'gr' $label" "$(complete_words gr)" group
        [ "$(complete_words gr)" = group ] && pass || fail "'gr' offers more than group $label"

        for e in "${entries[@]}"; do
                read -r family name flags <<<"$e"
                words=("$family")
                if [ "$name" != - ]; then
                        # The sub-command is offered after its family.
                        expect_all "'$family' sub-commands $label" "$(complete_words "$family" '')" "$name"
                        words+=("$name")
                fi
                wanted=(--json --quiet --help --version)
                for f in ${flags//|/ }; do
                        [ "$f" = 0 ] && continue
                        [ "$f" = VERB_OPT_PRINT_SPEC ] && continue # hidden from --help; offered all the same
                        wanted+=("${option_name[$f]:?unknown flag $f}")
                done
                expect_all "'${words[*]} -' options $label" "$(complete_words "${words[@]}" -)" "${wanted[@]}"
        done
done
unset WITH_BASH_COMPLETION

# Arguments that are files, directories, users.
mkdir "$tmp/d" && touch "$tmp/d/spec.json"
expect_all "--spec completes files" "$(complete_words group create g --spec "$tmp/d/sp")" "$tmp/d/spec.json"
expect_all "group collect's DIR completes directories" "$(complete_words group collect g "$tmp/")" "$tmp/d"
expect_all "addr --user completes users" "$(complete_words addr g --user roo)" root
out=$(complete_words exec g a -- '')
[ -z "$out" ] && pass || fail "after exec's -- nothing is offered, got: $out"
# An option's argument is not taken for a command word.
expect_all "options between words" "$(complete_words --timeout 5 vm '')" shutdown

# --- no vmgrd: nothing, quickly, silently, nothing activated -----------------

# No bus at all.
export DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/no-such-bus
start=$(date +%s%N)
out=$(complete_words group show '' 2>"$tmp/err")
ms=$((($(date +%s%N) - start) / 1000000))
[ -z "$out" ] && pass || fail "no bus: group names offered: $out"
[ ! -s "$tmp/err" ] && pass || fail "no bus: completion printed: $(cat "$tmp/err")"
[ "$ms" -lt 2000 ] && pass || fail "no bus: completion took $ms ms"

# A bus where org.vmgr1 is activatable but not running: the completion must
# not start it (vmgrctl would), and offers nothing.
mkdir "$tmp/services"
cat >"$tmp/activated.sh" <<EOS
#!/bin/sh
touch "$tmp/activated"
EOS
chmod +x "$tmp/activated.sh"
printf '[D-BUS Service]\nName=org.vmgr1\nExec=%s\n' "$tmp/activated.sh" >"$tmp/services/org.vmgr1.service"
cat >"$tmp/bus.conf" <<EOS
<busconfig>
  <type>session</type>
  <listen>unix:path=$tmp/bus</listen>
  <servicedir>$tmp/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOS
dbus-daemon --config-file="$tmp/bus.conf" --nofork --nopidfile --nosyslog 2>"$tmp/bus.log" &
bus_pid=$!
for _ in $(seq 100); do [ -S "$tmp/bus" ] && break; sleep 0.05; done
export DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/bus
for words in "group show ''" "vm show g ''" "snapshot delete ''"; do
        eval "set -- $words"
        start=$(date +%s%N)
        out=$(complete_words "$@" 2>"$tmp/err")
        ms=$((($(date +%s%N) - start) / 1000000))
        [ -z "$out" ] && pass || fail "bus without vmgrd, '$words': offered: $out"
        [ ! -s "$tmp/err" ] && pass || fail "bus without vmgrd, '$words': printed: $(cat "$tmp/err")"
        [ "$ms" -lt 2000 ] && pass || fail "bus without vmgrd, '$words': took $ms ms"
done
sleep 0.2
[ ! -e "$tmp/activated" ] && pass || fail "completion activated org.vmgr1"
# The service file works: a call that allows activation does start it.
busctl --user --timeout=2 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups >/dev/null 2>&1 || true
[ -e "$tmp/activated" ] && pass || fail "the test's activatable org.vmgr1 was not activatable; the check above proves nothing"

echo "$checks checks passed, $failures failed"
[ "$failures" -eq 0 ]
