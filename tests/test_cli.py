"""`l2t score`, `l2t generate` and `l2t serve`: argument handling, output formats and errors.

What is checked here is the command line, not the model, so the commands run on the session's tiny random
model folder (`--model`), mostly in process; each command keeps at least one real subprocess for its wiring
(`python -m l2t_core.cli score` and `generate`, `python -m app.cli serve` on the real default model)."""

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from l2t_core.cli import build_parser
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT
from l2t_core.search import DEFAULT_STRATEGY
from tests.conftest import cli_in_process

QUESTION = "Janet has 3 apples and buys 4 more. How many apples does she have?"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "l2t_core.cli", *args], capture_output=True, text=True, timeout=600)


def test_score_json_and_table(tmp_path, tiny_model_dir, capsys):
    good = tmp_path / "good.txt"
    good.write_text("<episode_1>She starts with 3 apples.</episode_1>\n<episode_2>3 + 4 = 7</episode_2>\n\\boxed{7}")
    bad = tmp_path / "bad.txt"
    bad.write_text("Apples are red.\n\nThe answer is 12.")
    model = ["--model", str(tiny_model_dir)]
    files = ["--completion-file", str(good), "--completion-file", str(bad)]
    code, stdout, stderr = cli_in_process(
        ["score", "--question", QUESTION, *files, "--reference", "7", "--json", *model], capsys
    )
    assert code == 0, stderr
    candidates = json.loads(stdout)["candidates"]
    assert [c["answer"] for c in candidates] == ["7", "12"]
    episode = candidates[0]["episodes"][0]
    assert set(episode) >= {
        "index",
        "text",
        "start",
        "end",
        "n_tokens",
        "j_before",
        "j_after",
        "fitting_gain",
        "compression_penalty",
        "reward",
    }
    assert good.read_text()[episode["start"] : episode["end"]] == episode["text"]
    table = run("score", "--question", QUESTION, "--completion-file", str(good), "--target", "self", *model)
    assert table.returncode == 0, table.stderr
    assert "answer='7'" in table.stdout and "J_before" in table.stdout


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    missing = cli_in_process(["score", "--question", QUESTION, "--completion-file", str(tmp_path / "nope.txt")], capsys)
    assert missing[0] == 2 and "cannot read completion file" in missing[2]
    assert "Traceback" not in missing[2]
    f = tmp_path / "c.txt"
    f.write_text("1 + 1 = 2")
    empty = cli_in_process(["score", "--question", "  ", "--completion-file", str(f)], capsys)
    assert empty[0] == 2 and "question is empty" in empty[2]
    model = cli_in_process(
        ["score", "--question", QUESTION, "--completion-file", str(f), "--model", "/no/model"], capsys
    )
    assert model[0] == 2 and "does not exist" in model[2]


def test_generate_prints_ranked_candidates(tiny_model_dir, capsys):
    model = ["--model", str(tiny_model_dir)]
    args = ["generate", "What is 2 + 3?", "-n", "2", "--max-tokens", "12", "--seed", "1"]
    code, stdout, stderr = cli_in_process([*args, "--json", *model], capsys)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert len(data["candidates"]) == 2 and data["usage"]["completion_tokens"] > 0
    assert data["strategy"] == DEFAULT_STRATEGY and data["prompt_format"] == DEFAULT_PROMPT_FORMAT
    table = run(*args, "--prompt-format", "plain", "--strategy", "loglik", *model)
    assert table.returncode == 0 and "#1 (sample" in table.stdout and "tokens: prompt" in table.stdout
    assert "strategy loglik, prompt format plain" in table.stdout
    bad = cli_in_process(["generate", "What is 2 + 3?", "-n", "0"], capsys)
    assert bad[0] == 2 and "n must be >= 1" in bad[2]
    budget = cli_in_process(["generate", "What is 2 + 3?", "--strategy", "beam_prune", "--token-budget", "10"], capsys)
    assert budget[0] == 2 and "token_budget must pay for one step" in budget[2]
    search_only = cli_in_process(["generate", "What is 2 + 3?", "--beam-value", "pool"], capsys)
    assert search_only[0] == 2 and "need --strategy beam_prune" in search_only[2]


