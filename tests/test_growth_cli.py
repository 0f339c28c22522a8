"""python -m analytics.growth fit|backtest|export|outoftime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.growth import GrowthDataError, read_wide_csv
from analytics.growth.cli import fit_rows
from tests.test_growth_pooled import steady_series

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "data" / "growth_small.csv"
CONTRACT = (
    "model",
    "lambda",
    "mu",
    "sigma",
    "c_inf",
    "ok",
    "flags",
    "pred_6m",
    "pred_6m_low",
    "pred_6m_high",
    "pred_12m",
    "pred_12m_low",
    "pred_12m_high",
)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "analytics.growth", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_fit_keeps_its_contract(tmp_path):
    out = tmp_path / "fit.csv"
    p = _cli("fit", SMALL, "--out", out)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    assert set(CONTRACT) <= set(df.columns)
    d = df.set_index("model")
    assert d.loc["org/smooth-a", "ok"] and d.loc["org/big", "ok"] and d.loc["org/nan-tail", "ok"]
    assert not d.loc["org/step", "ok"] and "jump" in d.loc["org/step", "flags"]
    assert "alone added" in d.loc["org/step", "failed_checks"]
    assert not d.loc["org/zero", "ok"] and not d.loc["org/short", "ok"]
    assert abs(d.loc["org/smooth-a", "lambda"] - 3.0) < 0.05
    # eight series are too few to train the pooled model: the last value, said so
    fc = d[d["pred_6m"].notna()]
    assert (fc["method"] == "last value").all() and (fc["pred_6m"] == fc["last"]).all()
    assert np.isnan(d.loc["org/zero", "pred_6m"])  # no derivative: no forecast


def test_cli_fit_gives_the_product_forecast(tmp_path):
    gs = steady_series(n=300, T=20, seed=4)
    csv = tmp_path / "series.csv"
    gs.to_wide().to_csv(csv, index=False)
    out = tmp_path / "fit.csv"
    p = _cli("fit", csv, "--out", out)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out, dtype={"model": str})
    expected = fit_rows(read_wide_csv(csv))
    assert (df["method"] == "pooled rate").all()
    for c in ("pred_6m", "pred_6m_low", "pred_6m_high", "pred_12m", "pred_12m_high"):
        np.testing.assert_array_equal(df[c].to_numpy(float), expected[c].to_numpy(float))
    assert (df["pred_6m_low"] <= df["pred_6m"]).all() and (
        df["pred_6m"] <= df["pred_6m_high"]
    ).all()


def test_cli_backtest_prints_test_tuning_and_goal(tmp_path):
    gs = steady_series(n=300, T=20, seed=5)
    csv = tmp_path / "series.csv"
    gs.to_wide().to_csv(csv, index=False)
    p = _cli(
        "backtest",
        csv,
        "--horizons",
        "3",
        "--test-window",
        "2",
        "--tuning-window",
        "1",
        "--predictions",
        tmp_path / "pred.csv",
    )
    assert p.returncode == 0, p.stderr
    assert "test rows" in p.stdout and "tuning rows" in p.stdout and "goal" in p.stdout
    for name in ("pooled_rate", "last_value", "linear", "damped", "wsb", "wsb_or_last"):
        assert name in p.stdout
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert set(pred["origin"]) == {3, 4, 5} and set(pred["split"]) == {"test", "tuning"}
    p = _cli("backtest", SMALL)
    assert p.returncode == 3 and "no origin" in p.stderr


def test_cli_export_and_outoftime_from_a_graph(tmp_path, mini_graph_root):
    out = tmp_path / "series.csv"
    p = _cli("export", "--graph", mini_graph_root, "--out", out)
    assert p.returncode == 0, p.stderr
    assert read_wide_csv(out).counts.shape[0] > 20
    p = _cli(
        "outoftime", "--graph", mini_graph_root, "--trees", ROOT / "tests" / "data" / "nowhere"
    )
    assert p.returncode == 2 and "no trees file" in p.stderr


def test_cli_bad_csvs(tmp_path):
    bad = tmp_path / "nomodel.csv"
    bad.write_text("name,0-month,1-month\nx,1,2\n")
    p = _cli("fit", bad, "--out", tmp_path / "o.csv")
    assert p.returncode != 0 and "missing required column 'model'" in p.stderr
    bad2 = tmp_path / "text.csv"
    bad2.write_text("model,0-month,1-month,2-month\nx,1,two,3\n")
    p = _cli("backtest", bad2)
    assert p.returncode != 0 and "non-numeric value 'two'" in p.stderr and "1-month" in p.stderr
    p = _cli("fit", tmp_path / "missing.csv", "--out", tmp_path / "o.csv")
    assert p.returncode != 0 and "file not found" in p.stderr
    p = _cli("backtest")
    assert p.returncode == 2 and "--graph" in p.stderr
    with pytest.raises(GrowthDataError):
        read_wide_csv(bad)
