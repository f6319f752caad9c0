"""docker-compose.yml runs commands that exist, with settings the project reads.

Docker cannot pull images here, so the file is checked by reading it: every
``python manage.py <command>`` is a management command Django knows, every
consumer name given to ``rabbit_consume`` is registered, the services wait
for a healthy broker and database, and they set only environment variables
``demo_shop/settings.py`` reads. The ``observability`` profile's Prometheus
scrapes every process on the port it serves metrics on, its Grafana is
provisioned with that Prometheus and docs/grafana/rabbitbus.json, and its Jaeger
receives OTLP where the docs send the demo's traces.
"""

from __future__ import annotations

import ast
import importlib
import re
import runpy
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

import demo_shop.settings as demo_settings
from demo_shop import processes
from rabbitbus.consuming import registry
from rabbitbus.observability import views as metrics_views

ROOT = Path(__file__).resolve().parent.parent
#: The services built from the project's Dockerfile.
APP_SERVICES = ("setup", "web", *processes.WORKERS)
LONG_LIVED = APP_SERVICES[1:]
#: The three RabbitMQ nodes of the profile `cluster`.
CLUSTER_NODES = ("rabbit1", "rabbit2", "rabbit3")
#: The services of the ``observability`` profile.
OBSERVABILITY = ("prometheus", "grafana", "jaeger")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def shell_commands(command: str | list[str]) -> list[list[str]]:
    """The argv of each command a service runs (``sh -c "a && b"`` gives two)."""
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        script = command[2]
    elif isinstance(command, list):
        return [command]
    else:
        script = command
    parts = re.split(r"&&|\|\||;|[()]", script)
    return [shlex.split(part) for part in parts if part.strip()]


def manage_py(command: str | list[str]) -> list[list[str]]:
    """``[name, *args]`` of each ``python manage.py name args`` in a service's command."""
    argvs = [argv for argv in shell_commands(command) if "manage.py" in argv]
    for argv in argvs:
        assert argv[argv.index("manage.py") - 1] == "python", argv
    return [argv[argv.index("manage.py") + 1 :] for argv in argvs]


