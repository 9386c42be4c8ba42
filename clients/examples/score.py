"""Per-episode L2T rewards for your own reasoning text."""

from l2t_client import L2TClient

with L2TClient() as client:
    result = client.score(
        "Janet has 3 apples and buys 4 more. How many apples does she have?",
        ["<episode_1>She starts with 3.</episode_1>\n<episode_2>3 + 4 = 7</episode_2>\n\\boxed{7}"],
        reference="7",
    )
    for episode in result.candidates[0].episodes:
        print(episode.index, episode.fitting_gain, episode.compression_penalty, episode.reward)
