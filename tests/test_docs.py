"""The docs tell the truth about the code, both ways.

Every system check id, every ``RABBITBUS`` settings key (with its default)
and every exception class the code defines is documented under ``docs/``;
and the docs (README included) name no check id, ``rabbitbus.<Name>`` or
settings key that does not exist. The code side is read from the code itself:
check ids from the string literals of ``rabbitbus/``, keys and defaults from
the schema in ``rabbitbus.conf`` (which the checks take their valid keys
from), exceptions from ``rabbitbus.exceptions``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rabbitbus import conf, exceptions
from rabbitbus.models import TaskRecord
from rabbitbus.tasks import options as task_options

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SETTINGS_PAGE = DOCS / "settings.md"
ERRORS_PAGE = DOCS / "errors.md"
CHECK_ID = re.compile(r"^(?:rabbitbus\.)?([EW]\d{3})$")
CHECK_ID_IN_TEXT = re.compile(r"\b([EW]\d{3})\b")
DOTTED_CLASS = re.compile(r"\brabbitbus((?:\.[a-z_]+)*)\.([A-Z]\w*)\b")
TABLE_ROW = re.compile(r"^\| `?([A-Za-z_0-9]+)`? \|(.*)\|$", re.MULTILINE)
SECTION = re.compile(r"^## `([A-Z_]+)")
SETTING_REFERENCE = re.compile(
    r"\b(RABBITBUS|[A-Z]+)\[[\"']([A-Z_]+)[\"']\]((?:\[[\"'][A-Z_]+[\"']\])?)"
)
UPPER_CASE_WORD = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")
#: Upper-case names the docs may use that are not RABBITBUS keys: environment variables
#: (OpenTelemetry's and Grafana's included), SQL, a DATABASES key.
ELSEWHERE = re.compile(
    r"^((DJANGO|DEMO|RABBITBUS|PROMETHEUS|OTEL|GF)_\w+|\w+_URL|LISTEN|NOTIFY|ATOMIC_REQUESTS)$"
)

#: Each section of docs/settings.md and the keys the code accepts there.
SECTIONS: dict[str, type] = {
    "CONNECTIONS": conf.ConnectionOptions,
    "TLS": conf.TLSOptions,
    "EXCHANGES": conf.ExchangeOptions,
    "QUEUES": conf.QueueOptions,
    "WORKER": conf.WorkerSettings,
    "OUTBOX": conf.OutboxSettings,
    "MANAGEMENT": conf.ManagementSettings,
    "MONITORING": conf.MonitoringSettings,
    "BRIDGES": conf.BridgeOptions,
    "METRICS": conf.MetricsSettings,
}
SCHEMA: dict[str, frozenset[str]] = {
    "RABBITBUS": frozenset(conf.DEFAULTS),
    **{name: conf.keys(section) for name, section in SECTIONS.items()},
}


def doc_texts() -> dict[str, str]:
    """Every page under docs/ and the README, by name."""
    pages = {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}
    pages["README.md"] = (ROOT / "README.md").read_text()
    return pages


def code_check_ids() -> set[str]:
    """Every check id written as a string literal in rabbitbus/ (not in docstrings or comments)."""
    found = set()
    for path in (ROOT / "rabbitbus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = CHECK_ID.match(node.value)
                if match:
                    found.add(match.group(1))
    return found


def sections(text: str) -> dict[str, dict[str, str]]:
    """``## `NAME` ...`` sections of a page -> {first column: rest of the row} of their tables."""
    result: dict[str, dict[str, str]] = {}
    for chunk in re.split(r"^(?=## )", text, flags=re.MULTILINE):
        heading = SECTION.match(chunk)
        if heading:
            rows = TABLE_ROW.findall(chunk)
            result[heading.group(1)] = {key: rest for key, rest in rows if key != "key"}
    return result


def check_table(text: str) -> set[str]:
    """The ids in the table of the "System checks" section."""
    table = text.split("## System checks", 1)[1]
    return {key for key, _ in TABLE_ROW.findall(table) if CHECK_ID.match(key)}


