"""Putting a built site in place all at once, and checking each page against its byte budget.

MkDocs writes straight into site_dir; a build that fails halfway would leave a half-written
site. ``StagedSite`` points the build at a sibling staging folder and swaps it into place only
when the build has finished and every file it meant to write is there, so a failed, killed or
raced build leaves the previous site as it was:

- One build at a time: ``begin`` takes an OS lock (``fcntl.flock`` on ``.site.lock`` beside
  the site), waiting for another build of the same folder to finish, or giving up after
  ``EXPLORABLES_LOCK_WAIT`` seconds (600 by default). The OS drops the lock when a build dies.
- The swap is two renames: site -> ``.site.previous``, staging -> site. A build killed between
  them leaves no site but a whole previous one; the next build, before anything else, renames
  it back (or, if the swap had finished, deletes the leftover copy).
- Staging folders left by killed builds are deleted only under the lock, so a running build's
  staging folder is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Iterable, Mapping

log = logging.getLogger("mkdocs.plugins.explorables")

DEFAULT_LOCK_WAIT = 600.0  # seconds a build waits for another build of the same site


class BudgetError(RuntimeError):
    """A page is heavier than its budget; the message names the page and its largest charts."""


class PublishError(RuntimeError):
    """The site cannot be put in place (another build holds it, or files are missing)."""


class StagedSite:
    """A folder (site_dir) replaced whole by a staging folder: begin, write, commit or abort."""

    def __init__(self, site_dir: str | Path, *, lock_wait: float | None = None):
        self.site_dir = Path(site_dir).resolve()
        self.lock_wait = lock_wait if lock_wait is not None else float(
            os.environ.get("EXPLORABLES_LOCK_WAIT", DEFAULT_LOCK_WAIT))
        self.staging: Path | None = None
        self._lock: IO | None = None

    @property
    def previous(self) -> Path:
        """Where site_dir waits during the swap."""
        return self.site_dir.parent / f".{self.site_dir.name}.previous"

    @property
    def lock_path(self) -> Path:
        return self.site_dir.parent / f".{self.site_dir.name}.lock"

    def begin(self) -> Path:
        """Take the lock, repair an interrupted swap, and create an empty staging folder."""
        self.site_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = _acquire(self.lock_path, self.lock_wait, self.site_dir)
        self.recover()
        for stale in self.site_dir.parent.glob(f".{self.site_dir.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build; none runs now
        self.staging = Path(tempfile.mkdtemp(dir=self.site_dir.parent,
                                             prefix=f".{self.site_dir.name}.staging-"))
        return self.staging

    def recover(self) -> None:
        """Undo or finish a swap a killed build left halfway (call with the lock held)."""
        if not self.previous.exists():
            return
        if self.site_dir.exists():  # the swap was done; only deleting the old copy was cut short
            shutil.rmtree(self.previous)
        else:  # killed between the renames: the previous site is the only whole one
            self.previous.rename(self.site_dir)
            log.info("explorables: restored %s from an interrupted swap", self.site_dir.name)

    def commit(self, expected: Iterable[str] = ()) -> None:
        """Replace site_dir with the staging folder, if it holds every expected file."""
        if self.staging is None:
            return
        expected = sorted(set(expected))
        missing = [p for p in expected if not (self.staging / p).is_file()]
        if missing:
            raise PublishError(
                f"{len(missing)} of the {len(expected)} files this build wrote are missing from "
                f"its staging folder (first: {missing[0]}); {self.site_dir.name}/ was left as it was")
        if self.site_dir.exists():
            self.site_dir.rename(self.previous)
        self.staging.rename(self.site_dir)
        self.staging = None
        shutil.rmtree(self.previous, ignore_errors=True)
        self._release()

    def abort(self) -> None:
        """Drop the staging folder; site_dir is untouched."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None


def write_files(root: Path, files: Mapping[str, str | bytes]) -> list[str]:
    """Write {relative path: content} under root; return the paths written."""
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
    return list(files)


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


# ---------------------------------------------------------------------------------------------
# Helpers


def _acquire(path: Path, wait: float, site_dir: Path) -> IO:
    """An open lock file holding an exclusive flock; waits up to `wait` seconds for it."""
    lock = open(path, "a+")
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if time.monotonic() >= deadline:
                lock.close()
                raise PublishError(
                    f"another build of {site_dir} is running ({holder}); gave up after waiting "
                    f"{wait:g} s for it (EXPLORABLES_LOCK_WAIT sets how long)") from None
            if not announced:
                log.info("explorables: another build of %s is running (%s); waiting up to %g s "
                         "for it to finish", site_dir, holder, wait)
                announced = True
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid else "another process"
