"""The one core request: everything a `ReasoningPipeline.run` needs, built once at the edge.

The HTTP routes (`body.to_core(...)`), `l2t generate`, the evaluation and the trainer all build a
`GenerationRequest` and pass it down whole, as vLLM turns a protocol model into `SamplingParams` once.
Names are resolved here (the strategy), option mappings become typed settings here (`BeamPruneConfig`,
`AdaptiveConfig`), and a pairing that makes no sense cannot be built: beam settings on a reranker, or
adaptive settings on beam-prune, raise `InvalidRequest` naming the field. A strategy that takes settings
always gets them (its defaults for this request when none were given), so its runner never re-parses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2t_core.engines import SamplingParams
from l2t_core.episodes import RenderedPrompt
from l2t_core.errors import InvalidRequest
from l2t_core.reward import RewardConfig
from l2t_core.search.adaptive import AdaptiveConfig
from l2t_core.search.beam_prune import BeamPruneConfig
from l2t_core.search.strategies import STRATEGIES, Strategy, get_strategy

SearchConfig = BeamPruneConfig | AdaptiveConfig


@dataclass(frozen=True)
class GenerationRequest:
    prompt: RenderedPrompt
    sampling: SamplingParams
    strategy: Strategy
    reward: RewardConfig | None = None  # None: the scorer's settings
    reference: str | None = None  # J aims at it for every candidate; `oracle` needs it
    search: SearchConfig | None = None  # the settings of the strategies that take them, and only theirs
    progress: bool = False  # fill in every episode's progress (multi-target J over the pool's answers)

    def __post_init__(self) -> None:
        if not self.strategy.served and self.reference is None:
            raise InvalidRequest(f"strategy {self.strategy.name!r} needs the reference answer", param="reference")
        wanted = self.strategy.settings
        if self.search is None and wanted is not None:
            object.__setattr__(self, "search", wanted.from_request(self.sampling, {}))
        elif self.search is not None and not isinstance(self.search, wanted or ()):
            raise _misplaced(type(self.search), self.strategy)
        if isinstance(self.search, BeamPruneConfig):
            for name in ("presence_penalty", "frequency_penalty"):
                if getattr(self.sampling, name):
                    raise InvalidRequest(
                        f"{name} is not supported with strategy 'beam_prune': it samples each episode as a "
                        "continuation of its own, so a penalty would count only that episode's tokens",
                        param=name,
                    )
        if isinstance(self.search, AdaptiveConfig):
            select = get_strategy(self.search.select)
            if select.rank is None or not select.served:
                raise InvalidRequest(f"adaptive select must be a served reranker, not {select.name!r}", "adaptive")

    @property
    def named_strategies(self) -> tuple[Strategy, ...]:
        """Every strategy this request runs: its own, and the reranker its settings end with (adaptive's
        `select`, beam-prune's `final_strategy`)."""
        if isinstance(self.search, AdaptiveConfig):
            return (self.strategy, get_strategy(self.search.select))
        if isinstance(self.search, BeamPruneConfig):
            return (self.strategy, get_strategy(self.search.final_strategy))
        return (self.strategy,)

    @classmethod
    def build(
        cls,
        prompt: RenderedPrompt,
        sampling: SamplingParams,
        strategy: str,
        reward: RewardConfig | None = None,
        reference: str | None = None,
        beam: Mapping[str, Any] | None = None,
        adaptive: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> GenerationRequest:
        """From an edge's loose pieces: a strategy name (or synonym) and the option mappings a client sent
        (`None` values are "not given"). Options meant for another strategy are refused by name."""
        chosen = get_strategy(strategy)
        given = [(kind, options) for kind, options in ((BeamPruneConfig, beam), (AdaptiveConfig, adaptive)) if options]
        for kind, _ in given:
            if chosen.settings is not kind:
                raise _misplaced(kind, chosen)
        options = dict(given[0][1]) if given else {}
        search = None if chosen.settings is None else chosen.settings.from_request(sampling, options)
        return cls(prompt, sampling, chosen, reward, reference, search, progress)


def _misplaced(kind: type[SearchConfig], strategy: Strategy) -> InvalidRequest:
    """The error for settings sent with a strategy that does not take them, naming the field they came in."""
    needs = next(s.name for s in STRATEGIES.values() if s.settings is kind)
    field = kind.request_field
    return InvalidRequest(f"{field!r} settings need strategy {needs!r}, not {strategy.name!r}", param=field)
