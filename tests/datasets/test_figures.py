"""``FigureFolderDataset``: disabled figures save as an empty version folder."""

from __future__ import annotations

from kedro.io import Version
from matplotlib.figure import Figure

from zeroshot_audio.datasets.figures import FigureFolderDataset


def test_no_figures_is_an_empty_version_and_figures_are_pngs(tmp_path):
    empty = FigureFolderDataset(filepath=str(tmp_path / "figs"), version=Version(None, None))
    empty.save({})  # kedro-datasets' MatplotlibDataset fails here: "Did not find any versions"
    (version,) = (tmp_path / "figs").iterdir()
    assert not any((version / "figs").iterdir())

    figure = Figure()
    figure.add_subplot().plot([0, 1])
    full = FigureFolderDataset(filepath=str(tmp_path / "more"), version=Version(None, None))
    full.save({"000_a.png": figure})
    (png,) = (tmp_path / "more").glob("*/more/000_a.png")
    assert png.stat().st_size > 1000
