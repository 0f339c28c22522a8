"""Whole-graph export to Parquet: `python -m graph export --parquet DIR`.

One file per node label (`node-<Label>.parquet`: every declared property, schema order) and
per relation type and endpoint pair (`rel-<TYPE>-<From>-<To>.parquet`: `from`, `to` and the
relation's properties), plus `manifest.json` (rows and columns per file, the generation,
seconds). The file layout is the one `KuzuStore.export_parquet` / `import_parquet` use, so
an export loads back into an empty embedded graph.

On the embedded engine the engine's own `COPY … TO` writes the files; elsewhere (Neo4j) the
tables are read page by page through the store and written with pyarrow. A graph created
before a property was declared exports the columns it has; the manifest names the missing.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from graph.schema import NODES, RELS, Label, Rel
from graph.store import GraphStore

PAGE_ROWS = 100_000


@dataclass
class ExportReport:
    folder: str
    engine: str
    seconds: float = 0.0
    files: dict[str, dict] = field(default_factory=dict)  # name → {rows, columns, bytes}

    @property
    def rows(self) -> int:
        return sum(f["rows"] for f in self.files.values())


def _node_file(label: Label) -> str:
    return f"node-{label.value}.parquet"


def _rel_file(rel: Rel, src: Label, dst: Label) -> str:
    return f"rel-{rel.value}-{src.value}-{dst.value}.parquet"


def _tables():
    """(file name, table, from label, to label, columns) for every table of the schema
    (from/to are None for node tables)."""
    for spec in NODES:
        yield _node_file(spec.label), spec.label, None, None, [n for n, _ in spec.properties]
    for spec in RELS:
        for src, dst in spec.pairs:
            yield (_rel_file(spec.rel, src, dst), spec.rel, src, dst,
                   ["from", "to", *[n for n, _ in spec.properties]])


def export_graph_parquet(store: GraphStore, folder: Path | str, *,
                         native: bool | None = None, page_rows: int = PAGE_ROWS) -> ExportReport:
    """Write every table of `store` to `folder` (created; existing files replaced).

    native=None uses the engine's bulk export where there is one (Kùzu), False forces the
    portable path (the one Neo4j takes)."""

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    engine = store.dialect.name  # for the report only
    # the embedded store has the engine's own bulk I/O (COPY … TO); Neo4j has none
    has_copy = callable(getattr(store, "export_parquet", None))
    use_native = has_copy if native is None else bool(native)
    if use_native and not has_copy:
        raise ValueError("the native export is the embedded engine's COPY … TO")
    if use_native and any(c in str(folder) for c in "'\\"):
        raise ValueError(f"folder {folder} has a quote or backslash; choose another")
    report = ExportReport(folder=str(folder), engine=engine + (" COPY" if use_native else ""))
    clock = time.perf_counter()
    for name, table, src, dst, columns in _tables():
        out = folder / name
        if use_native:
            _copy_to(store, out, table, src, dst, columns)
        else:
            _paged(store, out, table, src, dst, columns, page_rows)
        meta = pq.read_metadata(out)
        report.files[name] = {"rows": meta.num_rows, "columns": meta.num_columns,
                              "bytes": out.stat().st_size}
    report.seconds = round(time.perf_counter() - clock, 2)
    (folder / "manifest.json").write_text(json.dumps(asdict(report), indent=2))
    return report


def _copy_to(store: GraphStore, out: Path, table, src, dst, columns: list[str]) -> None:
    """Kùzu's `COPY (query) TO 'file.parquet'`; the path is checked for quotes above."""
    if src is None:
        cols = ", ".join(f"n.{c} AS {c}" for c in columns)
        query = f"MATCH (n:{table.value}) RETURN {cols}"
    else:
        props = "".join(f", e.{c} AS {c}" for c in columns if c not in ("from", "to"))
        query = (f"MATCH (a:{src.value})-[e:{table.value}]->(b:{dst.value}) "
                 f"RETURN a.id AS `from`, b.id AS `to`{props}")
    store.rows(f"COPY ({query}) TO '{out}'")


def _paged(store: GraphStore, out: Path, table, src, dst, columns: list[str],
           page_rows: int) -> None:
    """Read the table in pages through the store, write one Parquet file incrementally."""
    from graph import views_queries as vq
    from graph.kuzu_store import conform
    from graph.schema import NODE_SPECS, REL_SPECS

    spec_props = NODE_SPECS[table].properties if src is None else REL_SPECS[table].properties
    spec_props = tuple((n, t) for n, t in spec_props if n in columns)
    props = [n for n, _ in spec_props]
    lead = () if src is None else ("from", "to")
    writer, skip = None, 0
    try:
        while True:
            page = (vq.node_table_page(store, table, props, skip, page_rows) if src is None else
                    vq.rel_table_page(store, table, src, dst, props, skip, page_rows))
            for name, typ in spec_props:
                if typ == "TIMESTAMP" and name in page:
                    page[name] = pd.to_datetime(page[name].astype(object), utc=True) \
                        .dt.tz_localize(None)
            tbl = conform(pa.Table.from_pandas(page, preserve_index=False), spec_props, lead)
            if writer is None:
                writer = pq.ParquetWriter(out, tbl.schema)
            if tbl.num_rows:
                writer.write_table(tbl)
            skip += len(page)
            if len(page) < page_rows:
                break
    finally:
        if writer is not None:
            writer.close()


@click.command("export")
@click.option("--parquet", "folder", required=True, type=click.Path(path_type=Path),
              help="Folder to write one Parquet file per node and relation table into.")
@click.option("--portable", is_flag=True,
              help="Read through the store page by page instead of the engine's COPY TO.")
def export_command(folder: Path, portable: bool) -> None:
    """Export the whole current graph to Parquet (plus manifest.json)."""
    from graph.errors import GraphEmpty, GraphError
    from graph.store import open_store

    try:
        store = open_store(read_only=True)
    except (GraphEmpty, GraphError) as e:
        raise click.ClickException(str(e))
    try:
        report = export_graph_parquet(store, folder, native=False if portable else None)
    except (GraphError, ValueError, OSError) as e:
        raise click.ClickException(f"export failed: {e}")
    finally:
        store.close()
    size = sum(f["bytes"] for f in report.files.values())
    click.echo(f"exported {report.rows:,} rows in {len(report.files)} files "
               f"({size / 1e6:,.1f} MB) to {report.folder} in {report.seconds} s "
               f"({report.engine})")
