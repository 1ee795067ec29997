#!/usr/bin/env bash
# Mutation testing: does every small change to a module's code make one of its tests fail?
# Not part of .ci/run (it takes tens of minutes); see docs/testing.md for the last results.
#
#   scripts/mutation.sh [MODULE ...]      e.g. scripts/mutation.sh src/lacus/core/reaping.py
#   LACUS_MUTATION_FUNCTIONS="_safe due" scripts/mutation.sh src/lacus/core/reaping.py
#                                         only the mutants of these functions (faster)
#
# Without arguments: the deletion path (reaping, guard, locks) and the verified copies. Each
# module is mutated by mutmut in its own scratch copy of this work tree (src/ itself is never
# touched) and judged by the tests that exercise it (TESTS below): on SQLite only, unless the
# module exists for PostgreSQL (CATALOGS), and without test_guards.py's free-running race
# (minutes per mutant; its two fixed-order twins catch what it catches). A slow suite makes a
# slow run: on 2 idle cores verified.py takes ~7 min. Results stay in $LACUS_MUTATION_DIR (default
# /tmp/lacus-mutation)/<module>/; there, `../../path/to/.venv/bin/mutmut show NAME` prints a
# mutant's diff and `mutmut results` lists the survivors again. Needs the test extra installed
# (make install-test) and the services the chosen tests use (make services).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mutmut=$root/.venv/bin/mutmut
out=${LACUS_MUTATION_DIR:-/tmp/lacus-mutation}

# module → the tests that exercise it, and the catalogs they run on (sqlite, or both).
declare -A TESTS=(
  [src/lacus/core/reaping.py]="tests/test_reaper.py tests/test_guards.py"
  [src/lacus/core/guard.py]="tests/test_guards.py"
  [src/lacus/core/locks.py]="tests/test_rule_engine.py tests/test_transfer_engine.py tests/test_guards.py tests/test_reaper.py"
  [src/lacus/storage/verified.py]="tests/storage/test_verified.py tests/storage/test_stream_copy.py tests/storage/test_posix_copy.py"
  [src/lacus/core/embargo.py]="tests/test_embargo.py tests/test_embargo_matrix.py"
  [src/lacus/core/visibility.py]="tests/test_embargo.py tests/test_embargo_matrix.py"
  [src/lacus/service/token_scopes.py]="tests/test_oidc_wlcg.py"
  [src/lacus/service/permissions.py]="tests/test_permissions.py tests/test_oidc_wlcg.py"
  # the integrity code: without test_integrity_drill.py's 2,000-file drill (a minute per mutant)
  [src/lacus/core/integrity.py]="tests/test_integrity.py tests/test_integrity_cli.py tests/test_integrity_rucio.py tests/test_integrity_drill.py::test_an_audit_during_uploads_and_deletions_reports_nothing"
  [src/lacus/core/audit_compare.py]="tests/test_audit_compare.py tests/test_integrity.py tests/test_integrity_drill.py::test_an_audit_during_uploads_and_deletions_reports_nothing"
  [src/lacus/core/audits.py]="tests/test_audit_compare.py tests/test_integrity.py tests/test_integrity_cli.py tests/test_integrity_drill.py::test_an_audit_during_uploads_and_deletions_reports_nothing"
)
declare -A CATALOGS=(
  [src/lacus/core/guard.py]=both  # advisory locks: PostgreSQL only
)
for extra in tests/test_mutants_*.py; do  # tests written to kill a module's mutants
  [[ -e $extra ]] || continue
  module=$(sed -n 's/^MUTATED = "\(.*\)"$/\1/p' "$extra")
  if [[ -n $module && -n ${TESTS[$module]:-} ]]; then
    TESTS[$module]+=" $extra"
  fi
done

if (($# == 0)); then
  set -- src/lacus/core/reaping.py src/lacus/core/guard.py src/lacus/core/locks.py \
    src/lacus/storage/verified.py
fi
[[ -x $mutmut ]] || { echo "mutmut is missing: make install-test" >&2; exit 2; }
for module in "$@"; do
  [[ -n ${TESTS[$module]:-} ]] || { echo "$module: no tests known; add them to TESTS in $0" >&2; exit 2; }
done

mkdir -p "$out"
summary=()
for module in "$@"; do
  name=$(basename "$module" .py)
  work=$out/$name
  rm -rf "$work"
  mkdir -p "$work"
  # A snapshot of the work tree: what is being edited now is what gets mutated (docs/ too:
  # some tests read it, e.g. test_permissions.py compares docs/permissions.md with the table).
  tar -C "$root" --exclude=__pycache__ -cf - src tests docs pyproject.toml | tar -C "$work" -xf -
  selection=$(printf '    %s\n' ${TESTS[$module]})
  deselect="not racing"
  if [[ ${CATALOGS[$module]:-sqlite} == sqlite ]]; then
    deselect+=" and not postgresql"
  fi
  cat >"$work/setup.cfg" <<EOF
[mutmut]
source_paths = src
only_mutate = $module
also_copy =
    docs
pytest_add_cli_args_test_selection =
$selection
pytest_add_cli_args =
    -p
    no:cacheprovider
    -k
    $deselect
EOF
  dotted=$(sed 's|^src/||; s|\.py$||; s|/|.|g' <<<"$module")
  only=()
  for function in ${LACUS_MUTATION_FUNCTIONS:-}; do
    only+=("$dotted.x_${function}__mutmut_*")
  done
  echo "== $module: $(wc -w <<<"${TESTS[$module]}") test file(s), ${CATALOGS[$module]:-sqlite}" \
    "${LACUS_MUTATION_FUNCTIONS:+(only ${LACUS_MUTATION_FUNCTIONS})}"
  started=$SECONDS
  # PYTHONPATH would put src/ of this tree ahead of the mutated copy; mutmut finds mutants/src.
  (cd "$work" && env -u PYTHONPATH PATH="$root/.venv/bin:$PATH" "$mutmut" run "${only[@]}") \
    >"$work/run.log" 2>&1 || { tail -30 "$work/run.log"; echo "$module: mutmut failed" >&2; exit 1; }
  (cd "$work" && "$mutmut" results --all true) >"$work/results.txt" 2>&1 || true
  killed=$(grep -c ': killed$' "$work/results.txt" || true)
  survived=$(grep -c ': survived$' "$work/results.txt" || true)
  other=$(grep -v -e ': killed$' -e ': survived$' -e ': not checked$' "$work/results.txt" |
    grep -c . || true)
  line="$module: $killed killed, $survived survived, $other other (timeout, no tests...), $((SECONDS - started)) s"
  echo "$line"
  grep ': survived$' "$work/results.txt" | sed 's/^/    /' || true
  summary+=("$line")
done
echo
printf '%s\n' "${summary[@]}"
