#!/usr/bin/env bash
# Local Apache Kafka (KRaft) broker from Maven Central jars; see deploy/README.md.
#
#   deploy/kafka.sh fetch  [LIBS_DIR]           download the jars once (CI: pre-fetch)
#   deploy/kafka.sh start  [DATA_DIR] [1|3]     start (or find running); prints the bootstrap
#                                               (SASL/SCRAM + ACLs: DATA_DIR/clients/admin.properties;
#                                               `ledger broker start` also adds ledger/auditor/sites)
#   deploy/kafka.sh stop   [DATA_DIR]           controlled shutdown
#   deploy/kafka.sh status [DATA_DIR]           JSON state; exit 3 if not running
#
# DATA_DIR defaults to $LEDGER_KAFKA_DATA or ~/.local/state/trial-ledger/kafka,
# LIBS_DIR to $LEDGER_KAFKA_LIBS or ~/.cache/trial-ledger/kafka-<version>/libs.
# Heap per node: $LEDGER_KAFKA_HEAP (default 192m). Interpreter: $PYTHON (default python3).
set -euo pipefail
case "${1:-}" in
  fetch|start|stop|status) ;;
  *) echo "usage: $0 {fetch [LIBS_DIR]|start [DATA_DIR] [NODES]|stop [DATA_DIR]|status [DATA_DIR]}" >&2
     exit 2 ;;
esac
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m deploy.broker "$@"
