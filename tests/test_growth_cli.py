"""python -m analytics.growth fit|backtest|export|outoftime."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import subprocess
import sys
from pathlib import Path

from analytics.growth import GrowthDataError, read_wide_csv

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "data" / "growth_small.csv"


# --------------------------------------------------------------------------- CSV + CLI
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analytics.growth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_fit_and_backtest(tmp_path):
    out = tmp_path / "fit.csv"
    p = _cli("fit", SMALL, "--out", out)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    for c in ("model", "lambda", "mu", "sigma", "c_inf", "ok", "r2", "rmsle", "flags", "pred_6m",
              "pred_6m_low", "pred_6m_high", "pred_12m"):
        assert c in df.columns
    d = df.set_index("model")
    assert d.loc["org/smooth-a", "ok"] and d.loc["org/big", "ok"] and d.loc["org/nan-tail", "ok"]
    assert not d.loc["org/step", "ok"] and "jump" in d.loc["org/step", "flags"]
    assert not d.loc["org/zero", "ok"] and not d.loc["org/short", "ok"] and not d.loc["org/flat", "ok"]
    assert abs(d.loc["org/smooth-a", "lambda"] - 3.0) < 0.05
    p = _cli("backtest", SMALL, "--holdout", "6")
    assert p.returncode == 0, p.stderr
    assert "wsb" in p.stdout and "last_value" in p.stdout and "rmsle" in p.stdout


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
    with pytest.raises(GrowthDataError):
        read_wide_csv(bad)
