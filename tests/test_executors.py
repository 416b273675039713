"""Executors and claims: a process pool (and Ray, when installed) gives the in-process executor's
records; concurrent runs on one folder split the work; a dead worker's or run's units are redone,
nothing lost or doubled."""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vcm.config import parse_experiment
from vcm.pipeline.runner import prepare, run
from vcm.pipeline.store import ResultStore

from .conftest import tiny_config

TOTAL = 3 * (4 + 1)  # 3 images x (4 distinct points + the uncompressed reference)
CRASH_PLUGIN = '''
import os
from collections.abc import Iterator
from pathlib import Path

from vcm.codecs import CODECS
from vcm.codecs.base import FrameCodec
from vcm.codecs.pillow import jpeg


class CrashOnce(FrameCodec):
    """JPEG, but the first encode anywhere kills its process (as the OOM killer would)."""

    def encode(self, *, image, mask=None):
        marker = Path(os.environ["VCM_TEST_CRASH_MARKER"])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(9)
        return super().encode(image=image, mask=mask)


@CODECS.register("jpeg_crash_once")
def jpeg_crash_once(*, quality: int = 50, mode: str = "full", fill: str = "blur") -> FrameCodec:
    codec = jpeg(quality=quality, mode=mode, fill=fill)
    codec.__class__ = CrashOnce
    return codec
'''


def records(run_dir: Path) -> dict:
    """Every stored record without its timings (which differ run to run)."""
    store = ResultStore(run_dir / "results.sqlite")
    out = {(sid, key): {k: v for k, v in rec.items() if k != "timings"} for sid, key, rec in store.records()}
    store.close()
    return out


def same_outputs(got: dict, serial: dict) -> None:
    """Same bytes and predictions per (image, series, point) as the serial run (the codec type
    differs, so the point keys do)."""
    def index(recs: dict) -> dict:
        return {(sid, r.get("series"), r.get("point")): (r.get("bytes"), r.get("decoded_md5"), r["predictions"])
                for (sid, _), r in recs.items()}

    assert len(got) == len(serial) and index(got) == index(serial)  # decoded-pixel MD5s included


def hashes(recs: dict) -> dict:
    """(image, series, point) -> the MD5 of the decoded pixels."""
    return {(sid, r["series"], r["point"]): r["decoded_md5"] for (sid, _), r in recs.items() if "series" in r}


def test_two_runs_decode_the_same_pixels(tmp_path: Path, coco_root: str, serial: dict) -> None:
    """Every record carries the MD5 of its decoded pixels; a second run (another folder, another
    process) gives the same hashes, and different qualities give different ones."""
    again = run(experiment(tmp_path, coco_root, "again"), progress=False)
    first, second = hashes(serial), hashes(records(again.run_dir))
    assert len(first) == TOTAL - 3 and all(re.fullmatch(r"[0-9a-f]{32}", h) for h in first.values())
    assert second == first
    sid = next(iter(first))[0]
    assert first[(sid, "jpeg-full", "quality=20")] != first[(sid, "jpeg-full", "quality=60")]


def experiment(tmp_path: Path, coco_root: str, name: str, **over: object):
    return prepare(parse_experiment(tiny_config(tmp_path / name, coco_root, **over)))


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, coco_root: str) -> dict:
    """The in-process executor's records: the reference every executor must reproduce."""
    summary = run(experiment(tmp_path_factory.mktemp("serial"), coco_root, "s"), progress=False)
    assert summary.computed == TOTAL
    return records(summary.run_dir)


def test_process_pool_gives_the_in_process_records(tmp_path: Path, coco_root: str, serial: dict) -> None:
    exp = experiment(tmp_path, coco_root, "p", executor={"type": "process", "workers": 2})
    summary = run(exp, progress=False)
    assert summary.computed == TOTAL
    assert records(summary.run_dir) == serial


