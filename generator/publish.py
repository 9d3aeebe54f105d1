"""Putting a built site in place all at once, and checking each page against its byte budget.

MkDocs writes straight into site_dir; a build that fails halfway would leave a half-written
site. ``StagedSite`` points the build at a sibling staging directory and swaps it into place
only when the build has finished, so a failed or interrupted build leaves the previous site as
it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class BudgetError(RuntimeError):
    """A page is heavier than its budget; the message names the page and its largest charts."""


class StagedSite:
    def __init__(self, site_dir: str | Path):
        self.site_dir = Path(site_dir).resolve()
        self.staging: Path | None = None

    def begin(self) -> Path:
        """Create an empty staging directory beside site_dir and return it."""
        parent = self.site_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{self.site_dir.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a build that was killed
        self.staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.site_dir.name}.staging-"))
        return self.staging

    def commit(self) -> None:
        """Replace site_dir with the staging directory."""
        if self.staging is None:
            return
        old = None
        if self.site_dir.exists():
            old = Path(tempfile.mkdtemp(dir=self.site_dir.parent, prefix=f".{self.site_dir.name}.staging-old-"))
            self.site_dir.rename(old / "site")
        self.staging.rename(self.site_dir)
        self.staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Drop the staging directory; site_dir is untouched."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def check_budget(page: str, html_bytes: int, budget: int, chart_bytes: dict[str, int]) -> None:
    """Raise BudgetError if a page's HTML (embedded specs included) exceeds its budget."""
    if html_bytes <= budget:
        return
    heaviest = sorted(chart_bytes.items(), key=lambda kv: -kv[1])[:3]
    charts = ", ".join(f"chart '{name}' ({size / 1000:.0f} KB)" for name, size in heaviest)
    raise BudgetError(
        f"page {page} is {html_bytes / 1000:.0f} KB, over its {budget / 1000:.0f} KB budget"
        + (f"; heaviest: {charts}" if charts else "")
    )
