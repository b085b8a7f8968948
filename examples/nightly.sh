#!/usr/bin/env bash
# Nightly anomaly check, for cron or a CI job: encode today's file exactly like the reference
# data, score it against the reference threshold, write the anomalies as CSV, and fail loudly
# when too many rows are anomalous (a bad night) or when the data itself has moved away from the
# training data (a stale model: a new unit, host or product; naming the columns that moved).
#
#   examples/nightly.sh TODAY REFERENCE.features.h5 MODEL.h5 REFERENCE.scores.h5 OUTDIR [SHARE] [DRIFT]
#
#   TODAY                 today's raw file (CSV/TSV, .gz ok, Parquet, ...), same columns as the reference
#   REFERENCE.features.h5 the features file the model was trained on (extract --like uses its encoding,
#                         its handling of gaps and its id columns: make it with e.g.
#                         deepuad run ref.csv -o ref --missing fill --id-column timestamp,hostname)
#   MODEL.h5              the model (deepuad train)
#   REFERENCE.scores.h5   the reference data's scores: its threshold is the line today is held to
#   OUTDIR                where <today>.features.h5, <today>.extract.json (rows, gaps filled or rows dropped,
#                         unseen categories), <today>.scores.h5 and <today>.anomalies.csv (the flagged rows,
#                         with their id columns and input row numbers) go
#   SHARE                 alert when more than this share of today's rows is anomalous [0.05]
#   DRIFT                 call the model stale when a column's PSI against the training data passes this [0.25]
#
# Exit codes: 0 at most SHARE of the rows are anomalous and no column drifted; 8 a bad night: more
# than SHARE are, while the data looks like the training data; 9 a stale model: columns drifted
# beyond DRIFT (checked first: then the flagged share means little). The scores and the anomalies
# CSV are written all the same. Any other code is deepuad's own (README, "Exit codes"): 3 a
# missing or corrupt input, 4 unusable data, 5 today's file does not fit the reference, ...
#
# crontab:  15 2 * * *  examples/nightly.sh /data/flows-$(date +\%F).csv ref.features.h5 ref.model.h5 ref.scores.h5 /data/out
set -euo pipefail

if [ $# -lt 5 ]; then
    sed -n '2,27p' "$0" >&2
    exit 2
fi
today=$1 reference=$2 model=$3 reference_scores=$4 out=$5 share=${6:-0.05} drift=${7:-0.25}
name=$(basename "$today")
name=${name%%.*}
mkdir -p "$out"

# warnings (categories the reference never saw) go to stderr, the cron log; the summary to a file
deepuad extract "$today" --like "$reference" -o "$out/$name.features.h5" --json > "$out/$name.extract.json"
# the threshold the reference data was flagged with: today's share is measured against it
threshold=$(deepuad inspect "$reference_scores" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["threshold"])')
status=0
deepuad --quiet score "$model" "$out/$name.features.h5" -o "$out/$name.scores.h5" --threshold "$threshold" \
    --fail-above "$share" --fail-on-drift "$drift" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 8 ] && [ "$status" -ne 9 ]; then
    exit "$status"
fi
deepuad --quiet top "$out/$name.scores.h5" --flagged -o "$out/$name.anomalies.csv"
if [ "$status" -ne 0 ]; then
    # tell the two apart from what score measured: the columns that moved (PSI), the flagged share
    explain=$(cat <<'PY'
import json, sys
status, limit, info = int(sys.argv[1]), float(sys.argv[2]), json.load(sys.stdin)
drift, summary = info["drift"], info["summary"]
share = f"{100 * summary['flagged'] / summary['rows']:.1f} % of the rows flagged"
if status == 9:
    moved = ", ".join(f"{c['column']} (PSI {c['psi']:.2f})" for c in drift["columns"] if c["psi"] > limit)
    print(f"nightly: STALE MODEL: the data moved away from the training data in {moved}; {share}, which means little "
          "until the feed is fixed or the model is retrained on recent data", file=sys.stderr)
else:
    print(f"nightly: BAD NIGHT: {share}, while the data looks like the training data (largest column PSI "
          f"{drift['max_psi']:.2f}; the scores moved: PSI {drift['score_psi']:.2f}): see the anomalies CSV", file=sys.stderr)
PY
)
    deepuad inspect "$out/$name.scores.h5" --json | python3 -c "$explain" "$status" "$drift"
fi
exit "$status"
