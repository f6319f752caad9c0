# The demo shop's image: every app service in docker-compose.yml runs it with its own command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=demo_shop.settings
WORKDIR /app
COPY requirements.txt .
# Everything above requirements.txt's dev/bench section (Celery is a benchmark baseline only).
RUN sed '/^# --- dev\/bench only/,$d' requirements.txt >/tmp/runtime.txt \
    && pip install --no-cache-dir -r /tmp/runtime.txt
COPY . .
# The admin's and the dashboard's static files, served by WhiteNoise from var/static.
RUN python manage.py collectstatic --no-input -v0
EXPOSE 8000
CMD ["python", "-m", "daphne", "-b", "0.0.0.0", "-p", "8000", "demo_shop.asgi:application"]