def settings_environment() -> set[str]:
    """Every ``os.environ.get("X")`` / ``os.environ["X"]`` name in demo_shop/settings.py."""
    tree = ast.parse((ROOT / "demo_shop" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.get":
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant):
            names.add(key.value)
    return names


def test_the_shop_has_all_its_services(services: dict[str, Any]) -> None:
    assert set(services) == {
        "rabbitmq", "postgres", *APP_SERVICES, *OBSERVABILITY, *CLUSTER_NODES
    }  # fmt: skip
    assert all("build" in services[name] for name in APP_SERVICES)
    profiled = {name for name, service in services.items() if "profiles" in service}
    assert profiled == {*OBSERVABILITY, *CLUSTER_NODES}


def test_every_manage_py_command_exists(services: dict[str, Any]) -> None:
    known = get_commands()
    ran = [argv[0] for name in APP_SERVICES for argv in manage_py(services[name]["command"])]
    assert len(ran) >= 9
    assert [command for command in ran if command not in known] == []


def test_rabbit_consume_names_registered_consumers(services: dict[str, Any]) -> None:
    named = []
    for name in APP_SERVICES:
        for argv in manage_py(services[name]["command"]):
            if argv[0] == "rabbit_consume":
                named += [arg for arg in argv[1:] if not arg.startswith("-")]
    assert sorted(named) == ["billing", "inventory", "orders"]
    assert set(named) <= set(registry.consumers)


def test_setup_migrates_seeds_and_declares_the_topology_in_order(
    services: dict[str, Any],
) -> None:
    commands = [argv[0] for argv in manage_py(services["setup"]["command"])]
    assert commands[:3] == ["migrate", "shop_seed", "rabbit_setup"]
    assert services["setup"]["restart"] == "no"


def test_the_workers_run_the_shops_processes(services: dict[str, Any]) -> None:
    commands = {name: shell_commands(services[name]["command"]) for name in LONG_LIVED}
    assert all(len(argvs) == 1 for argvs in commands.values())
    ran = {name: tuple(argvs[0][2:]) for name, argvs in commands.items() if name != "web"}
    assert ran == processes.WORKERS


def test_web_serves_the_asgi_application_on_all_interfaces(services: dict[str, Any]) -> None:
    [argv] = shell_commands(services["web"]["command"])
    module, _, attribute = argv[-1].partition(":")
    assert argv[:3] == ["python", "-m", "daphne"]
    assert shlex.join(argv[3:-1]) == "-b 0.0.0.0 -p 8000"
    assert f"{module}.{attribute}" == settings.ASGI_APPLICATION
    assert services["web"]["ports"] == ["8000:8000"]


@pytest.mark.parametrize("name", ["rabbitmq", "postgres"], ids=["broker", "database"])
def test_the_broker_and_the_database_have_healthchecks(services: dict[str, Any], name: str) -> None:
    assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_every_app_service_waits_for_a_healthy_broker_and_database(
    services: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["rabbitmq"] == {"condition": "service_healthy"}, name
        assert depends_on["postgres"] == {"condition": "service_healthy"}, name


def test_the_workers_start_after_setup_succeeded(services: dict[str, Any]) -> None:
    for name in LONG_LIVED:
        setup = services[name]["depends_on"]["setup"]
        assert setup == {"condition": "service_completed_successfully"}, name


def test_app_services_set_only_variables_the_settings_read(services: dict[str, Any]) -> None:
    read = settings_environment()
    assert {"DATABASE_URL", "RABBITBUS_URL", "DJANGO_ALLOWED_HOSTS"} <= read
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert {"DATABASE_URL", "RABBITBUS_URL"} <= set(environment), name
        assert set(environment) - read == set(), name


def test_the_urls_point_at_the_compose_broker_and_database(services: dict[str, Any]) -> None:
    environment = services["web"]["environment"]
    database = urlsplit(environment["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert (database.hostname, database.username, database.password, database.path) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    assert urlsplit(environment["RABBITBUS_URL"]).hostname == "rabbitmq"


def test_compose_runs_without_debug_and_with_named_hosts(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["DJANGO_DEBUG"] == "0", name
        assert "*" not in environment["DJANGO_ALLOWED_HOSTS"].split(","), name


def test_the_demo_settings_leave_debug_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    assert importlib.reload(demo_settings).DEBUG is False
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    assert importlib.reload(demo_settings).DEBUG is True
    monkeypatch.delenv("DJANGO_DEBUG")
    importlib.reload(demo_settings)


def test_the_image_collects_the_static_files_whitenoise_serves() -> None:
    runs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "manage.py" in line]
    assert any("collectstatic --no-input" in line for line in runs)
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE


def test_the_image_installs_no_benchmark_dependency() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    requirements = (ROOT / "requirements.txt").read_text()
    marker = "# --- dev/bench only"
    assert marker in requirements and "celery" in requirements.split(marker)[1]
    assert "celery" not in requirements.split(marker)[0]
    assert "/^# --- dev\\/bench only/,$d" in dockerfile


def test_the_management_api_is_the_compose_brokers(services: dict[str, Any]) -> None:
    url = services["web"]["environment"]["RABBITBUS_MANAGEMENT_URL"]
    assert urlsplit(url).hostname == "rabbitmq"
    assert "15672:15672" in services["rabbitmq"]["ports"]


def test_the_cluster_profile_has_three_nodes_that_cluster_at_boot(
    services: dict[str, Any],
) -> None:
    conf = (ROOT / "scripts" / "cluster-compose.conf").read_text()
    cookies = set()
    for name in CLUSTER_NODES:
        node = services[name]
        assert node["profiles"] == ["cluster"], name
        assert node["environment"]["RABBITMQ_NODENAME"] == f"rabbit@{node['hostname']}"
        assert node["hostname"] == name
        assert f"= rabbit@{name}\n" in conf
        mount = node["volumes"][0].split(":")
        assert (ROOT / mount[0]).resolve() == ROOT / "scripts" / "cluster-compose.conf"
        assert mount[1].startswith("/etc/rabbitmq/conf.d/")
        cookies.add(node["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"])
        assert node["environment"]["RABBITMQ_CTL_ERL_ARGS"] in cookies
        assert node["healthcheck"]["test"][0] == "CMD"
    assert len(cookies) == 1 and next(iter(cookies)).startswith("-setcookie ")
    assert "classic_config" in conf
    assert all("profiles" not in services[name] for name in ("rabbitmq", *APP_SERVICES))


def test_with_the_cluster_profile_the_app_waits_for_its_nodes(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        for node in CLUSTER_NODES:
            assert depends_on[node] == {"condition": "service_healthy", "required": False}
        assert services[name]["environment"]["RABBITBUS_URLS"] == "${RABBITBUS_URLS:-}", name
    assert "RABBITBUS_URLS" in settings_environment()


def test_the_documented_cluster_command_points_the_demo_at_all_three_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = (ROOT / "docker-compose.yml").read_text()
    [line] = [line for line in header.splitlines() if "RABBITBUS_URLS=" in line]
    urls = line.split("RABBITBUS_URLS=")[1].split()[0]
    assert [urlsplit(url).hostname for url in urls.split(",")] == list(CLUSTER_NODES)
    monkeypatch.setenv("RABBITBUS_URLS", urls)
    try:
        connection = importlib.reload(demo_settings).RABBITBUS["CONNECTIONS"]["default"]
        assert connection["URLS"] == urls.split(",") and "URL" not in connection
        from rabbitbus.conf.connection import parse_connection

        parsed = parse_connection("default", connection)
        assert [endpoint.host for endpoint in parsed.endpoints] == list(CLUSTER_NODES)
    finally:
        monkeypatch.delenv("RABBITBUS_URLS")
        importlib.reload(demo_settings)
    assert "URL" in demo_settings.RABBITBUS["CONNECTIONS"]["default"]


# -- the observability profile -------------------------------------------------------------


def mounts(service: dict[str, Any], *, read_only: bool = False) -> dict[str, Path]:
    """Each bind mount of ``service`` (``read_only``: the ``:ro`` ones, files we ship):
    its path in the container -> the file or directory here."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        if source.startswith("./") and (not read_only or options == ["ro"]):
            found[target] = ROOT / source
    return found


def mounted(service: dict[str, Any], path: str) -> Path:
    """The file here that ``service`` sees at ``path``."""
    for target, source in mounts(service).items():
        if path == target or path.startswith(target + "/"):
            return source / Path(path).relative_to(target)
    raise AssertionError(f"nothing mounted at {path}")


def container_ports(service: dict[str, Any]) -> set[int]:
    """The ports a service's container listens on, as compose declares them."""
    published = [str(port).rsplit(":", 1)[-1] for port in service.get("ports", [])]
    return {int(port) for port in [*published, *service.get("expose", [])]}


def app_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """demo_shop/settings.py as ``service``'s environment makes it (OTLP left out)."""
    for name, value in service["environment"].items():
        if not name.startswith("OTEL_"):
            monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "demo_shop" / "settings.py"))


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, Any]) -> dict[str, Any]:
    config = mounted(services["prometheus"], "/etc/prometheus/prometheus.yml")
    return yaml.safe_load(config.read_text())


def scrape_targets(config: dict[str, Any]) -> dict[str, tuple[str, int, str]]:
    """Each job's one target as (host, port, metrics path)."""
    targets = {}
    for job in config["scrape_configs"]:
        [static] = job["static_configs"]
        [target] = static["targets"]
        host, port = target.rsplit(":", 1)
        targets[job["job_name"]] = (host, int(port), job.get("metrics_path", "/metrics"))
    return targets


def test_the_observability_services_run_only_with_their_profile(
    services: dict[str, Any],
) -> None:
    images = {name: services[name]["image"].split(":")[0] for name in OBSERVABILITY}
    assert images == {
        "prometheus": "prom/prometheus",
        "grafana": "grafana/grafana",
        "jaeger": "jaegertracing/all-in-one",
    }
    assert all(services[name]["profiles"] == ["observability"] for name in OBSERVABILITY)


def test_every_file_mounted_read_only_exists(services: dict[str, Any]) -> None:
    sources = [
        source
        for service in services.values()
        for source in mounts(service, read_only=True).values()
    ]
    assert len(sources) == 4 + len(CLUSTER_NODES)  # observability files, each node its conf
    assert [source for source in sources if not source.exists()] == []


def test_prometheus_scrapes_every_process_of_the_shop(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    scraped = {host for host, _, _ in scrape_targets(prometheus_config).values()}
    assert scraped == set(LONG_LIVED)


def test_workers_serve_metrics_on_the_port_prometheus_scrapes(
    services: dict[str, Any], prometheus_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = scrape_targets(prometheus_config)
    for name in processes.WORKERS:
        [(host, port, path)] = [target for target in targets.values() if target[0] == name]
        assert path == "/metrics", name
        assert port in container_ports(services[name]), name
        metrics = app_settings(services[name], monkeypatch)["RABBITBUS"]["METRICS"]
        assert metrics == {"PORT": port}, name


def test_prometheus_scrapes_the_web_servers_metrics_view(
    services: dict[str, Any], prometheus_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    [(host, port, path)] = [t for t in scrape_targets(prometheus_config).values() if t[0] == "web"]
    [argv] = shell_commands(services["web"]["command"])
    assert port == int(argv[argv.index("-p") + 1])
    assert resolve(path, urlconf="demo_shop.urls").func is metrics_views.metrics
    web = app_settings(services["web"], monkeypatch)
    assert web["RABBITBUS"]["METRICS"] is not None
    assert host in web["ALLOWED_HOSTS"]  # Prometheus asks for Host: web:8000


def test_grafana_reads_the_compose_prometheus(services: dict[str, Any]) -> None:
    folder = mounted(services["grafana"], "/etc/grafana/provisioning/datasources")
    [config] = [yaml.safe_load(path.read_text()) for path in folder.glob("*.yml")]
    [source] = config["datasources"]
    url = urlsplit(source["url"])
    assert (source["type"], url.hostname) == ("prometheus", "prometheus")
    assert url.port in container_ports(services["prometheus"])
    assert source["isDefault"] is True  # the dashboard's datasource variable picks it


def test_grafana_provisions_the_dashboard_from_the_docs(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    folder = mounted(grafana, "/etc/grafana/provisioning/dashboards")
    [config] = [yaml.safe_load(path.read_text()) for path in folder.glob("*.yml")]
    [provider] = config["providers"]
    dashboards = mounted(grafana, provider["options"]["path"])
    assert dashboards == ROOT / "docs" / "grafana"
    assert (dashboards / "rabbitbus.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted(grafana, home) == dashboards / "rabbitbus.json"


def test_grafana_lets_anyone_view_and_admin_edit(services: dict[str, Any]) -> None:
    environment = services["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    login = (environment["GF_SECURITY_ADMIN_USER"], environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert login == ("admin", "admin")


def test_traces_go_to_jaeger_only_when_asked(services: dict[str, Any]) -> None:
    endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
    for name in APP_SERVICES:  # compose's own variable, empty unless given
        assert services[name]["environment"][endpoint] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    docs = (ROOT / "docs" / "observability.md").read_text()
    compose_lines = [line for line in docs.splitlines() if "docker compose" in line]
    documented = set(re.findall(endpoint + r"=(http://[\w.:-]+)", "\n".join(compose_lines)))
    assert documented, "docs/observability.md runs compose with no endpoint"
    for url in documented:
        parts = urlsplit(url)
        assert parts.hostname == "jaeger"
        assert parts.port in container_ports(services["jaeger"])
