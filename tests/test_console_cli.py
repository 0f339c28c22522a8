"""`python -m graph query`: the console's runner on the command line, as a user runs it.

Every example of issue 8 and two inputs of every hostile family go through the real CLI in
a subprocess whose environment holds canary secrets: exit 2 (refused) or 1 (stopped or
failed), never 0, and no canary ever appears on stdout or stderr.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_console_sandbox import HOSTILE, fill

REPO = Path(__file__).resolve().parent.parent
CANARIES = {"HF_TOKEN": "hf_CANARYcliTOKEN0123456789", "NEO4J_PASSWORD": "CANARY-cli-neo4j-pw",
            "HUBATLAS_TEST_SECRET": "CANARY-cli-secret"}

#: the issue's own examples, then the first two of every family of the corpus
ISSUE_EXAMPLES = [
    "tricks:comment smuggles LOAD FROM (the issue's finding)",
    "file reads:LOAD FROM /etc/passwd (csv)", "file reads:LOAD FROM /proc/self/environ",
    "file reads:LOAD FROM the app's environ", "file writes:COPY TO csv",
    "file writes:EXPORT DATABASE", "session:CHECKPOINT", "session:ATTACH then USE",
    "nesting:3,000 parentheses (segfaulted the server)", "allocation:size(range(1, 3e8))",
    "allocation:UNWIND range(1, 1e9)", "allocation:repeat('x', 2e9)",
]


def _selection() -> list[tuple[str, str, str]]:
    by_id = {f"{fam}:{name}": (fam, name, q) for fam, name, q in HOSTILE}
    chosen = [by_id[i] for i in ISSUE_EXAMPLES]
    for fam in dict.fromkeys(f for f, _, _ in HOSTILE):
        chosen += [h for h in HOSTILE if h[0] == fam and h not in chosen][:2]
    return chosen


SELECTION = _selection()


@pytest.fixture(scope="module")
def cli_graph(mini_graph_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("console-cli") / "graph"
    shutil.copytree(mini_graph_root, root)
    return root


def run_cli(root: Path, *args: str, timeout: float = 120, **env: str
            ) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    return subprocess.run([sys.executable, "-m", "graph", "query", *args], cwd=REPO,
                          env={**base, **CANARIES, "HUBATLAS_DB": str(root), **env},
                          capture_output=True, text=True, timeout=timeout)


def _no_canary(proc: subprocess.CompletedProcess) -> None:
    for value in CANARIES.values():
        assert value not in proc.stdout and value not in proc.stderr


def test_table_json_csv_and_row_cap(cli_graph):
    q = "MATCH (m:Model) RETURN m.id AS id, m.likes AS likes ORDER BY id LIMIT 3"
    table = run_cli(cli_graph, q)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "likes"] and len(lines) == 4

    as_json = run_cli(cli_graph, "--json", q)
    rows = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and len(rows) == 3 and set(rows[0]) == {"id", "likes"}
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)

    as_csv = run_cli(cli_graph, "--csv", "MATCH (m:Model) RETURN m.id AS id, m.tags AS tags, "
                                         "m.createdAt AS created LIMIT 2")
    parsed = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert as_csv.returncode == 0 and parsed[0] == ["id", "tags", "created"]
    assert isinstance(json.loads(parsed[1][1]), list)

    capped = run_cli(cli_graph, "--json", "--max-rows", "5", "MATCH (m:Model) RETURN m.id AS id")
    assert capped.returncode == 0 and len(json.loads(capped.stdout)) == 5
    assert "more exist" in capped.stderr
    export = run_cli(cli_graph, "--csv", "--max-rows", "100000",
                     "MATCH (m:Model) RETURN m.id AS id")
    assert export.returncode == 0 and len(export.stdout.splitlines()) == 541 + 1
    for proc in (table, as_json, as_csv, capped, export):
        _no_canary(proc)


def test_query_from_stdin_and_usage_errors(cli_graph):
    base = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    proc = subprocess.run([sys.executable, "-m", "graph", "query", "--json", "-"], cwd=REPO,
                          input="RETURN 41 + 1 AS answer", capture_output=True, text=True,
                          env={**base, "HUBATLAS_DB": str(cli_graph)}, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [{"answer": 42}]
    both = run_cli(cli_graph, "--json", "--csv", "RETURN 1")
    assert both.returncode == 2 and "choose one" in both.stderr


def test_exit_codes(cli_graph, tmp_path):
    refused = run_cli(cli_graph, "MATCH (m:Model) DETACH DELETE m")
    assert refused.returncode == 2 and refused.stderr.startswith("Refused:")
    assert refused.stdout == ""
    engine_error = run_cli(cli_graph, "MATCH (m:NoSuchLabel) RETURN m")
    assert engine_error.returncode == 1 and "NoSuchLabel" in engine_error.stderr
    no_graph = run_cli(tmp_path / "empty", "RETURN 1")
    assert no_graph.returncode == 1 and "no graph yet" in no_graph.stderr


@pytest.mark.parametrize("family,name,query", SELECTION,
                         ids=[f"{f}:{n}" for f, n, _ in SELECTION])
def test_hostile_inputs_through_the_cli(cli_graph, family, name, query, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    live = next(cli_graph.glob("gen-*/graph.kuzu"))
    # @PPID@ (the worker's parent) is the CLI process, whose pid is not known in advance:
    # its environ is tried in test_the_app_environ_is_out_of_reach
    text = fill(query, ppid=os.getpid(), out=out, graph=live)
    proc = run_cli(cli_graph, "--timeout", "3", text, HUBATLAS_CONSOLE_MAX_MB="1024")
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout[:300], proc.stderr[:300])
    assert proc.stdout == ""
    if family in ("file reads", "file writes", "session", "writes", "procedures"):
        assert proc.returncode == 2 or "Parser exception" in proc.stderr, proc.stderr
    _no_canary(proc)
    assert not list(out.iterdir())


def test_the_app_environ_is_out_of_reach(cli_graph):
    """The worker's parent (the CLI, whose environment holds the canaries) is the process
    whose environ a LOAD FROM would need: the CLI runs in-process from a script that puts
    its own pid into the smuggled LOAD FROM; refused (exit 2), no canary in the output."""
    script = ("import os, subprocess, sys; "
              "q = \"/* **/ ' */ LOAD FROM \\\"/proc/%d/environ\\\" (file_format=\\\"csv\\\") "
              "RETURN * // ' RETURN 1\" % os.getpid(); "
              "from graph.__main__ import cli; sys.argv = ['graph', 'query', q]; cli()")
    base = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, env={**base, **CANARIES, "HUBATLAS_DB": str(cli_graph)},
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    _no_canary(proc)


def test_graph_and_ingest_status_still_work(cli_graph):
    ok = run_cli(cli_graph, "--json", "MATCH (m:Model) RETURN count(*) AS n")
    assert ok.returncode == 0 and json.loads(ok.stdout) == [{"n": 541}]
    base = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    status = subprocess.run([sys.executable, "-m", "ingest", "status"], cwd=REPO,
                            env={**base, "HUBATLAS_DB": str(cli_graph)}, capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    # no WAL or shadow file beside the graph (the derived results have their own folder)
    gen = next(cli_graph.glob("gen-*"))
    assert sorted(p.name for p in gen.iterdir() if p.name != "results") == [
        "graph.kuzu", "graph.kuzu.engine.json"]  # the graph and its engine marker, nothing else
