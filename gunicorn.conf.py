"""gunicorn settings: `gunicorn -c gunicorn.conf.py run:app` (used by supervisord.conf).

Sync workers: on a 2-core machine they beat gthread when requests come without keep-alive,
which is what a reverse proxy usually sends. The embedded store, when REDIS_URL is empty,
is started here in the master before any worker forks, so all workers share one server.
"""

import multiprocessing
import os

from berater.logs import gunicorn_logconfig
from berater.settings import read_setting

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 2
limit_request_line = 4094
limit_request_field_size = 8190
accesslog = None  # the app logs one redacted line per request
# gunicorn's own loggers through the app's redacting formatter (berater/logs.py), text or JSON
# as LOG_FORMAT says: a refused request line is logged whole, query string included.
# Importing berater.logs here is cheap: the master imports the app's modules before forking
# anyway (berater.prefork).
logconfig_dict = gunicorn_logconfig(read_setting("LOG_FORMAT"))
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn), shared by every
# gunicorn on the machine; nothing here uses it.
control_socket_disable = True


def on_starting(server):
    from berater import instance_path, prefork
    from berater.ext import embedded_redis
    from berater.settings import load_config

    settings = load_config()
    if not settings["REDIS_URL"]:
        embedded_redis.ensure_running(instance_path(settings))
    # The app's modules and jieba's dictionary load once here; the forked workers share them
    # and start in a fraction of a second (bench/qna.py measures it).
    prefork(settings)
