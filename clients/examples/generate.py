"""Best-of-8 with the L2T reranker through the l2t client (start the server first: `l2t serve`)."""

from l2t_client import L2TClient

with L2TClient("http://127.0.0.1:8000") as client:
    result = client.generate("What is 17 + 25?", n=8, max_tokens=128, strategy="weighted_vote")
    print(result.chosen.answer, result.chosen.score)
    for episode in result.chosen.episodes:
        print(f"{episode.index:>2} {episode.reward:+.4f} {episode.text[:60]!r}")
    print(result.usage)
