"""Train the relation typer shipped in `ingest/relation_model.json`.

    python -m ingest.relation_train --trees ../shared/data/trees-2025 \
        --snapshot ../shared/data/hub-2024-07 [--out ingest/relation_model.json]

Learns from every typed link available (the Hub's model trees, typed `base_model:<rel>:` tags,
`cardData.base_model_relation`, the API's `baseModels`; see `ingest.lineage_eval`), each link in
both input shapes (as crawled, and stripped to listing fields), so the one model serves full
records and July-2024 listing items alike. `python -m ingest lineage-accuracy` measures the
same recipe on families held out.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ingest.lineage_eval import labelled_links
from ingest.relation_model import MODEL_PATH, RelationTyper


def train(trees: Path, snapshots: list[Path], params: dict | None = None) -> RelationTyper:
    """Fit the typer on every labelled link, both shapes."""
    data = labelled_links(trees, snapshots)
    links = pd.concat([data.full, data.listing], ignore_index=True)
    y = np.concatenate([data.y, data.y])
    fam = np.concatenate([data.family, data.family])
    return RelationTyper(**(params or {})).fit(links, y, groups=fam, habits=data.habits)


@click.command()
@click.option("--trees", type=click.Path(path_type=Path, exists=True), required=True,
              help="Folder with trees.jsonl.gz (typed 2025 model trees).")
@click.option("--snapshot", "snapshots", multiple=True,
              type=click.Path(path_type=Path, exists=True),
              help="More recorded snapshots for children's records (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=MODEL_PATH, show_default=True)
def main(trees: Path, snapshots: tuple[Path, ...], out: Path) -> None:
    typer = train(trees, list(snapshots))
    typer.save(out)
    click.echo(json.dumps({"out": str(out), "bytes": out.stat().st_size,
                           "vocabulary": len(typer.vocabulary_), "trees": len(typer.trees_),
                           "classes": list(typer.classes_)}))


if __name__ == "__main__":
    main()
