"""MkDocs glue: generate the explorables into the build, stage the site, check page budgets.

Thin on purpose: everything it calls is plain Python under generator/, importable without
MkDocs. The generator package is re-imported on every build, so `mkdocs serve` picks up edits
in generator/ and content/ (both listed under `watch:`) without a restart.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import jinja2
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
_state: dict = {}


def _fresh(module: str):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for name in [n for n in sys.modules if n == "generator" or n.startswith("generator.")]:
        del sys.modules[name]
    return importlib.import_module(module)


def on_config(config):
    # MkDocs stamps the build's date into sitemap.xml.gz; nothing a reader sees depends on it, and
    # it would make two builds of one checkout differ. A date set by the caller still wins.
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    build = _fresh("generator.build")
    from generator import assets, chapters, grids, publish

    try:
        _state["grids"] = grids.load_grids(config.extra.get("grids"))
    except grids.GridError as exc:
        raise PluginError(f"mkdocs.yml extra.{exc}") from exc
    if "staged" in _state:  # `mkdocs serve`: the last build's lock and staging folder
        _state["staged"].abort()
    _state.update(build=build, chapters=chapters, publish=publish, staged=publish.StagedSite(config.site_dir),
                  site_dir=config.site_dir)
    config.extra["iframe_worker"] = assets.IFRAME_WORKER  # docs/overrides/main.html adds it on file:// only
    try:
        config.site_dir = str(_state["staged"].begin())
    except publish.PublishError as exc:
        raise PluginError(f"explorables: {exc}") from exc
    return config


def on_files(files, config):
    from generator.cache import Cache

    try:
        site = _state["build"].build_site(_state["grids"], Cache())
    except (LookupError, ValueError, RuntimeError, OSError) as exc:
        raise PluginError(f"explorables: {exc}") from exc
    _state["site"] = site
    for path, content in site.files.items():
        if files.get_file_from_path(path) is not None:
            files.remove(files.get_file_from_path(path))
        files.append(File.generated(config, path, content=content))
    return files


def on_env(env, config, files):
    # Material's templates compile anew on every build; keeping the compiled code (checked
    # against each template's source) saves most of a second on a rebuild.
    from generator.cache import Cache

    compiled = Cache().directory("theme-templates")
    if compiled is not None:
        env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(compiled))
    # What this build means to write, checked against the staging folder before the swap.
    _state["manifest"] = [f.dest_uri for f in files if f.inclusion.is_included()]
    return env


def on_page_content(html, page, config, files):
    # Values the prose placed reach the page after Markdown (so data is never read as
    # Markdown) and before search indexes the page.
    rendered = _state["site"].pages.get(page.file.src_uri)
    return rendered.fill_values(html) if rendered is not None else html


def on_post_page(output, page, config):
    site = _state["site"]
    src = page.file.src_uri
    rendered = site.pages.get(src)
    try:
        if rendered is not None:
            output = rendered.html(output)
        _state["publish"].check_budget(
            src, len(output.encode()), site.budgets.get(src, _state["chapters"].DEFAULT_PAGE_BUDGET),
            rendered.chart_bytes if rendered else {})
    except (_state["publish"].BudgetError, ValueError) as exc:
        raise PluginError(str(exc)) from exc
    return output


@event_priority(-200)  # after Material's offline plugin (-100) has written search_index.js
def on_post_build(config):
    try:
        _state["staged"].commit(_state.get("manifest", ()))
    except _state["publish"].PublishError as exc:
        raise PluginError(f"explorables: {exc}") from exc
    config.site_dir = _state["site_dir"]


def on_build_error(error):
    if "staged" in _state:
        _state["staged"].abort()