def test_serve_exits_with_the_reason_when_the_model_does_not_load():
    command = [sys.executable, "-m", "app.cli", "serve", "--model", "/no/such/model", "--port", "0"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "the model failed to load" in out.stderr and "/no/such/model" in out.stderr


def test_serve_says_where_it_is_ready():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        lines = []
        while time.monotonic() < deadline:
            line = server.stderr.readline() if server.stderr else ""
            lines.append(line)
            if f"ready on http://127.0.0.1:{port}" in line or not line:
                break
        assert any(f"ready on http://127.0.0.1:{port}" in line for line in lines), "".join(lines)[-2000:]
        assert f"prompt format {DEFAULT_PROMPT_FORMAT}" in lines[-1] and f"strategy {DEFAULT_STRATEGY}" in lines[-1]
        assert "model default, scorer default," in lines[-1]  # one model generates and scores
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_generate_beam_prune_reports_its_token_spend(tiny_model_dir, capsys):
    args = ["generate", "What is 2 + 3?", "-n", "2", "--max-tokens", "40", "--strategy", "beam_prune", "--json"]
    code, stdout, stderr = cli_in_process([*args, "--model", str(tiny_model_dir)], capsys)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["strategy"] == "beam_prune"
    assert 0 < data["usage"]["completion_tokens"] <= 2 * 40
    assert all(c["finish_reason"] in ("stop", "forced") for c in data["candidates"])


def test_generate_scored_on_the_engine(tiny_model_dir, capsys):
    args = [
        "generate",
        "What is 2 + 3?",
        "-n",
        "2",
        "--max-tokens",
        "12",
        "--seed",
        "1",
        "--model",
        str(tiny_model_dir),
    ]
    code, stdout, stderr = cli_in_process([*args, "--scorer", "engine", "--json"], capsys)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["compression_penalty_absent"] and all(c["score"] is None for c in data["candidates"])
    table = cli_in_process([*args, "--scorer", "engine"], capsys)
    assert table[0] == 0 and "(penalty and reward '-': not measured" in table[1]
    refused = cli_in_process([*args, "--scorer", "engine", "--strategy", "best_of_n"], capsys)
    assert refused[0] == 2 and "'best_of_n'" in refused[2] and "compression penalty" in refused[2]


def test_generate_with_a_scorer_model(scorer_model, capsys):
    from l2t_core.cli import main

    args = ["generate", "What is 2 + 3?", "-n", "2", "--max-tokens", "8", "--seed", "3", "--device", "cpu"]
    assert main([*args, "--scorer-model", scorer_model.name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "default" and data["scorer_model"] == scorer_model.name
    for candidate in data["candidates"]:  # scored in the scorer's vocabulary
        assert candidate["n_tokens"] == len(
            scorer_model.tokenizer(candidate["text"], add_special_tokens=False).input_ids
        )
    assert main([*args, "--scorer-model", scorer_model.name]) == 0
    assert f"scored by {scorer_model.name};" in capsys.readouterr().out


def serve_args(*argv: str):
    from app.cli import add_serve

    return build_parser([add_serve]).parse_args(["serve", *argv])


def test_every_server_setting_is_a_serve_flag(monkeypatch):
    from app.cli import settings_from_args
    from app.core.config import Settings

    monkeypatch.delenv("L2T_MAX_QUEUE", raising=False)
    monkeypatch.delenv("L2T_API_KEY", raising=False)
    defaults = vars(serve_args())
    scalar = set(Settings.model_fields) - {"vllm_args"}  # a mapping: --vllm-arg KEY=VALUE, --vllm-config FILE
    assert scalar <= set(defaults) and {"vllm_assignments", "vllm_config"} <= set(defaults)
    assert all(defaults[name] is None for name in scalar)  # unset: the environment's value stands
    assert all(info.description for info in Settings.model_fields.values())
    settings = settings_from_args(serve_args("--max-queue", "3", "--api-key", "k", "--served-model-name", "m"))
    assert (settings.max_queue, settings.api_key, settings.model_id) == (3, "k", "m")
    assert settings.request_timeout_s == Settings.model_fields["request_timeout_s"].default
    assert settings_from_args(serve_args("--max-request-tokens", "4096", "--request-timeout-s", "9.5")).model_dump(
        include={"max_request_tokens", "request_timeout_s"}
    ) == {"max_request_tokens": 4096, "request_timeout_s": 9.5}


def test_serve_flags_win_over_the_environment_and_are_checked(monkeypatch):
    from app.cli import settings_from_args
    from l2t_core.cli import CliError

    monkeypatch.setenv("L2T_MAX_QUEUE", "5")
    assert settings_from_args(serve_args()).max_queue == 5
    assert settings_from_args(serve_args("--max-queue", "7")).max_queue == 7
    with pytest.raises(CliError, match="max_queue"):
        settings_from_args(serve_args("--max-queue", "0"))


def test_serve_flag_choices_come_from_the_registries(capsys):
    from app.cli import main as app_main
    from l2t_core.engines import ENGINES
    from l2t_core.models.loading import DTYPES
    from l2t_core.search import SERVED_STRATEGIES

    assert serve_args("--engine", "openai", "--dtype", "bfloat16").engine == "openai"
    for flag, names in (("--engine", ENGINES), ("--dtype", tuple(DTYPES)), ("--strategy", SERVED_STRATEGIES)):
        with pytest.raises(SystemExit):
            serve_args(flag, "nonsense")
        assert "{" + ",".join(names) + "}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app_main(["serve", "--help"])
    assert "L2T_MAX_QUEUE" in capsys.readouterr().out


def test_listening_beyond_this_machine_without_a_key_is_warned_about() -> None:
    from app.cli import exposure_warning
    from app.core.config import Settings

    assert exposure_warning(Settings(host="127.0.0.1")) is None
    assert exposure_warning(Settings(host="0.0.0.0", api_key="k")) is None
    warning = exposure_warning(Settings(host="0.0.0.0"))
    assert warning is not None and "no API key" in warning and "L2T_API_KEY" in warning