def test_report_scores_points_on_the_process_pool_as_in_process(tmp_path: Path, coco_root: str) -> None:
    from vcm.report.aggregate import aggregate

    rows = {}
    for kind in ("inprocess", "process"):
        exp = experiment(tmp_path, coco_root, kind, executor={"type": kind, "workers": 2})
        run(exp, progress=False)
        store = ResultStore(exp.run_dir / "results.sqlite")
        rows[kind] = {(r.series, r.point): {k: v for k, v in r.values.items() if not k.startswith("ms_")}
                      for r in aggregate(exp, store)}
        assert store.db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 5  # 4 points + reference
        store.close()
    assert rows["process"] == rows["inprocess"] and len(rows["process"]) == 5  # 4 distinct points + reference
    assert all(v["segm_AP"] is not None for v in rows["process"].values())


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(tmp_path: Path, coco_root: str, serial: dict,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crash_plugin.py").write_text(CRASH_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("VCM_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    cfg = tiny_config(tmp_path / "c", coco_root, executor={"type": "process", "workers": 2}, plugins=["crash_plugin"])
    for spec in cfg["grid"]["codec"]:
        spec["type"] = "jpeg_crash_once"
        spec["label"] = f"jpeg-{spec['mode']}"
    summary = run(prepare(parse_experiment(cfg)), progress=False)
    assert (tmp_path / "crashed").exists()  # a worker did die
    assert summary.computed == TOTAL
    same_outputs(records(summary.run_dir), serial)


def test_an_expired_claim_of_a_dead_run_is_taken_over(tmp_path: Path, coco_root: str, serial: dict) -> None:
    exp = experiment(tmp_path, coco_root, "e", executor={"type": "inprocess", "claim_ttl": 2.0})
    exp.run_dir.mkdir(parents=True)
    store = ResultStore(exp.run_dir / "results.sqlite")
    sid = exp.dataset.ids()[0]
    assert store.claim(sid, "dead-run", ttl=3.0)  # a run that died holding the first image
    assert not store.claim(sid, "someone-else", ttl=3.0)
    store.close()
    t = time.perf_counter()
    summary = run(exp, progress=False)
    assert summary.computed == TOTAL and records(summary.run_dir) == serial
    assert time.perf_counter() - t > 2.0  # it waited for the claim to expire, then did the image


def test_concurrent_runs_on_one_folder_never_compute_an_item_twice(tmp_path: Path, coco_root: str,
                                                                   serial: dict) -> None:
    cfg = tiny_config(tmp_path / "twin", coco_root)
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cli = [sys.executable, "-m", "vcm.cli", "run", str(path), "--no-report", "--no-progress"]
    procs = [subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    computed = [int(re.search(r"(\d+) items computed", o[0]).group(1)) for o in outs]
    assert sum(computed) == TOTAL, computed
    assert records(tmp_path / "twin" / "run") == serial
    store = ResultStore(tmp_path / "twin" / "run" / "results.sqlite")
    assert store.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # all released
    store.close()


def test_ray_actors_give_the_in_process_records_and_survive_a_dead_actor(
        tmp_path: Path, coco_root: str, serial: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'vcm[ray]')")
    (tmp_path / "crash_plugin.py").write_text(CRASH_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("VCM_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cfg = tiny_config(tmp_path / "r", coco_root, executor={"type": "ray", "workers": 2}, plugins=["crash_plugin"])
    for spec in cfg["grid"]["codec"]:
        spec["type"] = "jpeg_crash_once"
        spec["label"] = f"jpeg-{spec['mode']}"
    summary = run(prepare(parse_experiment(cfg)), progress=False)
    assert (tmp_path / "crashed").exists()
    assert summary.computed == TOTAL
    same_outputs(records(summary.run_dir), serial)


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[str]:
    """A Ray cluster of two 1-CPU nodes on this machine: a head and a second node joining it."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'vcm[ray]')")
    if Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster is already running on this machine; not touching it")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus=1", "--disable-usage-stats"]
    subprocess.run(["ray", "start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false", *common],
                   env=env, check=True, capture_output=True)
    try:
        subprocess.run(["ray", "start", f"--address={address}", *common], env=env, check=True, capture_output=True)
        yield address
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vcm_actor_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[1].startswith("ray::_Worker")]


def test_two_node_ray_cluster_runs_the_graph_and_redoes_a_killed_actors_image(
        tmp_path: Path, coco_root: str, serial: dict, two_node_cluster: str) -> None:
    """Two 1-CPU nodes, so the two actors (1 CPU each) sit one per node; one actor is SIGKILLed
    mid-run: its image is redone by a fresh actor, and no item is lost or stored twice."""
    import signal

    images = 6
    cfg = tiny_config(tmp_path / "cluster", coco_root, dataset={"type": "coco", "root": coco_root, "limit": images},
                      executor={"type": "ray", "address": two_node_cluster, "workers": 2})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.Popen([sys.executable, "-m", "vcm.cli", "run", str(path), "--no-report", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    db, killed, deadline = tmp_path / "cluster" / "run" / "results.sqlite", None, time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        pids = _vcm_actor_pids()
        if len(pids) == 2 and db.exists() and _stored(db) >= 5:  # one image done, work left
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert killed is not None, "the run ended before an actor could be killed"
    total = images * 5
    assert f"{total} items computed" in out, (out, err[-2000:])  # every item computed once
    got = records(tmp_path / "cluster" / "run")
    assert len(got) == total
    assert {k: v for k, v in got.items() if k in serial} == serial and len(serial) == 15


def _stored(db: Path) -> int:
    store = ResultStore(db)
    try:
        return int(store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    finally:
        store.close()


def test_two_runs_waiting_on_each_others_claims_do_not_deadlock(tmp_path: Path) -> None:
    """Each run holds a unit the other wants; both must still collect and store their own
    results (the unit source yields WAIT instead of blocking), so both finish."""
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from vcm.pipeline.claims import claimed
    from vcm.pipeline.executor import dispatch

    class Threads:
        def __init__(self) -> None:
            self.pool = ThreadPoolExecutor(2)

        def capacity(self):
            return 2

        def submit(self, unit):
            return self.pool.submit(lambda: (time.sleep(0.3), [unit[0]])[1])

        def ready(self, handles, timeout):
            return list(wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)[0])

        def result(self, handle):
            return handle.result()

    db = tmp_path / "results.sqlite"
    units = [(f"img{i}", [], True) for i in range(4)]
    stored: list[str] = []

    def one_run(owner: str, order: list) -> None:
        store = ResultStore(db)
        for unit, _ in dispatch(claimed(store, owner, 30.0, order), Threads()):
            store.put(unit[0], "@reference", {"by": owner})
            store.release(owner, unit[0])
            stored.append(unit[0])
        store.close()

    runs = [threading.Thread(target=one_run, args=("a", units), daemon=True),
            threading.Thread(target=one_run, args=("b", units[::-1]), daemon=True)]
    for r in runs:
        r.start()
    for r in runs:
        r.join(timeout=30)
    assert not any(r.is_alive() for r in runs), "the two runs deadlocked"
    assert sorted(stored) == [u[0] for u in units]  # every unit once


class _PoolLike:
    """A synchronous backend with a process pool's failure mode: a unit that kills its worker
    breaks the pool, and every unit in flight with it is lost."""

    def __init__(self, poison: set[str], once: bool = False) -> None:
        self.poison, self.once, self.inflight, self.runs = poison, once, [], []

    def capacity(self):
        return 3

    def submit(self, unit):
        self.inflight.append(unit)
        return unit

    def ready(self, handles, timeout):
        return list(handles)

    def result(self, unit):
        from vcm.pipeline.executor import WorkerLost

        batch = list(self.inflight)
        self.inflight.remove(unit)
        if self.poison & set(batch):
            if self.once and unit in self.poison:
                self.poison.discard(unit)
            raise WorkerLost(f"pool broke running {sorted(batch)}")
        self.runs.append(unit)
        return [unit]


def test_a_unit_that_keeps_killing_workers_is_named_and_its_neighbours_are_not_blamed() -> None:
    from vcm.pipeline.executor import MAX_LOSSES, WorkerLost, dispatch

    units = [f"u{i}" for i in range(6)]
    backend = _PoolLike({"u1"})
    done = []
    with pytest.raises(WorkerLost, match=f"{MAX_LOSSES} times while computing unit 'u1' alone"):
        for unit, _ in dispatch(units, backend):
            done.append(unit)
    assert "u0" in done and "u2" in done  # lost beside the poison unit, then rerun alone: fine


def test_units_lost_in_a_pool_break_are_redone_once_each() -> None:
    from vcm.pipeline.executor import dispatch

    units = [f"u{i}" for i in range(8)]
    backend = _PoolLike({"u3"}, once=True)  # a transient crash
    done = [unit for unit, _ in dispatch(units, backend)]
    assert sorted(done) == units and sorted(backend.runs) == units