def code_defaults() -> dict[str, dict[str, Any]]:
    """Every default of the schema, by settings section."""
    top = {k: v for k, v in conf.DEFAULTS.items() if k not in ("CONNECTIONS", "WORKER")}
    return {"RABBITBUS": top, **{n: conf.defaults(s) for n, s in SECTIONS.items()}}


def shown(value: Any) -> str:
    """How a default is written in a table cell."""
    if isinstance(value, tuple):
        return "(" + ", ".join(shown(item) for item in value) + ")"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def missing_defaults(documented: dict[str, dict[str, str]]) -> list[str]:
    """Keys whose documented default cell does not show the code's default."""
    missing = []
    for section, defaults in code_defaults().items():
        for key, value in defaults.items():
            cell = documented.get(section, {}).get(key, "").split("|")[0]
            if f"`{shown(value)}`" not in cell:
                missing.append(f"{section}[{key}] = {shown(value)}: {cell.strip()!r}")
    return missing


def undocumented_check_ids(page: str) -> tuple[set[str], set[str]]:
    """(ids in code but not in the table, ids in the table but not in code)."""
    code, table = code_check_ids(), check_table(page)
    return code - table, table - code


def test_every_check_id_is_in_the_table_and_no_other() -> None:
    missing, unknown = undocumented_check_ids(SETTINGS_PAGE.read_text())
    assert not missing, f"check ids not documented in docs/settings.md: {sorted(missing)}"
    assert not unknown, f"docs/settings.md lists check ids the code lacks: {sorted(unknown)}"


def test_a_check_id_left_out_is_caught() -> None:
    page = SETTINGS_PAGE.read_text()
    pruned = re.sub(r"^\| E041 \|.*\n", "", page, flags=re.MULTILINE)
    assert undocumented_check_ids(pruned) == ({"E041"}, set())


def test_the_docs_name_no_check_id_the_code_lacks() -> None:
    code = code_check_ids()
    unknown = {
        f"{name}: {check_id}"
        for name, text in doc_texts().items()
        for check_id in CHECK_ID_IN_TEXT.findall(text)
        if check_id not in code
    }
    assert not unknown, sorted(unknown)


def test_every_settings_key_is_documented_and_no_other() -> None:
    documented = sections(SETTINGS_PAGE.read_text())
    for section, keys in SCHEMA.items():
        assert section in documented, f"docs/settings.md has no section for {section}"
        assert set(documented[section]) == set(keys), (
            f"{section}: undocumented {sorted(set(keys) - set(documented[section]))}, "
            f"not in the code {sorted(set(documented[section]) - set(keys))}"
        )


def test_every_default_is_documented() -> None:
    assert missing_defaults(sections(SETTINGS_PAGE.read_text())) == []


def test_a_wrong_default_is_caught() -> None:
    page = SETTINGS_PAGE.read_text().replace(
        "| `GRACE_PERIOD` | `30` |", "| `GRACE_PERIOD` | `60` |"
    )
    assert missing_defaults(sections(page)) == ["WORKER[GRACE_PERIOD] = 30: '`60`'"]


def test_the_docs_name_no_settings_key_the_code_lacks() -> None:
    unknown = []
    for name, text in doc_texts().items():
        for outer, key, inner in SETTING_REFERENCE.findall(text):
            if outer == "RABBITBUS":
                ok = key in conf.DEFAULTS
                outer, key = key, inner[2:-2] if inner else ""
                if not key:
                    if not ok:
                        unknown.append(f"{name}: RABBITBUS[{outer!r}]")
                    continue
            if outer in SCHEMA and key not in SCHEMA[outer]:
                unknown.append(f"{name}: {outer}[{key!r}]")
    assert not unknown, unknown


