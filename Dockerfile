# composer: the web API and playground with the shipped model, on CPU.
#   docker build -t composer .
#   docker run --rm -p 8000:8000 composer        # then open http://localhost:8000/
FROM python:3.11-slim

# FluidSynth and a General MIDI soundfont render WAV files; everything else works without them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# The README's light install: the server runs on the numpy engine, with no torch.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY composer ./composer
COPY models ./models
COPY web ./web
# The shipped model (models/folk) and the playground are installed as package data.
RUN pip install . && cd / && rm -rf /src

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin composer
USER composer
WORKDIR /home/composer

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4); sys.exit(r.status != 200)"]
CMD ["composer", "serve", "--host", "0.0.0.0", "--port", "8000"]
