"""graph/generations.py: how a cron ingest and the running dashboard share one folder.

On the real embedded engine: a staging copy is written while readers keep the live file, the
`CURRENT` switch is what readers see, old generations are pruned but the newest one with
complete results stays, one writer at a time, and checkpoints survive a damaged write.
(Engine markers and foreign files: tests/test_store.py.)
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from graph.generations import (
    CHECKPOINT_FILE,
    GRAPH_FILE,
    RESULTS_COMPLETE,
    Generations,
    WriterBusy,
)
from graph.schema import Label
from graph.store import open_embedded, open_store


def _model_ids(path: Path) -> list[str]:
    store = open_embedded(path, read_only=True)
    try:
        return sorted(r["id"] for r in store.rows("MATCH (m:Model) RETURN m.id AS id"))
    finally:
        store.close()


def _add_model(path: Path, model_id: str) -> None:
    store = open_embedded(path, read_only=False)
    try:
        store.ensure_schema()  # idempotent: a first staging has no tables yet
        store.write([("CREATE (:Model {id: $id})", {"id": model_id})])
    finally:
        store.close()


def _first_generation(root: Path) -> tuple[Generations, str]:
    gens = Generations(root)
    staging = gens.new_staging("run-1")
    _add_model(staging, "org/first")
    return gens, gens.publish(staging.parent)


def test_nothing_published_yet(tmp_path):
    gens = Generations(tmp_path)
    assert gens.current_name() is None and gens.current_path() is None
    (tmp_path / "CURRENT").write_text("\n")
    assert gens.current_name() is None
    (tmp_path / "CURRENT").write_text("gen-gone")  # a pointer to a folder that is not there
    assert gens.current_name() == "gen-gone" and gens.current_path() is None


def test_a_staging_copy_is_written_while_readers_keep_the_live_graph(tmp_path):
    gens, first = _first_generation(tmp_path)
    live = gens.current_path()
    assert live == tmp_path / first / GRAPH_FILE and _model_ids(live) == ["org/first"]

    reader = open_store(read_only=True, root=tmp_path)  # the dashboard, open throughout
    staging = gens.new_staging("run-2")  # a copy of the live graph
    _add_model(staging, "org/second")
    assert _model_ids(live) == ["org/first"]  # the live file is untouched by the writer
    assert reader.generation().name == first

    second = gens.publish(staging.parent)
    assert second != first and gens.current_name() == second
    assert _model_ids(gens.current_path()) == ["org/first", "org/second"]
    assert not staging.parent.exists()  # moved, not copied
    # the open reader still answers from the generation it opened; a new one sees the switch
    assert [r["n"] for r in reader.rows("MATCH (m:Model) RETURN count(m) AS n")] == [1]
    reader.close()
    fresh = open_store(read_only=True, root=tmp_path)
    assert fresh.generation().name == second and fresh.generation().backend == "embedded"
    assert fresh.generation().results_dir == tmp_path / second / "results"
    fresh.close()


def test_a_first_load_staging_starts_empty(tmp_path):
    gens, _ = _first_generation(tmp_path)
    staging = gens.new_staging("full", copy_current=False)
    assert staging.parent.is_dir() and not staging.exists()


def test_prune_keeps_the_newest_and_the_newest_complete_generation(tmp_path):
    gens = Generations(tmp_path, keep=2)
    names = []
    for i in range(5):
        staging = gens.new_staging(f"run-{i}", copy_current=False)
        staging.write_bytes(b"")  # prune looks at folders only
        names.append(gens.publish(staging.parent))
        if i == 1:  # its derived results were finished; the later ones' never were
            (tmp_path / names[-1] / RESULTS_COMPLETE).parent.mkdir(parents=True)
            (tmp_path / names[-1] / RESULTS_COMPLETE).touch()
    left = sorted(p.name for p in tmp_path.glob("gen-*"))
    assert left == sorted([names[1], names[3], names[4]])
    assert gens.current_name() == names[4]


def test_one_writer_at_a_time(tmp_path):
    gens = Generations(tmp_path)
    with gens.writer_lock():
        with pytest.raises(WriterBusy, match="another ingest is running"):
            with Generations(tmp_path).writer_lock():
                pass  # pragma: no cover - never entered
    with gens.writer_lock():  # released when the first one ended
        pass


def test_pending_staging_is_the_newest_left_behind(tmp_path):
    gens, _ = _first_generation(tmp_path)
    assert gens.pending_staging() is None
    older = gens.new_staging("run-a")
    newer = gens.new_staging("run-b")
    os.utime(older.parent, (1, 1))
    assert gens.pending_staging() == newer.parent
    gens.discard(newer.parent)
    assert gens.pending_staging() == older.parent


def test_checkpoints_round_trip_and_a_damaged_one_reads_as_none(tmp_path):
    staging = tmp_path / "staging-x"
    staging.mkdir()
    assert Generations.read_checkpoint(staging) is None
    Generations.write_checkpoint(staging, {"done": 3, "label": Label.MODEL.value})
    assert Generations.read_checkpoint(staging) == {"done": 3, "label": "Model"}
    assert not (staging / (CHECKPOINT_FILE + ".tmp")).exists()
    (staging / CHECKPOINT_FILE).write_text('{"done": ')  # cut short
    assert Generations.read_checkpoint(staging) is None


def test_names_sort_in_publish_order_even_against_the_clock(tmp_path):
    """Pruning and the pages' fallback take the greatest name as the newest: a publish is
    named after every generation there, within one second or after the clock stepped back."""
    gens = Generations(tmp_path, keep=5)
    (tmp_path / "gen-29991231T235959-999999").mkdir()  # from a clock that ran ahead
    names = []
    for i in range(3):
        staging = gens.new_staging(f"run-{i}", copy_current=False)
        names.append(gens.publish(staging.parent))
    assert names[0] > "gen-29991231T235959-999999" and names == sorted(set(names))
    assert gens.current_name() == names[-1]
