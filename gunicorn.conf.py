"""gunicorn settings: `gunicorn -c gunicorn.conf.py run:app` (used by supervisord.conf).

Threaded workers (gthread, GUNICORN_THREADS per process): a sign-in waits on WeChat and an
SMS send on Aliyun, and a sync worker would be held whole by each wait, the webhook and the
token checks queueing behind it (bench/results_day.py measures both classes). The embedded
store, when REDIS_URL is empty, is started here in the master before any worker forks, so
all workers share one server.

Metrics: every worker writes its Prometheus values to files in one folder,
PROMETHEUS_MULTIPROC_DIR (default: `metrics` in the instance folder), which `/metrics` adds
up. prometheus_client reads the variable when it opens its files, so it is set here, before
any app module loads; the master empties the folder when it starts and marks each worker
that exits as dead (its gauges stop counting, its counters stay in the totals).
"""

import multiprocessing
import os
from pathlib import Path

from berater import instance_path
from berater.logs import gunicorn_logconfig
from berater.settings import read_setting

metrics_dir = read_setting("PROMETHEUS_MULTIPROC_DIR") or str(
    Path(instance_path({"INSTANCE_PATH": read_setting("INSTANCE_PATH")})) / "metrics"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One process per core: each runs Python on one core at a time, and its threads cover the
# waits (README, Deployment).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
# The setting's own parser and range (berater/settings.py), from the environment or .env as
# the app reads it; the app sizes its database pool from the same value. A benchmark may
# pass --worker-class sync and GUNICORN_THREADS=1.
threads = read_setting("GUNICORN_THREADS")
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
# The app logs each request; gunicorn's logger builds no access line (berater/logs.py).
logger_class = "berater.logs.GunicornLogger"
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn), shared by every
# gunicorn on the machine; nothing here uses it.
control_socket_disable = True


def on_starting(server):
    from berater import prefork
    from berater.ext import embedded_redis
    from berater.settings import load_config

    settings = load_config()
    _empty_metrics_dir()
    if not settings["REDIS_URL"]:
        embedded_redis.ensure_running(instance_path(settings))
    # The app's modules and jieba's dictionary load once here; the forked workers share them
    # and start in a fraction of a second (bench/qna.py measures it).
    prefork(settings)


def post_worker_init(worker):
    """The app is loaded: what exists now (modules, the app, jieba's dictionary) lives as
    long as the worker, so the collector's full passes skip it from here on instead of
    walking a few hundred thousand objects each time, and those pages stay shared with
    the master. Garbage made while loading is collected first."""
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _empty_metrics_dir():
    """A fresh start: no counts left from an earlier master's workers."""
    folder = Path(metrics_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
