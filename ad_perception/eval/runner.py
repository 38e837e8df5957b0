"""Many bags x many variants: one job per (variant, bag), run in worker processes, each
result cached on disk as it finishes so an interrupted run resumes where it stopped.

Workers are spawned (not forked): a forked copy of a process holding torch thread pools or
DDS participants can deadlock. Each worker loads a variant's models once and keeps them for
every bag it is given; torch threads are split between workers so they do not fight for
the cores. A bag that fails becomes an error row with the reason, never a crashed run.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ad_perception import CLASSES
from ad_perception.core.fusion import FusionConfig
from ad_perception.eval import cache
from ad_perception.eval.errors import EvalError
from ad_perception.eval.offline import AP_SCORE_THRESHOLD
from ad_perception.eval.scoring import FramePredictions
from ad_perception.eval.topic_map import TopicMap

DEFAULT_POINT_CLOUD_RANGE = (-19.2, -40.0, -3.0, 70.4, 40.0, 1.0)  # LidarDetectorConfig's


@dataclass(frozen=True)
class VariantModels:
    """A named pair of models (a checkpoint or a compressed-variant folder each)."""

    name: str
    camera: Path | None
    lidar: Path | None


@dataclass(frozen=True)
class Job:
    variant: VariantModels
    bag: Path
    mode: str  # "offline": run the models; "recorded": score outputs recorded on topics
    topic_map: TopicMap = field(default_factory=TopicMap)
    threads: int = 1
    cache_file: Path | None = None
    recording: Path | None = None  # recorded outputs; default: the bag itself

    @property
    def label(self) -> str:
        return f"{self.variant.name}/{self.bag.name}"


@dataclass
class JobResult:
    job: Job
    predictions: FramePredictions | None = None
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0


def cache_file_for(out_dir: Path, job: Job) -> Path:
    """Where a job's result is kept; the name changes whenever an input file or the fusion's
    settings change (fused outputs are cached with the detectors')."""
    key = cache.fingerprint(job.bag, job.mode, repr(job.topic_map), job.variant.camera or "-",
                            job.variant.lidar or "-", job.recording or "-", repr(FusionConfig()))
    return out_dir / "cache" / job.variant.name / f"{job.bag.name}-{key}.json"


# ------------------------------------------------------------------------ inside a worker
_PIPELINES: dict[tuple, tuple[Any, Any]] = {}


def load_pipelines(variant: VariantModels, threads: int) -> tuple[Any, Any]:
    """Camera and lidar pipelines of a variant, through the runtime backends when present."""
    key = (variant.camera, variant.lidar, threads)
    if key not in _PIPELINES:
        try:
            from ad_perception.runtime import load_pipeline
        except ImportError:
            load_pipeline = None

        def load(path: Path | None):
            if path is None:
                return None
            if load_pipeline is not None:
                return load_pipeline(path, threads=threads, score_threshold=AP_SCORE_THRESHOLD)
            from ad_perception.core.pipelines import load_torch_pipeline

            return load_torch_pipeline(path, threads, score_threshold=AP_SCORE_THRESHOLD)

        _PIPELINES.clear()  # one variant's models at a time per worker
        _PIPELINES[key] = (load(variant.camera), load(variant.lidar))
    return _PIPELINES[key]


def scoring_config(variant: VariantModels) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """The lidar range and class list the variant's cards declare (defaults without cards),
    so recorded outputs are held to the same scope as offline runs of the same models."""
    point_cloud_range, class_names = DEFAULT_POINT_CLOUD_RANGE, CLASSES
    if variant.lidar is not None:
        try:
            from ad_perception.models.checkpoint import read_card

            config = read_card(variant.lidar).config
            point_cloud_range = tuple(config.get("point_cloud_range", point_cloud_range))
            class_names = tuple(config.get("class_names", class_names))
        except Exception:  # noqa: BLE001 - a folder or card-less file: keep the defaults
            pass
    return point_cloud_range, class_names


def run_job(job: Job) -> JobResult:
    """Evaluate one bag for one variant; every failure becomes ``error`` with its place."""
    started = time.monotonic()
    try:
        predictions = _evaluate(job)
    except EvalError as err:
        return JobResult(job, error=str(err), seconds=time.monotonic() - started)
    except Exception as err:  # noqa: BLE001 - report, never kill the other bags
        where = traceback.extract_tb(err.__traceback__)[-1]
        return JobResult(job, error=f"{job.bag}: unexpected {type(err).__name__}: {err} "
                         f"(at {Path(where.filename).name}:{where.lineno})",
                         seconds=time.monotonic() - started)
    if job.cache_file is not None:
        cache.save(job.cache_file, predictions)
    return JobResult(job, predictions, seconds=time.monotonic() - started)


def _evaluate(job: Job) -> FramePredictions:
    from ad_perception.eval.ground_truth import load_ground_truth
    from ad_perception.eval.scoring import build_predictions

    truth = load_ground_truth(job.bag, job.topic_map)
    if job.mode == "offline":
        import torch

        from ad_perception.core.fusion import FusionPipeline
        from ad_perception.eval.offline import run_pipelines

        torch.set_num_threads(max(1, job.threads))
        camera, lidar = load_pipelines(job.variant, job.threads)
        outputs = run_pipelines(truth, camera, lidar, FusionPipeline(), progress=False)
        point_cloud_range = tuple(lidar.config.point_cloud_range) if lidar else \
            DEFAULT_POINT_CLOUD_RANGE
        class_names = tuple(camera.config.class_names) if camera else CLASSES
    elif job.mode == "recorded":
        from ad_perception.eval.recorded import outputs_from_recording

        outputs = outputs_from_recording(job.recording or job.bag, truth)
        point_cloud_range, class_names = scoring_config(job.variant)
    else:
        raise ValueError(f"unknown job mode {job.mode!r}")
    return build_predictions(truth, outputs, point_cloud_range, class_names)


# ---------------------------------------------------------------------------- the driver
def run_jobs(jobs: list[Job], workers: int = 1, progress: bool = True) -> list[JobResult]:
    """Results in job order; cached ones are read, the rest run (in parallel if workers > 1).

    On Ctrl-C, queued jobs are cancelled and the finished ones stay cached."""
    results: dict[int, JobResult] = {}
    pending: list[int] = []
    for index, job in enumerate(jobs):
        cached = cache.load(job.cache_file) if job.cache_file else None
        if cached is not None:
            results[index] = JobResult(job, cached, cached=True)
        else:
            pending.append(index)
    bar = tqdm(total=len(jobs), initial=len(results), desc="eval", unit="bag",
               disable=not progress)
    if len(results):
        bar.set_postfix_str(f"{len(results)} cached")
    try:
        if workers <= 1 or len(pending) <= 1:
            for index in pending:
                bar.set_postfix_str(jobs[index].label)
                results[index] = run_job(jobs[index])
                bar.update()
        else:
            _run_parallel(jobs, pending, workers, results, bar)
    finally:
        bar.close()
    return [results[index] for index in range(len(jobs))]


def _run_parallel(jobs: list[Job], pending: list[int], workers: int,
                  results: dict[int, JobResult], bar: tqdm) -> None:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context)
    try:
        # variant-major order keeps each worker on one variant's models as long as possible
        futures = {pool.submit(run_job, jobs[index]): index for index in pending}
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except Exception as err:  # noqa: BLE001 - a worker died (OOM, signal)
                results[index] = JobResult(jobs[index], error=f"{jobs[index].bag}: worker "
                                           f"process failed: {type(err).__name__}: {err}")
            bar.set_postfix_str(jobs[index].label)
            bar.update()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
