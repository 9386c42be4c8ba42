"""The official openai SDK against l2t: n candidates are generated and reranked, best first."""

from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused-unless-L2T_API_KEY-is-set")
response = client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "What is 17 + 25?"}],
    n=4,
    max_tokens=128,
    extra_body={"l2t_strategy": "best_of_n"},
)
for choice in response.choices:
    l2t = choice.model_extra["l2t"]  # L2T scores ride along as an extension field
    print(choice.index, round(l2t["score"], 4), l2t["answer"], repr(choice.message.content[:60]))
