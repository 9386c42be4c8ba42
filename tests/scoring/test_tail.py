import torch

from l2t_core.reward import LowRankProxy
from l2t_core.scoring.tail import _projected_deltas_autograd, projected_deltas


def test_closed_form_projected_deltas_equal_autograd(loaded_model):
    model = loaded_model.model
    proxy = LowRankProxy.from_model(model, rank_ratio=0.05)
    readout = proxy.readout(model)
    assert readout is not None  # SmolLM2 has the plain RMSNorm head the closed form needs
    ids = torch.tensor([loaded_model.tokenizer("Janet has 16 eggs and eats 3 of them.")["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    states = out.hidden_states[-2][0]  # real last-layer-scale states; both paths get the same inputs
    targets = ids[0].roll(-1)
    logp_fast, fast = projected_deltas(model, proxy, readout, states, targets)
    logp_slow, slow = _projected_deltas_autograd(model, proxy, states, targets)
    torch.testing.assert_close(logp_fast, logp_slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-6)
