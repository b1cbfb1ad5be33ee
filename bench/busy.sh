#!/usr/bin/env bash
# Run a command beside CPU burners, as on a shared machine that does other work:
#     bench/busy.sh [-n BURNERS] COMMAND [ARGS...]      (default: 2 burners, one per core here)
# (BURNER_PYTHON: the Python the burners run, default python3).
# Each burner is a Python loop that spins (`while True: pass`) as long as this script lives: started
# before the command, killed when the command ends, fails or is interrupted (the EXIT trap), and
# ending by itself if the script is killed outright (it watches its parent). The command's exit
# status is the script's. `make test-busy` runs `make test` this way: the suite's verdicts must not
# depend on the load.
set -euo pipefail
burners=2
if [[ "${1:-}" == "-n" ]]; then burners="$2"; shift 2; fi
[[ $# -gt 0 ]] || { echo "usage: bench/busy.sh [-n BURNERS] COMMAND [ARGS...]" >&2; exit 2; }
python="${BURNER_PYTHON:-python3}"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq "$burners"); do
    "$python" -c $'import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass' &
    pids+=("$!")
done
sleep 0.5
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "busy.sh: a CPU burner ($python) did not start" >&2; exit 1; }
done
echo "busy.sh: $burners CPU burner(s) running (pids ${pids[*]}) beside: $*" >&2
status=0
"$@" || status=$?
echo "busy.sh: exit status $status; stopping the burners" >&2
exit "$status"
