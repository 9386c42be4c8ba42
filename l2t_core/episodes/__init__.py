"""Episodes: the prompt formats that ask for `<episode_k>` steps, and the parser that recovers them from any text."""

from l2t_core.episodes.parser import DEFAULT_MAX_EPISODES, Episode, ParsedCompletion, episode_body, parse_episodes
from l2t_core.episodes.prompt import (
    ANSWER_INSTRUCTION,
    DEFAULT_PROMPT_FORMAT,
    EPISODE_SYSTEM_PROMPT,
    PROMPT_FORMATS,
    Message,
    PromptFormat,
    RenderedPrompt,
    prompt_format,
    render_prompt,
)

__all__ = [
    "ANSWER_INSTRUCTION",
    "DEFAULT_MAX_EPISODES",
    "DEFAULT_PROMPT_FORMAT",
    "EPISODE_SYSTEM_PROMPT",
    "PROMPT_FORMATS",
    "Episode",
    "Message",
    "ParsedCompletion",
    "episode_body",
    "PromptFormat",
    "RenderedPrompt",
    "parse_episodes",
    "prompt_format",
    "render_prompt",
]
