"""Runs `dag.test()` of bridgecast_launch in a fresh process (Airflow reads its settings at import time, so the
stack's AIRFLOW_HOME/database must be in the environment before Airflow is imported). argv[1]: the event key.

dag.test runs tasks one at a time, so the two tasks that last the whole event (the relay and the monitor) are
marked success here; they run for real, side by side with go-live, in the rehearsal through the scheduler."""
import json
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]
bag = DagBag(dag_folder=str(REPO / "dags" / "bridgecast_launch.py"))
assert not bag.import_errors, bag.import_errors
run = bag.dags["bridgecast_launch"].test(run_conf={"event_key": sys.argv[1]},
                                         mark_success_pattern="relay_program_feed|monitor_points")
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}))
