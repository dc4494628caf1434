"""DAG parse time: each DAG file parsed by Airflow's DagBag in a fresh interpreter, against a baseline measured in
the same run (a trivial one-task DAG), so a noisy machine shifts both. Goal: every file well under a second."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = '''
from airflow.sdk import dag, task
@dag(schedule=None)
def baseline():
    @task
    def noop():
        pass
    noop()
baseline()
'''
PARSE = """
import sys, time, json
from airflow.dag_processing.dagbag import DagBag
best = min(((lambda t0: (DagBag(dag_folder=sys.argv[1]), time.perf_counter() - t0)[1])(time.perf_counter())
            for _ in range(3)))
print(json.dumps(best))
"""


def parse_seconds(path: Path, home: str) -> float:
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'plugins'}", "PATH": "/usr/bin:/bin", "AIRFLOW_HOME": home,
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    out = subprocess.run([sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True, env=env,
                         check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        base_file = Path(home) / "baseline_dag.py"
        base_file.write_text(BASELINE)
        base = parse_seconds(base_file, home)
        print(f"{'baseline (one-task DAG)':<28} {base * 1000:7.0f} ms")
        worst = 0.0
        for path in sorted((REPO / "dags").glob("*.py")):
            seconds = parse_seconds(path, home)
            worst = max(worst, seconds)
            print(f"{path.name:<28} {seconds * 1000:7.0f} ms  ({seconds / base:4.1f}x baseline)")
    verdict = "PASS" if worst < 1.0 else "FAIL"
    print(f"{verdict}: slowest DAG file parses in {worst * 1000:.0f} ms (goal < 1000 ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