def test_every_upper_case_name_is_a_settings_key_or_named_elsewhere() -> None:
    from django.conf import global_settings

    known = {*SCHEMA, *(key for keys in SCHEMA.values() for key in keys), *dir(global_settings)}
    known |= {*task_options.DEFAULTS, *TaskRecord.Status.values, "DAYS"}  # docs/tasks.md
    known.add("TASKS")  # Django 6's setting, which the backport reads on 5.2 too
    unknown = {
        f"{page}: {word}"
        for page, text in doc_texts().items()
        for word in UPPER_CASE_WORD.findall(text)
        if word not in known and not ELSEWHERE.match(word) and not CHECK_ID.match(word)
    }
    assert not unknown, f"neither a RABBITBUS key nor a known name: {sorted(unknown)}"


def test_every_task_backend_option_is_in_the_table_with_its_default() -> None:
    rows = dict(TABLE_ROW.findall((DOCS / "tasks.md").read_text()))
    options = {key: rows[key] for key in rows if key.isupper()}
    assert set(options) == set(task_options.DEFAULTS)
    for key, default in task_options.DEFAULTS.items():
        assert f"`{default!r}`".replace("'", '"') in options[key], key


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in rabbitbus.exceptions or exported by rabbitbus."""
    import rabbitbus

    found = {
        name: value
        for name, value in vars(exceptions).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == exceptions.__name__
    }
    for name in rabbitbus.__all__:
        value = getattr(rabbitbus, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            found[name] = value
    return found


def test_every_exception_class_is_documented_and_no_other() -> None:
    rows = {key for key, _ in TABLE_ROW.findall(ERRORS_PAGE.read_text()) if key != "class"}
    classes = set(exception_classes())
    assert rows == classes, (
        f"undocumented {sorted(classes - rows)}, not in the code {sorted(rows - classes)}"
    )


def tree() -> list[tuple[str, str | None, list[str]]]:
    """(class, parent, built-in bases) for each line of the errors page's tree."""
    block = ERRORS_PAGE.read_text().split("```\n", 2)[1]
    stack: list[str] = []
    nodes = []
    for line in block.splitlines():
        match = re.match(r"^([│ ]*(?:[├└]── )?)(\w+)(?: \(([\w, ]+)\))?", line)
        if not match or match.group(2) == "":
            continue
        depth = len(match.group(1)) // 4
        del stack[depth:]
        nodes.append(
            (match.group(2), stack[-1] if stack else None, (match.group(3) or "").split(", "))
        )
        stack.append(match.group(2))
    return nodes


def test_the_exception_tree_is_the_code() -> None:
    classes = exception_classes()
    nodes = tree()
    for name, parent, builtins in nodes:
        assert name in classes, f"{name} is not an exception class of rabbitbus"
        cls = classes[name]
        bases = {base.__name__ for base in cls.__bases__}
        assert parent is None or parent in bases, f"{name} is not a {parent}"
        assert {b for b in builtins if b} <= bases, f"{name}'s bases are {sorted(bases)}"
    errors = {name for name, cls in classes.items() if issubclass(cls, exceptions.RabbitBusError)}
    assert errors == {name for name, _, _ in nodes}


def resolves(module_path: str, name: str) -> bool:
    """Whether ``rabbitbus<module_path>.<name>`` exists."""
    try:
        module = importlib.import_module("rabbitbus" + module_path)
    except ImportError:
        return False
    return hasattr(module, name)


@pytest.mark.parametrize("page", sorted(doc_texts()))
def test_every_dotted_rabbitbus_name_exists(page: str) -> None:
    text = doc_texts()[page]
    missing = {
        f"rabbitbus{path}.{name}"
        for path, name in DOTTED_CLASS.findall(text)
        if not CHECK_ID.match(name) and not resolves(path, name)
    }
    assert not missing, f"{page} names what does not exist: {sorted(missing)}"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link or anchor, or a page left out of nav, fails."""
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert build.returncode == 0, build.stderr
    assert (site / "settings" / "index.html").exists()


def test_the_readme_links_to_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)[^)]*\)", (ROOT / "README.md").read_text())
    local = [target for target in targets if "://" not in target]
    assert "docs/index.md" in local
    assert [target for target in local if not (ROOT / target).exists()] == []
