"""Served traffic recorded as samples without a reference (`serve --record DIR`): each request a
result row (no score, no gold) with its steps and cost, in a run of its own, in the same
stores a sweep writes. `slmscope report DIR` then shows what the traffic cost, how it ended
and where the router sent it.

A folder or database that holds an experiment's runs is refused: served rows have no score,
and an experiment's tables (made before served rows existed) require one.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

from slmscope.errors import ConfigError
from slmscope.metering.machine import fingerprint
from slmscope.paradigms import harness_label
from slmscope.runs.executor import versions
from slmscope.runs.model_run import Named, now, record_of, steps_of
from slmscope.runs.store import DB_NAME, SqlStore, Store
from slmscope.runs.store_pg import PostgresStore, is_database_url
from slmscope.runs.stores import open_store
from slmscope.serve.service import Served, Service

SERVED = "served"  # the key a served run's spec carries


class Recorder:
    def __init__(self, store: SqlStore, run_id: str, model: str) -> None:
        self.store, self.run_id, self.model = store, run_id, model
        self.written = 0

    @staticmethod
    def check(target: str) -> None:
        """Refuse, in one line and before anything is written, a target that holds an
        experiment's runs (a folder is only read here; a new one is left to be made)."""
        if is_database_url(target):
            store: SqlStore = PostgresStore(target)
        elif (Path(target) / DB_NAME).is_file():
            store = Store.open(Path(target))
        else:
            return
        try:
            _refuse_experiments(store)
        finally:
            store.close()

    @classmethod
    def open(cls, target: str, service: Service) -> Recorder:
        store = PostgresStore(target) if is_database_url(target) else open_store(Path(target))
        try:
            _refuse_experiments(store)
            run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}-served"
            here = {**fingerprint(), "host": socket.gethostname(), "pid": os.getpid()}
            settings = service.config.public() | {"record": store.name}  # no password
            spec = {SERVED: settings, "models": [service.config.model]}
            store.start_run(
                run_id,
                now(),
                spec=spec,
                versions=versions(),
                machine=here,
                models={service.config.model: service.model_record},
            )
        except BaseException:
            store.close()
            raise
        return cls(store, run_id, service.config.model)

    def write(self, served: Served) -> None:
        problem = served.problem
        named = Named(
            self.run_id,
            f"{self.run_id}/{problem.id}",
            self.model,
            served.paradigm.name,
            harness_label(served.paradigm),
            problem.dataset,
            problem.task_type,
            problem.id,
        )
        result = record_of(named, served.trace, served.wall_s, score=None, gold="", content=None)
        self.store.write_sample(result, steps_of(named, served.trace))
        self.written += 1

    def close(self) -> None:
        self.store.finish_run(self.run_id, now(), "finished")
        self.store.close()


def _refuse_experiments(store: SqlStore) -> None:
    for run in store.runs():
        try:
            spec = json.loads(run.get("spec") or "{}")
        except json.JSONDecodeError:
            spec = {}
        if not isinstance(spec, dict) or SERVED not in spec:
            raise ConfigError(
                f"--record {store.name}: it holds an experiment's runs ({run['run_id']}); "
                "record served traffic in a folder or database of its own"
            )
