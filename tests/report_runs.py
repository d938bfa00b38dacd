"""Run folders and reports for the ``snr report`` tests: small MLPs analysed for real on one data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers import mlp, write

ESCAPE_NAME = "<script>alert(1)</script>"
ODD_NAMES = (ESCAPE_NAME, 'fc2 & "quotes" \u00e9', "$x$ {y} <b>")


def _data(folder: Path) -> str:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    path = folder / "data.npz"
    if not path.exists():
        np.savez(path, x=x, labels=rng.integers(0, 3, len(x)))
    return str(path)


def analyse(folder: Path, name: str, seed: int, *, names: Sequence[str] = ("fc1", "fc2", "fc3"),
            units_json: bool = False, folder_run: bool = True) -> str:
    """Analyse a 5-8-6-3 ReLU MLP (weights from ``seed``); a run folder (or a JSON report) under ``folder``."""
    from snrcli.analysis.api import analyze
    from snrcli.reports.report import write_run_folder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = _data(folder)
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(8, 5)), rng.normal(size=(6, 8)), rng.normal(size=(3, 6))]
    model, _ = write(folder / "models", mlp(ws, [rng.normal(size=8) * 0.3, rng.normal(size=6) * 0.3, np.zeros(3)],
                                            names=list(names), head="Softmax"), name=name)
    report = analyze(model, data)
    if folder_run:
        return str(write_run_folder(report, folder / name))
    path = folder / f"{name}.json"
    path.write_text(report.to_json(units_json))
    return str(path)


def family(folder: Path, n: int) -> list[str]:
    """``n`` run folders named ep1..epN (different weights, same data and settings)."""
    return [analyse(folder, f"ep{k}", seed=100 + k) for k in range(1, n + 1)]


def report_of(run: str) -> dict:
    p = Path(run)
    return json.loads((p / "report.json" if p.is_dir() else p).read_text())


# --------------------------------------------------------------------------- reading a page back (stdlib parser)


class Page:
    """What a test needs from a written page: tables by id (rows of cells with their attributes), the
    images, every tag seen and the visible text."""

    def __init__(self, text: str) -> None:
        from html.parser import HTMLParser

        page = self
        self.tables: dict[str, list[dict]] = {}
        self.images: list[dict] = []
        self.tags: list[str] = []
        self.text_parts: list[str] = []
        self.meta: list[dict] = []

        class P(HTMLParser):
            def __init__(self):
                super().__init__(convert_charrefs=True)
                self.table = None
                self.row = None
                self.cell = None
                self.skip = 0

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                page.tags.append(tag)
                if tag in ("style", "title"):
                    self.skip += 1
                if tag == "table":
                    self.table = page.tables.setdefault(a.get("id") or f"table{len(page.tables)}", [])
                elif tag == "tr" and self.table is not None:
                    self.row = {"attrs": a, "cells": []}
                    self.table.append(self.row)
                elif tag in ("td", "th") and self.row is not None:
                    self.cell = {"tag": tag, "attrs": a, "text": ""}
                    self.row["cells"].append(self.cell)
                elif tag == "img":
                    page.images.append(a)
                elif tag == "meta":
                    page.meta.append(a)

            def handle_endtag(self, tag):
                if tag in ("style", "title"):
                    self.skip -= 1
                if tag == "table":
                    self.table = None
                elif tag == "tr":
                    self.row = None
                elif tag in ("td", "th"):
                    self.cell = None

            def handle_data(self, data):
                if self.cell is not None:
                    self.cell["text"] += data
                if not self.skip:
                    page.text_parts.append(data)

        P().feed(text)
        self.text = "".join(self.text_parts)

    def body_rows(self, table_id: str) -> list[dict]:
        """Rows with ``<td>`` cells (the header row has only ``<th>``)."""
        return [r for r in self.tables[table_id] if any(c["tag"] == "td" for c in r["cells"])]
