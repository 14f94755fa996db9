"""The course's JupyterLab: students see only what students use, and Validate says what the check says.

``scripts/setup`` installs ``.venv/etc/jupyter/jupyter_server_config.py``, which calls
:func:`server_extensions` so that ``jupyter lab`` in the course environment starts with:

- **students** (the default): nbgrader's Validate button, answered by this extension; nbgrader's
  instructor tools (Formgrader, Create Assignment, Course List), its Assignment List and its menu are
  off, in the page and on the server;
- ``COURSE_JUPYTER_ROLE=student-exchange jupyter lab``: the same plus the Assignment List, for a
  class that fetches and submits through nbgrader's exchange;
- ``COURSE_JUPYTER_ROLE=instructor jupyter lab``: every nbgrader tool.

Validate: nbgrader's button posts the saved notebook's path to ``/assignments/validate`` and shows
what comes back. nbgrader's own handler answers with the whole source of every failing test cell and
its full traceback (about 21 KB on an untouched exercise). This extension serves that address instead
(nbgrader's ``validate_assignment`` server extension is off): it runs ``python -m autograder check``
on the notebook and returns its report, the same text a student gets in a terminal: one line per
visible test, the hint of each failure, and the count.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import sys
from pathlib import Path

ROLE_VARIABLE = "COURSE_JUPYTER_ROLE"
ROLES = ("student", "student-exchange", "instructor")

PLUGINS = {  # JupyterLab plugins (nbgrader's extension's and one of JupyterLab's), and who sees them
    "@jupyter/nbgrader:formgrader": {"instructor"},
    "@jupyter/nbgrader:create-assignment": {"instructor"},
    "@jupyter/nbgrader:course-list": {"instructor"},
    "@jupyter/nbgrader:assignment-list": {"instructor", "student-exchange"},
    "@jupyter/nbgrader:menu": {"instructor", "student-exchange"},
    "@jupyter/nbgrader:validate-assignment": set(ROLES),
    # JupyterLab's "get notified about official Jupyter news?" prompt: the course runs offline.
    "@jupyterlab/apputils-extension:announcements": set(),
}
NBGRADER_SERVER_EXTENSIONS = {
    "nbgrader.server_extensions.formgrader": {"instructor"},
    "nbgrader.server_extensions.course_list": {"instructor"},
    "nbgrader.server_extensions.assignment_list": {"instructor", "student-exchange"},
    # Validate is answered by this module (below), for every role.
    "nbgrader.server_extensions.validate_assignment": set(),
}
CHECK_TIMEOUT = 600  # seconds for the whole check; each cell has its own limit (30 s)


def role() -> str:
    value = os.environ.get(ROLE_VARIABLE, "student").strip().lower() or "student"
    if value not in ROLES:
        raise ValueError(f"{ROLE_VARIABLE}={value!r}: expected one of {', '.join(ROLES)}")
    return value


def server_extensions(current_role: str | None = None) -> dict[str, bool]:
    """``ServerApp.jpserver_extensions`` for a role: which server extensions start."""
    current_role = current_role or role()
    enabled = {name: current_role in roles for name, roles in NBGRADER_SERVER_EXTENSIONS.items()}
    return {**enabled, "autograder.lab": True}


def disabled_plugins(current_role: str | None = None) -> list[str]:
    current_role = current_role or role()
    return sorted(plugin for plugin, roles in PLUGINS.items() if current_role not in roles)


def _hide_plugins(previous_hook):
    def hook(handler, page_config: dict) -> dict:
        if previous_hook is not None:
            page_config = previous_hook(handler, page_config)
        disabled = page_config.setdefault("disabledExtensions", [])
        for plugin in disabled_plugins():
            if isinstance(disabled, dict):
                disabled[plugin] = True
            elif plugin not in disabled:
                disabled.append(plugin)
        return page_config

    return hook


# What nbgrader's Validate dialog shows for a "failed" answer: a paragraph ("The following cell
# failed:"), a box with the cell's source, a box with the error (set as HTML). The course's answer
# is one such entry whose error box holds the check's report; this style hides the first two.
_DIALOG_STYLE = (
    "<style>#validation-message > div:nth-child(1), #validation-message > div:nth-child(2) "
    "{display: none;} #validation-message pre {white-space: pre-wrap; margin: 0;}</style>"
)


def validate_answer(report: str) -> dict:
    """The JSON body nbgrader's Validate dialog expects, showing ``report`` as it is."""
    return {"success": True,
            "value": {"failed": [{"source": "", "error": _DIALOG_STYLE + html.escape(report),
                                  "raw_error": report}]}}


async def run_check(notebook: Path, cwd: Path) -> str:
    """The report of ``python -m autograder check NOTEBOOK``, run from ``cwd`` (stdout, then stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autograder", "check", str(notebook), cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"The check of {notebook} did not finish within {CHECK_TIMEOUT} s."
    return "\n".join(part for part in (out.decode(errors="replace").rstrip(),
                                       err.decode(errors="replace").rstrip()) if part)


def _handlers():
    from jupyter_server.base.handlers import JupyterHandler
    from nbgrader.server_extensions.validate_assignment.handlers import NbGraderVersionHandler
    from tornado import web

    class CheckHandler(JupyterHandler):
        """POST ``/assignments/validate?path=...``: the course's check of the saved notebook."""

        @web.authenticated
        async def post(self):
            try:
                path = self.get_argument("path")
            except web.MissingArgumentError:
                path = (self.get_json_body() or {}).get("path", "")
            root = Path(self.settings["server_root_dir"]).expanduser().resolve()
            target = (root / path).resolve()
            if not target.is_relative_to(root):
                raise web.HTTPError(403, "path outside the server's root")
            if not target.is_file():
                raise web.HTTPError(404, f"no notebook at {path}")
            report = await run_check(target.relative_to(root), root)
            self.finish(json.dumps(validate_answer(report)))

    return [(r"/assignments/validate", CheckHandler), (r"/nbgrader_version", NbGraderVersionHandler)]


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograder.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from jupyter_server.utils import url_path_join

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, route), handler) for route, handler in _handlers()])
    web_app.settings["page_config_hook"] = _hide_plugins(web_app.settings.get("page_config_hook"))
    serverapp.log.info("attention course: JupyterLab for the %r role; Validate runs "
                       "python -m autograder check", role())
