"""Episodes: the prompt that asks for `<episode_k>` steps, and the parser that recovers them from any text."""

from l2t_core.episodes.parser import DEFAULT_MAX_EPISODES, Episode, ParsedCompletion, parse_episodes
from l2t_core.episodes.prompt import (
    ANSWER_INSTRUCTION,
    EPISODE_SYSTEM_PROMPT,
    build_messages,
    render_prompt,
)

__all__ = [
    "ANSWER_INSTRUCTION",
    "DEFAULT_MAX_EPISODES",
    "EPISODE_SYSTEM_PROMPT",
    "Episode",
    "ParsedCompletion",
    "build_messages",
    "parse_episodes",
    "render_prompt",
]
