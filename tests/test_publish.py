"""Publishing the site: killed at any step, raced by a second build, or missing files, the
folder readers get is always one whole site, the previous or the new."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from generator.publish import PublishError, StagedSite, write_files
from tests.conftest import ROOT

OLD = {"index.html": "old index", "a/page.html": "old page"}
NEW = {"index.html": "new index", "a/page.html": "new page", "b/more.html": "new more"}

# A publish in a child process, killed (os._exit, no clean-up) at one step of the protocol.
_PUBLISH = textwrap.dedent("""
    import os, shutil, sys
    from pathlib import Path
    from generator.publish import StagedSite, write_files

    site, step = Path(sys.argv[1]), sys.argv[2]
    new = {"index.html": "new index", "a/page.html": "new page", "b/more.html": "new more"}
    renames, real_rename, real_rmtree = [], os.rename, shutil.rmtree

    def rename(src, dst):
        renames.append(src)
        if step == f"before rename {len(renames)}":
            os._exit(9)
        real_rename(src, dst)
        if step == f"after rename {len(renames)}":
            os._exit(9)

    def rmtree(path, *args, **kwargs):
        if step == "while deleting the previous site" and Path(path).name.endswith(".previous"):
            (Path(path) / "index.html").unlink()  # part of it gone, then the kill
            os._exit(9)
        real_rmtree(path, *args, **kwargs)

    os.rename, shutil.rmtree = rename, rmtree
    staged = StagedSite(site)
    staging = staged.begin()
    if step == "after begin":
        os._exit(9)
    write_files(staging, dict(list(new.items())[:1]))
    if step == "while writing":
        os._exit(9)
    write_files(staging, new)
    staged.commit(new)
""")

STEPS = ["after begin", "while writing", "before rename 1", "after rename 1", "before rename 2",
         "after rename 2", "while deleting the previous site"]


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


def publish(site: Path, files: dict[str, str]) -> None:
    staged = StagedSite(site)
    staged.commit(write_files(staged.begin(), files))


def leftovers(site: Path) -> list[str]:
    return sorted(p.name for p in site.parent.iterdir() if p.name.startswith(".site.")
                  and not p.name.endswith(".lock"))


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_killed_at_any_step_leaves_a_whole_site_after_the_next_start(tmp_path, step):
    site = tmp_path / "site"
    publish(site, OLD)
    killed = subprocess.run([sys.executable, "-c", _PUBLISH, str(site), step], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == 9, killed.stderr
    # The next build repairs the folder first thing; then it fails, so only the repair shows.
    staged = StagedSite(site)
    staged.begin()
    staged.abort()
    assert tree(site) in (OLD, NEW)
    if step in ("after begin", "while writing", "before rename 1", "after rename 1", "before rename 2"):
        assert tree(site) == OLD  # the new site was never whole in place: the previous one is back
    assert leftovers(site) == []
    publish(site, NEW)
    assert tree(site) == NEW and leftovers(site) == []


def test_a_site_missing_files_the_build_wrote_is_not_published(tmp_path):
    site = tmp_path / "site"
    publish(site, OLD)
    staged = StagedSite(site)
    staging = staged.begin()
    written = write_files(staging, NEW)
    (staging / "b" / "more.html").unlink()  # say, deleted by someone else's clean-up
    with pytest.raises(PublishError, match=r"1 of the 3 files .* missing .*first: b/more.html"):
        staged.commit(written)
    staged.abort()
    assert tree(site) == OLD and leftovers(site) == []


_HOLD = textwrap.dedent("""
    import sys, time
    from generator.publish import StagedSite
    staged = StagedSite(sys.argv[1])
    staged.begin()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    staged.abort()
""")


def hold_lock(site: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(site), str(seconds)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_build_gives_up_with_a_message_naming_the_other(tmp_path):
    site = tmp_path / "site"
    publish(site, OLD)
    holder = hold_lock(site, 30)
    try:
        start = time.monotonic()
        with pytest.raises(PublishError, match=rf"another build of .*site is running \(process "
                                               rf"{holder.pid}\); gave up after waiting 0.5 s"):
            StagedSite(site, lock_wait=0.5).begin()
        assert time.monotonic() - start < 5
        assert [p.name for p in tmp_path.glob(".site.staging-*")] != [], "the holder's staging is untouched"
    finally:
        holder.kill()
        holder.wait()
    assert tree(site) == OLD


def test_a_second_build_waits_for_the_first_and_says_so(tmp_path, caplog):
    site = tmp_path / "site"
    holder = hold_lock(site, 1.5)
    try:
        start = time.monotonic()
        with caplog.at_level(logging.INFO, logger="mkdocs.plugins.explorables"):
            staged = StagedSite(site, lock_wait=60)
            staging = staged.begin()
        assert "another build of" in caplog.text and "waiting up to 60 s" in caplog.text
        assert time.monotonic() - start > 1.0, "the lock was taken only once the holder let it go"
        staged.commit(write_files(staging, NEW))
    finally:
        holder.kill()
        holder.wait()
    assert tree(site) == NEW
