"""docker-compose.yml, Dockerfile and .env.example, checked statically: Docker does not run on our
machines, so this is what stands between a typo and a failed production deploy."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.main import create_app
from powertrip.config import load_config
from powertrip.settings import API_SECRETS, Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = {"temporal-schema", "powertrip-setup"}
POWERTRIP = {"powertrip-setup", "worker", "api"}
VERSION_TAG = re.compile(r"^\d+(\.\d+)+(-[a-z0-9.]+)?$")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """Uncommented KEY=value lines of .env.example."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def env_example_mentions() -> set[str]:
    """Every POWERTRIP_* name in .env.example, commented examples included."""
    return set(re.findall(r"\b(POWERTRIP_[A-Z0-9_]+)=", (REPO / ".env.example").read_text()))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def resolve(text: str, values: dict[str, str]) -> str:
    """Compose interpolation: `.env` values, else the default after `:-`."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.groups()
        if values.get(name):
            return values[name]
        assert op != ":?", f"{name} is required by the compose file but not set in .env.example"
        return rest or ""

    return INTERPOLATION.sub(one, text)


def setting_names() -> set[str]:
    return {f"POWERTRIP_{name.upper()}" for name in Settings.model_fields}


def test_every_service_is_there() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-ui",
        "powertrip-setup",
        "worker",
        "api",
    }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_to_real_versions(name: str) -> None:
    image = resolve(SERVICES[name]["image"], env_example())
    repository, _, tag = image.rpartition(":")
    assert repository and tag, f"{name}: {image} has no tag"
    assert tag != "latest" and VERSION_TAG.match(tag), f"{name}: {image} is not a pinned version"
    assert "auto-setup" not in repository, "temporalio/auto-setup is deprecated"


def test_temporal_server_and_schema_tools_are_the_same_release() -> None:
    server = SERVICES["temporal"]["image"]
    tools = SERVICES["temporal-schema"]["image"]
    assert server.startswith("temporalio/server:") and tools.startswith("temporalio/admin-tools:")
    assert server.split(":")[1] == tools.split(":")[1]
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_one_image_for_worker_api_and_setup() -> None:
    images = {SERVICES[name]["image"] for name in POWERTRIP}
    assert len(images) == 1
    assert all(SERVICES[name]["build"] == "." for name in POWERTRIP)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_health_checks(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check is not None, f"{name} has no healthcheck"
    if name in ONE_SHOT:
        # A one-shot job is done, not healthy: dependents wait for it to complete.
        assert check == {"disable": True}
        assert str(SERVICES[name]["restart"]).startswith("on-failure")
        return
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name}: healthcheck without {key}"


def test_health_checks_probe_the_endpoints_the_code_serves() -> None:
    api_check = " ".join(SERVICES["api"]["healthcheck"]["test"])
    api_port = SERVICES["api"]["command"][SERVICES["api"]["command"].index("--port") + 1]
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", api_check)
    assert match and match.group(1) == api_port
    paths = set(create_app(None).openapi()["paths"])
    assert match.group(2) == "/readyz" and "/readyz" in paths and "/metrics" in paths

    worker = SERVICES["worker"]
    bind = environment(worker)["POWERTRIP_METRICS_BIND"]
    port = bind.rsplit(":", 1)[1]
    assert bind.startswith("0.0.0.0:"), "metrics must be reachable from Prometheus"
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert port in worker["expose"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_conditions(name: str) -> None:
    depends = SERVICES[name].get("depends_on", {})
    if name == "postgresql":
        assert depends == {}
        return
    assert isinstance(depends, dict) and depends, f"{name}: depends_on needs conditions"
    for dependency, spec in depends.items():
        assert dependency in SERVICES
        expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
        assert spec == {"condition": expected}, f"{name} -> {dependency}"


def test_start_order_reaches_the_worker_and_api() -> None:
    def chain(name: str) -> list[str]:
        parents = list(SERVICES[name].get("depends_on", {}))
        return [name] + (chain(parents[0]) if parents else [])

    expected = ["powertrip-setup", "temporal", "temporal-schema", "postgresql"]
    assert chain("worker") == ["worker", *expected]
    assert chain("api") == ["api", *expected]


def test_ports() -> None:
    published: list[str] = []
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            parts = str(port).split(":")
            assert len(parts) in (2, 3) and all(p.isdigit() for p in parts[-2:]), (name, port)
            published.append(parts[-2])
            if name in ("temporal", "temporal-ui"):
                assert parts[0] == "127.0.0.1", f"{name} must not be exposed beyond this host"
    assert len(published) == len(set(published)), "two services publish the same host port"
    assert "ports" not in SERVICES["worker"], "2 replicas cannot share a host port"
    assert [str(p) for p in SERVICES["api"]["ports"]] == ["8000:8000"]


def test_every_powertrip_variable_is_a_real_setting() -> None:
    known = setting_names()
    passed = set(env_example_mentions())
    for name in POWERTRIP:
        passed |= {key for key in environment(SERVICES[name]) if key.startswith("POWERTRIP_")}
    for service in SERVICES.values():
        text = yaml.safe_dump(service)
        passed |= {m for m in INTERPOLATION.findall(text) for m in [m[0]] if "POWERTRIP" in m}
    unknown = passed - known
    assert not unknown, f"not settings (typo?): {sorted(unknown)}"


def test_every_required_setting_is_provided() -> None:
    provided = set(env_example())
    for name in POWERTRIP:
        assert SERVICES[name]["env_file"] == ".env"
        provided |= set(environment(SERVICES[name]))
    required = {
        f"POWERTRIP_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.is_required()
    } | {f"POWERTRIP_{name.upper()}" for name in API_SECRETS}
    assert required <= provided, sorted(required - provided)


def test_compose_settings_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the worker container ends up with loads (types, TLS checks), the way the
    container loads it: from environment variables."""
    values = env_example()
    env = {**values, **{k: resolve(v, values) for k, v in environment(SERVICES["worker"]).items()}}
    for key in [k for k in os.environ if k.startswith("POWERTRIP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("POWERTRIP_") and key != "POWERTRIP_CONFIG":
            monkeypatch.setenv(key, value or "placeholder-secret")
    settings = Settings()
    assert settings.metrics_bind == "0.0.0.0:9464"
    stop = SERVICES["worker"]["stop_grace_period"]
    assert int(stop.removesuffix("s")) > settings.graceful_shutdown_seconds, (
        "Docker would SIGKILL a worker before its in-flight activities finish"
    )
    assert SERVICES["worker"]["deploy"]["replicas"] == 2


def test_every_interpolated_variable_has_a_value_or_default() -> None:
    values = env_example()
    resolve((REPO / "docker-compose.yml").read_text(), values)  # raises on a missing `:?` one
    assert values["POSTGRES_PASSWORD"] and values["CONFIG_FILE"]


def test_mounted_files_exist_and_the_example_config_loads() -> None:
    values = env_example()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = resolve(str(volume), values).split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    config = load_config(REPO / values["CONFIG_FILE"])
    assert config.rule_set().rules
    dynamic = environment(SERVICES["temporal"])["DYNAMIC_CONFIG_FILE_PATH"]
    assert (REPO / "deploy" / "dynamicconfig" / Path(dynamic).name).is_file()
    yaml.safe_load((REPO / "deploy" / "dynamicconfig" / Path(dynamic).name).read_text())


def test_commands_run_modules_that_exist() -> None:
    for name in POWERTRIP:
        command = SERVICES[name]["command"]
        assert command[:2] == ["python", "-m"], name
        spec = importlib.util.find_spec(command[2])
        assert spec is not None, f"{name}: no module {command[2]}"
        if spec.submodule_search_locations:  # a package runs its __main__
            assert importlib.util.find_spec(f"{command[2]}.__main__"), f"{name}: no __main__"
    schema = SERVICES["temporal-schema"]["command"][0]
    assert schema == "/scripts/temporal-schema.sh"
    assert (REPO / "deploy" / "temporal-schema.sh").read_text().startswith("#!/bin/sh")


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile():
        if instruction == "FROM":
            result.append([])
        result[-1].append((instruction, args))
    return result


def test_dockerfile_base_images_are_pinned_to_the_python_we_support() -> None:
    bases = [args.split()[0] for instruction, args in dockerfile() if instruction == "FROM"]
    assert bases
    for base in bases:
        if base == "build":
            continue
        name, _, tag = base.partition(":")
        assert name == "python" and re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), base


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "final stage has no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    user_index = max(i for i, (instruction, _) in enumerate(final) if instruction == "USER")
    assert all(instruction != "RUN" for instruction, _ in final[user_index + 1 :])
    assert any(instruction == "CMD" for instruction, _ in final)


def dockerignored(path: str) -> bool:
    """.dockerignore semantics that we use: patterns in order, the last match wins, `!` keeps."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            ignored = not keep
        elif pattern.startswith("**/") and any(fnmatch.fnmatch(p, pattern[3:]) for p in parts):
            ignored = not keep
    return ignored


def test_dockerfile_copies_files_that_exist_and_are_not_dockerignored() -> None:
    copies = [
        args for instruction, args in dockerfile() if instruction == "COPY" and "--from" not in args
    ]
    assert copies
    for args in copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), source
            assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    for unwanted in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env"):
        assert dockerignored(unwanted), unwanted


def test_the_image_holds_what_the_commands_need() -> None:
    copied = " ".join(args for instruction, args in dockerfile() if instruction == "COPY")
    for needed in ("powertrip", "workflows", "activities", "api", "worker.py", "pyproject.toml"):
        assert needed in copied
    assert "deploy/temporal_setup.py" in copied
    pyproject = (REPO / "pyproject.toml").read_text()
    # Installed (not editable) in the image: the rule packs must be package data.
    assert '"rulepacks/*.yaml"' in pyproject
    assert list((REPO / "powertrip" / "rulepacks").glob("*.yaml"))


def test_the_temporal_web_ui_is_read_only() -> None:
    """Signals from the browser could not forge a decision (each is signed), but terminate and
    reset would end or rewind an event's record: the bundled Web UI offers no write action."""
    assert environment(SERVICES["temporal-ui"])["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
