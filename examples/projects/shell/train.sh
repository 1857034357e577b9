#!/bin/sh
# Usage: train.sh ALPHA STEPS GREETING. Logs metric `loss` for each step and tag `greeting`.
set -eu
alpha="$1"; steps="$2"; greeting="$3"
echo "training with alpha=$alpha for $steps steps: $greeting"
post() {
    curl -sf -X POST -H 'Content-Type: application/json' \
        "$MLFLOW_TRACKING_URI/api/2.0/mlflow/$1" -d "$2" > /dev/null
}
step=0
while [ "$step" -lt "$steps" ]; do
    loss=$(awk -v a="$alpha" -v s="$step" 'BEGIN { print a / (s + 1) }')
    post runs/log-metric "{\"run_id\": \"$MLFLOW_RUN_ID\", \"key\": \"loss\", \"value\": $loss, \"timestamp\": 0, \"step\": $step}"
    echo "step $step loss $loss"
    step=$((step + 1))
done
post runs/set-tag "{\"run_id\": \"$MLFLOW_RUN_ID\", \"key\": \"greeting\", \"value\": \"$greeting\"}"
echo "done (experiment $MLFLOW_EXPERIMENT_ID)"
