import pytest
import torch

from l2t_core.models import ModelLoadError, load_model, load_models
from l2t_core.models.default_gguf import dequantised_folder, find_default_gguf


def test_default_model_is_the_packaged_gguf_cached_as_safetensors(loaded_model):
    gguf = find_default_gguf()
    assert gguf.name.endswith(".gguf")
    cached = dequantised_folder(gguf)
    assert loaded_model.path == str(cached)
    assert any(cached.glob("*.safetensors"))
    assert loaded_model.model.config.num_hidden_layers == 30
    assert loaded_model.dtype == torch.float32 and not loaded_model.model.training


def test_cached_folder_loads_directly_and_generates_text(loaded_model):
    again = load_model(loaded_model.path, device="cpu")
    ids = again.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = again.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def test_bfloat16_option(loaded_model):
    assert load_model(loaded_model.path, device="cpu", dtype="bfloat16").model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/nonexistent/model/folder", "does not exist"),
        ("./missing.gguf", "does not exist"),
        ("some-org/not-a-cached-model", "not in the local HF cache"),
    ],
)
def test_missing_models_give_clear_errors(name, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(name, device="cpu")


def test_folder_without_config_and_corrupt_weights(tmp_path, loaded_model):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / f).write_bytes((__import__("pathlib").Path(loaded_model.path) / f).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_model(str(broken), device="cpu")


@pytest.mark.parametrize(("kwargs", "message"), [({"dtype": "int3"}, "unknown dtype"), ({"device": "tpu:9"}, "device")])
def test_bad_options(kwargs, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model("default", **kwargs)


def test_a_generator_that_runs_elsewhere_is_read_for_its_tokenizer_only(scorer_model, loaded_model):
    generator, scorer = load_models("default", scorer_model.name, device="cpu", generates_here=False)
    assert generator.model is None and scorer is not None and scorer.model is not None
    assert generator.tokenizer.chat_template == loaded_model.tokenizer.chat_template  # what the prompt needs
    assert generator.path == loaded_model.path  # what vLLM loads its own copy from
    alone, no_scorer = load_models("default", None, device="cpu", generates_here=False)
    assert no_scorer is None and alone.model is not None  # it scores, so it is loaded in full
    with pytest.raises(ModelLoadError, match="no scorer model"):
        load_models("default", None, scorer_device="cpu")
