"""Stream a chat answer token by token, then read its L2T scores and the usage (start `l2t serve` first)."""

from l2t_client import L2TClient

with L2TClient("http://127.0.0.1:8000") as client:
    messages = [{"role": "user", "content": "What is 17 + 25?"}]
    with client.stream_chat_completion(messages, max_tokens=128, stream_options={"include_usage": True}) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                print(choice.delta.content or "", end="", flush=True)
                if choice.l2t is not None:
                    score = choice.l2t.score  # null when the server scores on its engine (no compression term)
                    print(f"\n[answer {choice.l2t.answer!r}, L2T score {score if score is None else round(score, 4)}]")
            if chunk.usage is not None:
                print(chunk.usage)
